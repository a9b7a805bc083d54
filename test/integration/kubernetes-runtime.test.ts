// The Kubernetes runtime against a real kube-apiserver + etcd. The harness plays kubelet by
// patching pod status; every failure reason must reach the waiting caller through the watch.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { RuntimeInputError, WorkerNameConflictError } from '../../src/runtime/errors';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import { corralLabels } from '../../src/runtime/kubernetes/pod-manifest';
import { createPodRuntime } from '../../src/runtime/create-pod-runtime';
import { FakeKubelet } from '../harness/fake-kubelet';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { createTestNamespace } from '../harness/kube-namespace';
import { useKube, type Lease } from '../harness/shared';
import { kubeletScenarios } from '../fixtures/kubelet-pod-statuses';
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
let kubelet: FakeKubelet;
let fixture: RuntimeFixture;

const baseSpec = (workerId: string) => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image: 'registry.example/corral/demo-worker:0.1.0',
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
  maxLifetimeSeconds: 86_400,
});
const statuses = () => kubeletScenarios(new Date(), { notScheduledGraceMs });
const makeRuntime = () =>
  new KubernetesPodRuntime({ kubeConfig: admin, namespace, notScheduledGraceMs, unreachableAfterMs: 5_000 });

before(async () => {
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace(admin, 'runtime');
  kubelet = new FakeKubelet(admin, namespace);
  const selector = (workerId: string) => `${corralLabels.workerId}=${workerId}`;
  fixture = {
    name: 'kubernetes',
    runtime: makeRuntime(),
    pool,
    reopen: makeRuntime,
    invalidImageInput: 'Registry.Example/UPPER/case:tag!',
    scenario(kind, workerId) {
      const spec = baseSpec(workerId);
      const patch = (status: Record<string, unknown>) => async (ref: { name: string }) =>
        kubelet.setStatus(ref.name, status);
      switch (kind) {
        case 'ready':
          return { spec, afterWaiting: patch(statuses().ready.status) };
        case 'crash':
          return { spec, afterWaiting: patch(statuses().exitedBeforeReady.status) };
        case 'invalidImage':
          return { spec, afterWaiting: patch(statuses().invalidImageName.status) };
        case 'neverReady':
          return { spec };
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
  };
});

after(async () => {
  await kube?.release();
});

runtimeBehaviourSuite(() => fixture);

// Kubernetes-only reasons, each reaching the caller through the watch.
const reasonScenarios = {
  imagePullBackOff: 'image_pull_backoff',
  errImagePull: 'image_pull_backoff',
  invalidImageName: 'invalid_image',
  entrypointMissing: 'invalid_image',
  entrypointMissingNeverRestart: 'invalid_image',
  createContainerConfigError: 'config_error',
  evicted: 'pod_evicted',
  crashLoopBackOff: 'pod_crashed',
  exitedBeforeReady: 'pod_crashed',
  oomKilled: 'pod_oom_killed',
  activeDeadlineExceeded: 'deadline_exceeded',
} as const;

for (const [scenario, reason] of Object.entries(reasonScenarios)) {
  test(`kubelet status ${scenario} reaches the waiting caller as ${reason}`, async () => {
    const workerId = newWorkerId();
    const { ref, outcome } = await runToOutcome(
      {
        ...fixture,
        scenario: () => ({
          spec: baseSpec(workerId),
          afterWaiting: async (r) =>
            kubelet.setStatus(r.name, statuses()[scenario as keyof typeof reasonScenarios].status),
        }),
      },
      'neverReady',
      workerId,
    );
    assert.equal(outcome.status === 'failed' && outcome.reason, reason, JSON.stringify(outcome));
    await fixture.runtime.delete(ref);
  });
}

test('an Unschedulable pod turns pod_not_scheduled when its grace period ends, with no further event', async () => {
  const workerId = newWorkerId();
  const { ref, outcome } = await runToOutcome(
    {
      ...fixture,
      scenario: () => ({
        spec: baseSpec(workerId),
        // "Now" Unschedulable: within the grace period, so the runtime must re-arm a timer itself.
        afterWaiting: async (r) => kubelet.setStatus(r.name, statuses().unschedulableWithinGrace.status),
      }),
    },
    'neverReady',
    workerId,
  );
  assert.equal(outcome.status === 'failed' && outcome.reason, 'pod_not_scheduled', JSON.stringify(outcome));
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
