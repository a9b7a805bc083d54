// The Kubernetes runtime against a real kube-apiserver + etcd + kube-scheduler, with KWOK playing
// the nodes and the kubelet (test/harness/kwok.ts). A pod's fate is chosen by the pod (its image,
// or an annotation on it), KWOK writes the status a kubelet would, and every failure reason must
// reach the waiting caller through the watch. A ready pod's endpoint answers as its worker
// (test/harness/kwok-workers.ts).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { RuntimeInputError, WorkerNameConflictError } from '../../src/runtime/errors';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import { corralLabels } from '../../src/runtime/kubernetes/pod-manifest';
import { createPodRuntime } from '../../src/runtime/create-pod-runtime';
import { workerProtocolV1 } from '../../src/common';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { createTestNamespace } from '../harness/kube-namespace';
import { kwokFateImage, setPodFate, shortenPodDeadline, waitForPodStarted, type KwokFate } from '../harness/kwok';
import { startKwokWorkers, type KwokWorkers } from '../harness/kwok-workers';
import { useKube, type Lease } from '../harness/shared';
import {
  credentials,
  newWorkerId,
  runtimeBehaviourSuite,
  runToOutcome,
  type RuntimeFixture,
} from './runtime-behaviour';

const pool = 'kpool';
const notScheduledGraceMs = 1_500;
let kube: Lease<KubeEndpoint>;
let admin: KubeConfig;
let core: CoreV1Api;
let namespace: string;
let workers: KwokWorkers;
let port: number;
let fixture: RuntimeFixture;

const baseSpec = (workerId: string, image = 'registry.example/corral/demo-worker:0.1.0') => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image,
  port,
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
  maxLifetimeSeconds: 86_400,
});
const makeRuntime = () =>
  new KubernetesPodRuntime({ kubeConfig: admin, namespace, notScheduledGraceMs, unreachableAfterMs: 5_000 });

before(async () => {
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace(admin, 'runtime');
  workers = await startKwokWorkers({ kubeConfig: admin, namespace, ports: [0] });
  [port] = workers.ports() as [number];
  const selector = (workerId: string) => `${corralLabels.workerId}=${workerId}`;
  fixture = {
    name: 'kubernetes',
    runtime: makeRuntime(),
    pool,
    reopen: makeRuntime,
    neverReadyReason: 'health_check_failed',
    invalidImageInput: 'Registry.Example/UPPER/case:tag!',
    scenario(kind, workerId) {
      switch (kind) {
        case 'ready':
          return { spec: baseSpec(workerId) };
        case 'crash':
          // Started, never ready, then the worker exits with code 3: KWOK reports it as the kubelet would.
          return {
            spec: baseSpec(workerId, kwokFateImage('unready')),
            afterWaiting: async (ref) => setPodFate(core, namespace, ref.name, 'crash', { exitCode: 3 }),
          };
        case 'invalidImage':
          return { spec: baseSpec(workerId, kwokFateImage('invalid-image')) };
        case 'neverReady':
          // Started, its readiness probe failing: wait until KWOK says the container runs.
          return {
            spec: baseSpec(workerId, kwokFateImage('unready')),
            afterWaiting: async (ref) => waitForPodStarted(core, namespace, ref.name),
          };
      }
    },
    async inspect(workerId) {
      const [pods, secrets] = await Promise.all([
        core.listNamespacedPod({ namespace, labelSelector: selector(workerId) }),
        core.listNamespacedSecret({ namespace, labelSelector: selector(workerId) }),
      ]);
      // A pod being deleted gracefully still exists; corral's delete is done once it asked.
      const live = pods.items.filter((p) => !p.metadata?.deletionTimestamp);
      return { pods: live.length, secrets: secrets.items.length };
    },
    async readCredentials(ref) {
      const secret = await core.readNamespacedSecret({ namespace, name: `${ref.name}-credentials` });
      return { content: Buffer.from(secret.data?.['credentials.json'] ?? '', 'base64').toString('utf8') };
    },
    async describeWorker(ref) {
      return JSON.stringify(await core.readNamespacedPod({ namespace, name: ref.name }));
    },
    async checkEndpoint(endpoint) {
      assert.match(endpoint, /^http:\/\/127\.\d+\.\d+\.\d+:\d+$/, 'a KWOK pod IP, in 127.0.0.0/8');
      const res = await fetch(`${endpoint}/healthz`, { signal: AbortSignal.timeout(5_000) });
      const health = (await res.json()) as { protocol?: string };
      assert.equal(health.protocol, workerProtocolV1, 'the pod IP answers the worker protocol');
    },
  };
});

