// Kubernetes' own code decides a pod's fate here: the real kube-scheduler binds it (or finds no
// node for it), KWOK's Stages (test/fixtures/kwok/) write the kubelet's statuses from the pod's
// image or a fate annotation patched onto it, and corral's classifier reads them through
// KubernetesPodRuntime.awaitReady. No test writes a pod status. A ready pod gets a 127.x pod IP
// and answers the worker protocol as its worker (test/harness/kwok-workers.ts); a killed one stops.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { waitFor } from '../../src/embedded/wait';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import type { ReadinessOutcome } from '../../src/runtime/pod-runtime';
import type { WorkerPodSpecInput } from '../../src/runtime/worker-pod-spec';
import { workerProtocolV1, type WorkerPodRef } from '../../src/common';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { createTestNamespace } from '../harness/kube-namespace';
import { kwokAnnotations, kwokFateImage, kwokNodeAnnotation, waitForPodStarted, type KwokFate } from '../harness/kwok';
import { startKwokWorkers, type KwokWorkers } from '../harness/kwok-workers';
import { useKube, type Lease } from '../harness/shared';
import { credentials, newWorkerId } from './runtime-behaviour';

const pool = 'kwok';
const notScheduledGraceMs = 1_000;
let kube: Lease<KubeEndpoint>;
let admin: KubeConfig;
let core: CoreV1Api;
let namespace: string;
let workers: KwokWorkers;
let runtime: KubernetesPodRuntime;
let port: number;

before(async () => {
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace(admin, 'kwok');
  workers = await startKwokWorkers({ kubeConfig: admin, namespace, ports: [0] });
  [port] = workers.ports() as [number];
  runtime = new KubernetesPodRuntime({ kubeConfig: admin, namespace, notScheduledGraceMs, unreachableAfterMs: 10_000 });
});

after(async () => {
  await runtime?.close();
  await workers?.stop();
  await kube?.release();
});

const spec = (workerId: string, overrides: Partial<WorkerPodSpecInput> = {}): WorkerPodSpecInput => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image: 'registry.example/corral/demo-worker:0.1.0',
  port,
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
  maxLifetimeSeconds: 3_600,
  ...overrides,
});

/** Creates the worker and waits for its verdict; `whileWaiting` runs once the wait's watch is open. */
async function spawn(
  overrides: Partial<WorkerPodSpecInput>,
  whileWaiting?: (ref: WorkerPodRef) => Promise<void>,
): Promise<{ ref: WorkerPodRef; outcome: ReadinessOutcome }> {
  const workerId = newWorkerId();
  const { ref } = await runtime.create(spec(workerId, overrides), credentials(1));
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  const outcome = runtime.awaitReady(ref, { timeoutMs: 30_000, onWaiting: markWaiting });
  if (whileWaiting) {
    await Promise.race([waiting, outcome]);
    await whileWaiting(ref);
  }
  return { ref, outcome: await outcome };
}

const readPod = (name: string): Promise<V1Pod> => core.readNamespacedPod({ namespace, name });

async function call(endpoint: string, method: 'GET' | 'POST', route: string, body?: unknown) {
  const res = await fetch(`${endpoint}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('a pod is bound by the scheduler to a KWOK node, turns Ready with a 127.x pod IP and answers as its worker', async () => {
  const { ref, outcome } = await spawn({});
  assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
  const endpoint = outcome.status === 'ready' ? outcome.endpoint : '';
  const pod = await readPod(ref.name);
  assert.match(pod.status?.podIP ?? '', /^127\.\d+\.\d+\.\d+$/);
  assert.equal(endpoint, `http://${pod.status?.podIP}:${port}`);
  const node = await core.readNode({ name: pod.spec?.nodeName ?? '' });
  assert.equal(node.metadata?.annotations?.[kwokNodeAnnotation.key], kwokNodeAnnotation.value, 'a KWOK node');
  assert.deepEqual(
    ['PodScheduled', 'Ready', 'ContainersReady'].map(
      (type) => pod.status?.conditions?.find((c) => c.type === type)?.status,
    ),
    ['True', 'True', 'True'],
  );
  assert.equal(pod.status?.containerStatuses?.[0]?.ready, true);

  const health = await call(endpoint, 'GET', '/healthz');
  assert.deepEqual(
    { status: health.status, protocol: health.json.protocol, workerId: health.json.workerId },
    { status: 200, protocol: workerProtocolV1, workerId: ref.workerId },
  );
  const activated = await call(endpoint, 'POST', '/activate', { workerId: ref.workerId, epoch: 2, tenant: 'acme' });
  assert.deepEqual(
    [activated.status, activated.json.epoch, activated.json.credentialVersion],
    [200, 2, 1],
    'activated with the credentials of its Secret',
  );
  const stale = await call(endpoint, 'POST', '/activate', { workerId: ref.workerId, epoch: 1, tenant: 'evil' });
  assert.deepEqual([stale.status, stale.json.error], [409, 'stale_epoch']);
  const drained = await call(endpoint, 'POST', '/drain', { workerId: ref.workerId, epoch: 2 });
  assert.deepEqual([drained.status, drained.json.status], [200, 'draining']);
  assert.ok(workers.runningPods().includes(ref.name));
  await runtime.delete(ref);
});

test('an image that cannot be pulled: ErrImagePull, then ImagePullBackOff, is image_pull_backoff', async () => {
  const { ref, outcome } = await spawn({ image: kwokFateImage('image-pull-backoff') });
  assert.equal(outcome.status === 'failed' && outcome.reason, 'image_pull_backoff', JSON.stringify(outcome));
  assert.match(outcome.status === 'failed' ? outcome.detail : '', /ErrImagePull|ImagePullBackOff/);
  await waitFor(
    async () => (await readPod(ref.name)).status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImagePullBackOff',
    { what: 'KWOK to back off the pull', timeoutMs: 30_000 },
  );
  await runtime.delete(ref);
});

// Kills of a started worker by annotation, as a test or bench kills running pods; KWOK plays the kubelet.
const kills: { fate: KwokFate; reason: string; detail: RegExp }[] = [
  { fate: 'crash-loop', reason: 'pod_crashed', detail: /CrashLoopBackOff.*exit code 1/ },
  { fate: 'crash', reason: 'pod_crashed', detail: /exit code 1/ },
  { fate: 'oom', reason: 'pod_oom_killed', detail: /OOM/ },
  { fate: 'evict', reason: 'pod_evicted', detail: /low on resource: memory/ },
];

for (const { fate, reason, detail } of kills) {
  test(`a started worker given the fate ${fate} is ${reason}`, async () => {
    const { ref, outcome } = await spawn({ image: kwokFateImage('unready') }, async (r) => {
      await waitForPodStarted(core, namespace, r.name);
      await workers.kill(r.name, fate);
    });
    assert.equal(outcome.status === 'failed' && outcome.reason, reason, JSON.stringify(outcome));
    assert.match(outcome.status === 'failed' ? outcome.detail : '', detail);
    const pod = await readPod(ref.name);
    assert.equal(pod.metadata?.annotations?.[kwokAnnotations.fate], fate);
    if (fate === 'crash-loop') {
      const status = pod.status?.containerStatuses?.[0];
      assert.equal(status?.restartCount, 1);
      assert.equal(status?.lastState?.terminated?.exitCode, 1);
    }
    await runtime.delete(ref);
  });
}

test('a pod no node can hold stays Unschedulable (the real scheduler) and is pod_not_scheduled after the grace period', async () => {
  const tooBig = { requests: { cpuMillis: 512_000, memoryMiB: 64 }, limits: { cpuMillis: 512_000, memoryMiB: 64 } };
  const { ref, outcome } = await spawn({ resources: tooBig });
  assert.equal(outcome.status === 'failed' && outcome.reason, 'pod_not_scheduled', JSON.stringify(outcome));
  assert.match(outcome.status === 'failed' ? outcome.detail : '', /nodes are available.*Insufficient cpu/);
  await runtime.delete(ref);
});

test('a ready worker killed by annotation stops answering, and the inventory classifies its pod', async () => {
  const { ref, outcome } = await spawn({});
  assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
  const endpoint = outcome.status === 'ready' ? outcome.endpoint : '';
  assert.equal((await call(endpoint, 'GET', '/healthz')).status, 200);
  await workers.kill(ref.name, 'oom');
  await assert.rejects(call(endpoint, 'GET', '/healthz'), 'a killed worker no longer answers');
  assert.ok(!workers.runningPods().includes(ref.name));
  const verdict = await waitFor(
    async () => {
      const listed = (await runtime.listManaged({ pool })).find((w) => w.name === ref.name);
      return listed?.verdict?.status === 'failed' ? listed.verdict : undefined;
    },
    { what: 'KWOK to report the OOM kill', timeoutMs: 30_000 },
  );
  assert.deepEqual(verdict, { status: 'failed', reason: 'pod_oom_killed' });
  await runtime.delete(ref);
  await waitFor(
    async () =>
      (await core.listNamespacedPod({ namespace, fieldSelector: `metadata.name=${ref.name}` })).items.length === 0,
    {
      what: 'KWOK to remove the deleted pod (as a kubelet would)',
      timeoutMs: 30_000,
    },
  );
});