after(async () => {
  await workers?.stop();
  await kube?.release();
});

runtimeBehaviourSuite(() => fixture);

// Kubernetes-only reasons, each written by KWOK from the pod's image and reaching the caller
// through the watch (test/integration/kwok-failures.test.ts covers the kills of running pods).
const imageFates: Partial<Record<KwokFate, string>> = {
  'image-pull-backoff': 'image_pull_backoff',
  'invalid-image': 'invalid_image',
  'entrypoint-missing': 'invalid_image',
  'config-error': 'config_error',
  evict: 'pod_evicted',
  'crash-loop': 'pod_crashed',
  crash: 'pod_crashed',
  oom: 'pod_oom_killed',
};

for (const [fate, reason] of Object.entries(imageFates)) {
  test(`a pod whose image fate is ${fate} reaches the waiting caller as ${reason}`, async () => {
    const workerId = newWorkerId();
    const { ref, outcome } = await runToOutcome(
      { ...fixture, scenario: () => ({ spec: baseSpec(workerId, kwokFateImage(fate as KwokFate)) }) },
      'neverReady',
      workerId,
    );
    assert.equal(outcome.status === 'failed' && outcome.reason, reason, JSON.stringify(outcome));
    await fixture.runtime.delete(ref);
  });
}

test('a pod whose activeDeadlineSeconds passes is failed by the node and reaches the caller as deadline_exceeded', async () => {
  const workerId = newWorkerId();
  const { ref, outcome } = await runToOutcome(
    {
      ...fixture,
      scenario: () => ({
        spec: baseSpec(workerId, kwokFateImage('unready')),
        // The pool's lifetime is at least a minute; a pod's deadline may be lowered while it runs.
        afterWaiting: async (r) => shortenPodDeadline(core, namespace, r.name, 1),
      }),
    },
    'neverReady',
    workerId,
  );
  assert.equal(outcome.status === 'failed' && outcome.reason, 'deadline_exceeded', JSON.stringify(outcome));
  await fixture.runtime.delete(ref);
});

test('a pod no node can hold is Unschedulable (the real scheduler) and turns pod_not_scheduled when its grace period ends', async () => {
  const workerId = newWorkerId();
  // More CPU than any KWOK node has (kwokNodeDefaults.cpu is 256).
  const tooBig = { requests: { cpuMillis: 512_000, memoryMiB: 64 }, limits: { cpuMillis: 512_000, memoryMiB: 64 } };
  const { ref, outcome } = await runToOutcome(
    { ...fixture, scenario: () => ({ spec: { ...baseSpec(workerId), resources: tooBig } }) },
    'neverReady',
    workerId,
  );
  assert.equal(outcome.status === 'failed' && outcome.reason, 'pod_not_scheduled', JSON.stringify(outcome));
  assert.match(outcome.status === 'failed' ? outcome.detail : '', /Insufficient cpu/);
  await fixture.runtime.delete(ref);
});

test('the pod carries corral labels, the epoch annotation, its deadline and secure defaults', async () => {
  const workerId = newWorkerId();
  const { ref } = await fixture.runtime.create({ ...baseSpec(workerId), epoch: 7, args: ['--serve'] }, credentials(7));
  const pod = await core.readNamespacedPod({ namespace, name: ref.name });
  assert.equal(ref.name, `${pool}-${workerId}-1`);
  assert.deepEqual(pod.metadata?.labels, {
    'app.kubernetes.io/managed-by': 'corral',
    'corral.dev/pool': pool,
    'corral.dev/worker-id': workerId,
    'corral.dev/spawn-attempt': '1',
  });
  assert.equal(pod.metadata?.annotations?.['corral.dev/epoch'], '7');
  const spec = pod.spec!;
  assert.equal(spec.activeDeadlineSeconds, 86_400);
  assert.equal(spec.automountServiceAccountToken, false);
  assert.equal(spec.restartPolicy, 'Never');
  assert.equal(spec.securityContext?.runAsNonRoot, true);
  assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  const container = spec.containers[0]!;
  assert.deepEqual(container.args, ['--serve']);
  assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL']);
  assert.deepEqual(
    { ...container.resources },
    {
      requests: { cpu: '100m', memory: '64Mi' },
      limits: { cpu: '500m', memory: '128Mi' },
    },
  );
  assert.equal(
    spec.volumes?.find((v) => v.name === 'credentials')?.secret?.secretName,
    `${ref.name}-credentials`,
    'credentials arrive as a mounted secret, not env',
  );
  const secret = await core.readNamespacedSecret({ namespace, name: `${ref.name}-credentials` });
  assert.equal(secret.metadata?.labels?.['corral.dev/worker-id'], workerId);
  await fixture.runtime.delete(ref);
});

test('a pod with the same name that is not ours is never adopted', async () => {
  const workerId = newWorkerId();
  const name = `${pool}-${workerId}-1`;
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels: { app: 'someone-else' } },
      spec: { automountServiceAccountToken: false, containers: [{ name: 'x', image: 'busybox:1.36' }] },
    },
  });
  await assert.rejects(fixture.runtime.create(baseSpec(workerId), credentials(1)), WorkerNameConflictError);
  const pod = await core.readNamespacedPod({ namespace, name });
  assert.equal(pod.metadata?.labels?.app, 'someone-else', 'the foreign pod is untouched');
});

test('a deleted pod leaves a stranded secret the inventory reports', async () => {
  const workerId = newWorkerId();
  const { ref } = await fixture.runtime.create(baseSpec(workerId), credentials(1));
  await core.deleteNamespacedPod({ namespace, name: ref.name, gracePeriodSeconds: 0 });
  const listed = (await fixture.runtime.listManaged({ pool })).find((w) => w.workerId === workerId);
  assert.deepEqual({ hasPod: listed?.hasPod, hasSecret: listed?.hasSecret }, { hasPod: false, hasSecret: true });
  await fixture.runtime.delete(ref);
});

test('configuration errors are typed and raised before any API call', async () => {
  // Nothing listens here: any API call would fail with a connection error instead.
  const unreachable = kubeConfigFor({ server: 'https://127.0.0.1:1', adminToken: 'x', caFile: kube.value.caFile });
  assert.throws(
    () => createPodRuntime({ runtime: 'docker', namespace }),
    (err: unknown) =>
      err instanceof RuntimeInputError && err.field === 'runtime' && /unknown runtime "docker"/.test(err.message),
  );
  assert.throws(
    () => createPodRuntime({ runtime: 'kubernetes', namespace: 'Bad_Namespace' }, { kubeConfig: unreachable }),
    (err: unknown) => err instanceof RuntimeInputError && err.field === 'namespace',
  );
  const runtime = createPodRuntime({ runtime: 'kubernetes', namespace }, { kubeConfig: unreachable });
  await assert.rejects(
    runtime.create({ ...baseSpec(newWorkerId()), image: 'UPPER/case' }, credentials(1)),
    (err: unknown) => err instanceof RuntimeInputError && err.field === 'image',
  );
  await assert.rejects(
    runtime.awaitReady({ workerId: 'w1', pool, spawnAttempt: 1, name: 'not-the-derived-name' }, { timeoutMs: 1_000 }),
    (err: unknown) => err instanceof RuntimeInputError && err.field === 'name',
  );
});
