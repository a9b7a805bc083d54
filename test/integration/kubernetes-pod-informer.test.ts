// The Kubernetes runtime's one pod informer, on a private kube-apiserver this file may restart:
// readiness waits for many pods share one watch connection; pods that have been Ready and then
// crash, are OOM-killed, are evicted, go NotReady or are deleted by someone else become exactly
// one health verdict each, while pods this runtime deletes, unwatched workers and pods that never
// served do not; and no change is missed across an apiserver restart, whether the watch resumes
// or history was compacted (410) and the informer must re-list.
//
// The test plays the kubelet by patching `pods/status` (the informer's input is pod status, so
// this is what it must react to). Where KWOK also runs the pods, it drives them to Ready by
// itself and leaves Failed pods alone, so every step below holds with or without it.
// "No verdict" is never asserted by waiting a while: a later change on a sentinel pod is awaited
// instead, and the single watch delivers changes in order, so an earlier verdict would be there.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import type { PodHealthVerdict } from '../../src/runtime/pod-runtime';
import { kubeConfigFor, startKube, type RunningKube } from '../harness/kube';
import { createTestNamespace } from '../harness/kube-namespace';
import { credentials, newWorkerId } from './runtime-behaviour';
import type { WorkerPodRef } from '../../src/common';

let kube: RunningKube;
let admin: KubeConfig;
let core: CoreV1Api;
let namespace: string;

before(async () => {
  // Without the watch cache, watches are served from etcd: a restarted apiserver can resume an
  // old resourceVersion, and compacting etcd yields a real 410.
  kube = await startKube({ extraApiserverArgs: ['--watch-cache=false'] });
  admin = kubeConfigFor(kube);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace(admin, 'informer');
});

after(async () => {
  await kube?.stop();
});

/** Every wait in this file is bounded, so a missing event fails the test instead of hanging it. */
async function within<T>(promise: Promise<T>, what: string, ms = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const newRuntime = () => new KubernetesPodRuntime({ kubeConfig: admin, namespace, apiTimeoutMs: 5_000 });

const workerImage = 'registry.example/corral/demo-worker:0.1.0';
/** Where KWOK runs pods, this image's pod starts but never becomes Ready; elsewhere it is just an image. */
const neverReadyImage = 'corral.test/fate:unready';

async function createWorker(
  runtime: KubernetesPodRuntime,
  options: { pool?: string; image?: string } = {},
): Promise<WorkerPodRef> {
  const { ref } = await runtime.create(
    {
      workerId: newWorkerId(),
      pool: options.pool ?? 'informer',
      spawnAttempt: 1,
      epoch: 1,
      image: options.image ?? workerImage,
      resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 10, memoryMiB: 16 } },
      maxLifetimeSeconds: 3_600,
    },
    credentials(1),
  );
  return ref;
}

// --- Statuses as the kubelet writes them ---------------------------------------------------------

const condition = (type: string, status: 'True' | 'False', reason?: string, message?: string) => ({
  type,
  status,
  lastProbeTime: null,
  lastTransitionTime: new Date().toISOString(),
  ...(reason ? { reason } : {}),
  ...(message ? { message } : {}),
});
const startedAt = () => new Date(Date.now() - 60_000).toISOString();
const unready = 'containers with unready status: [worker]';

const statuses = {
  ready: (podIP: string) => ({
    phase: 'Running',
    podIP,
    podIPs: [{ ip: podIP }],
    conditions: [
      condition('PodScheduled', 'True'),
      condition('Initialized', 'True'),
      condition('Ready', 'True'),
      condition('ContainersReady', 'True'),
    ],
    containerStatuses: [
      {
        name: 'worker',
        image: workerImage,
        imageID: '',
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: startedAt() } },
      },
    ],
  }),
  /** The readiness probe failed failureThreshold times: still Running, no longer Ready. */
  notReady: () => ({
    phase: 'Running',
    conditions: [
      condition('PodScheduled', 'True'),
      condition('Initialized', 'True'),
      condition('Ready', 'False', 'ContainersNotReady', unready),
      condition('ContainersReady', 'False', 'ContainersNotReady', unready),
    ],
    containerStatuses: [
      {
        name: 'worker',
        image: workerImage,
        imageID: '',
        ready: false,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: startedAt() } },
      },
    ],
  }),
  /** The container exited (restartPolicy Never): the pod is Failed. */
  terminated: (reason: string, exitCode: number) => ({
    phase: 'Failed',
    conditions: [
      condition('PodScheduled', 'True'),
      condition('Ready', 'False', 'PodFailed'),
      condition('ContainersReady', 'False', 'PodFailed'),
    ],
    containerStatuses: [
      {
        name: 'worker',
        image: workerImage,
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: {
          terminated: { exitCode, reason, startedAt: startedAt(), finishedAt: new Date().toISOString() },
        },
      },
    ],
  }),
  /** The kubelet's eviction manager under memory pressure. */
  evicted: () => ({
    phase: 'Failed',
    reason: 'Evicted',
    message: 'The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi.',
    conditions: [
      condition('PodScheduled', 'True'),
      condition('DisruptionTarget', 'True', 'TerminationByKubelet', 'The node was low on resource: memory.'),
      condition('Ready', 'False', 'PodFailed'),
    ],
  }),
};

async function setStatus(name: string, status: Record<string, unknown>): Promise<void> {
  await core.patchNamespacedPodStatus(
    { namespace, name, body: { status } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch, timeoutOptions(10_000)),
  );
}

let nextIp = 1;
const podIp = () => `10.244.${Math.floor(nextIp / 250)}.${(nextIp++ % 250) + 1}`;

/** Makes the worker Ready and waits until the runtime says so: from here on, it is serving. */
async function makeReady(runtime: KubernetesPodRuntime, ref: WorkerPodRef): Promise<void> {
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  const outcome = runtime.awaitReady(ref, { timeoutMs: 60_000, onWaiting: markWaiting });
  await within(Promise.race([waiting, outcome]), `wait for ${ref.name}`);
  await setStatus(ref.name, statuses.ready(podIp()));
  const result = await within(outcome, `readiness of ${ref.name}`);
  assert.equal(result.status, 'ready', JSON.stringify(result));
}

/** Verdicts as a health watch reports them, awaitable per pod. */
class VerdictLog {
  readonly all: PodHealthVerdict[] = [];
  private readonly waiters = new Map<string, (verdict: PodHealthVerdict) => void>();

  readonly onVerdict = (verdict: PodHealthVerdict): void => {
    this.all.push(verdict);
    this.waiters.get(verdict.ref.name)?.(verdict);
  };

  of(name: string): PodHealthVerdict[] {
    return this.all.filter((v) => v.ref.name === name);
  }

  next(name: string): Promise<PodHealthVerdict> {
    const seen = this.of(name);
    if (seen.length > 0) return Promise.resolve(seen[0]!);
    return within(new Promise((resolve) => this.waiters.set(name, resolve)), `verdict for ${name}`);
  }
}

/** A sentinel verdict: once it is in, every earlier change has been judged. */
async function judgedSoFar(runtime: KubernetesPodRuntime, verdicts: VerdictLog): Promise<void> {
  const sentinel = await createWorker(runtime);
  await makeReady(runtime, sentinel);
  await setStatus(sentinel.name, statuses.terminated('Error', 1));
  const verdict = await verdicts.next(sentinel.name);
  assert.equal(verdict.reason, 'pod_crashed');
}

test('readiness of many pods is served by one watch connection', async () => {
  const runtime = newRuntime();
  try {
    const count = 60;
    const refs: WorkerPodRef[] = [];
    for (let i = 0; i < count; i++) refs.push(await createWorker(runtime, { pool: 'many' }));
    const waits = refs.map((ref) => {
      let markWaiting!: () => void;
      const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
      const outcome = runtime.awaitReady(ref, { timeoutMs: 120_000, onWaiting: markWaiting });
      return { ref, outcome, established: Promise.race([waiting, outcome]) };
    });
    await within(Promise.all(waits.map((w) => w.established)), 'established waits');
    await Promise.all(refs.map((ref) => setStatus(ref.name, statuses.ready(podIp()))));
    const outcomes = await within(Promise.all(waits.map((w) => w.outcome)), 'readiness of every pod');

    assert.deepEqual(
      outcomes.map((o) => o.status),
      refs.map(() => 'ready'),
    );
    const endpoints = new Set(outcomes.map((o) => (o.status === 'ready' ? o.endpoint : '')));
    assert.equal(endpoints.size, count, 'each wait answered with its own pod');
    const counters = runtime.podInformer().counters;
    assert.equal(counters.watchesOpened, 1, `one watch for ${count} waits: ${JSON.stringify(counters)}`);
    assert.equal(counters.lists, 1, JSON.stringify(counters));
    for (const ref of refs) await runtime.delete(ref);
  } finally {
    await runtime.close();
  }
});

test('a Ready pod that crashes, is OOM-killed, is evicted, goes NotReady or is deleted by someone else: one verdict each', async () => {
  const runtime = newRuntime();
  const verdicts = new VerdictLog();
  const watch = runtime.watchHealth({ onVerdict: verdicts.onVerdict });
  try {
    const [crashed, oomKilled, evicted, notReady, deletedElsewhere] = await Promise.all(
      [1, 2, 3, 4, 5].map(() => createWorker(runtime)),
    );
    for (const ref of [crashed!, oomKilled!, evicted!, notReady!, deletedElsewhere!]) await makeReady(runtime, ref);

    await setStatus(crashed!.name, statuses.terminated('Error', 3));
    await setStatus(oomKilled!.name, statuses.terminated('OOMKilled', 137));
    await setStatus(evicted!.name, statuses.evicted());
    await setStatus(notReady!.name, statuses.notReady());
    await core.deleteNamespacedPod({ namespace, name: deletedElsewhere!.name }, timeoutOptions(10_000));

    const expected = new Map<WorkerPodRef, { reason: string; detail: RegExp }>([
      [crashed!, { reason: 'pod_crashed', detail: /exited while serving \(exit code 3/ }],
      [oomKilled!, { reason: 'pod_oom_killed', detail: /OOM/ }],
      [evicted!, { reason: 'pod_evicted', detail: /low on resource: memory/ }],
      [notReady!, { reason: 'health_check_failed', detail: /containers with unready status/ }],
      [deletedElsewhere!, { reason: 'pod_vanished', detail: /not by this corral worker/ }],
    ]);
    for (const [ref, { reason, detail }] of expected) {
      const verdict = await verdicts.next(ref.name);
      assert.deepEqual(verdict.ref, ref, 'the verdict names the worker spawn from the pod labels');
      assert.equal(verdict.reason, reason, JSON.stringify(verdict));
      assert.match(verdict.detail, detail);
    }

    // More status updates of a pod already judged are no new verdict.
    await setStatus(crashed!.name, statuses.terminated('OOMKilled', 137));
    await judgedSoFar(runtime, verdicts);
    for (const ref of expected.keys()) assert.equal(verdicts.of(ref.name).length, 1, `one verdict for ${ref.name}`);
  } finally {
    await watch.close();
    await runtime.close();
  }
});

test('no verdict for a pod this runtime deletes, for an unwatched worker, or for a pod that never served', async () => {
  const runtime = newRuntime();
  const verdicts = new VerdictLog();
  const unwatched = await createWorker(runtime);
  const watch = runtime.watchHealth({
    onVerdict: verdicts.onVerdict,
    watches: (workerId) => workerId !== unwatched.workerId,
  });
  try {
    const retired = await createWorker(runtime);
    const neverReady = await createWorker(runtime, { image: neverReadyImage });
    await makeReady(runtime, retired);
    await makeReady(runtime, unwatched);

    await runtime.delete(retired);
    await setStatus(unwatched.name, statuses.terminated('Error', 1));
    await setStatus(neverReady.name, statuses.terminated('Error', 1));
    await judgedSoFar(runtime, verdicts);

    assert.deepEqual(verdicts.of(retired.name), [], 'deleted by this runtime: no verdict');
    assert.deepEqual(verdicts.of(unwatched.name), [], 'another replica watches this worker');
    assert.deepEqual(verdicts.of(neverReady.name), [], 'never Ready: its readiness wait reports it');
    await runtime.delete(unwatched);
    await runtime.delete(neverReady);
  } finally {
    await watch.close();
    await runtime.close();
  }
});

test('a restarted corral (a new runtime) judges pods it never saw become Ready', async () => {
  const first = newRuntime();
  const [serving, diedWhileDown, unhealthyWhileDown] = await Promise.all([1, 2, 3].map(() => createWorker(first)));
  for (const ref of [serving!, diedWhileDown!, unhealthyWhileDown!]) await makeReady(first, ref);
  await first.close();
  await setStatus(diedWhileDown!.name, statuses.terminated('OOMKilled', 137));
  // Where KWOK runs the pod, this fate keeps it from making the pod Ready again.
  await core.patchNamespacedPod(
    {
      namespace,
      name: unhealthyWhileDown!.name,
      body: { metadata: { annotations: { 'corral.test/fate': 'unready' } } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch, timeoutOptions(10_000)),
  );
  await setStatus(unhealthyWhileDown!.name, statuses.notReady());

  const restarted = newRuntime();
  const verdicts = new VerdictLog();
  const watch = restarted.watchHealth({ onVerdict: verdicts.onVerdict });
  try {
    const died = await verdicts.next(diedWhileDown!.name);
    assert.equal(died.reason, 'pod_oom_killed', 'a pod that died while corral was down is judged on its first list');
    const unhealthy = await verdicts.next(unhealthyWhileDown!.name);
    assert.equal(
      unhealthy.reason,
      'health_check_failed',
      'Ready=False since after its container started: it was Ready before, and is no longer',
    );
    await setStatus(serving!.name, statuses.terminated('Error', 2));
    const crashed = await verdicts.next(serving!.name);
    assert.equal(crashed.reason, 'pod_crashed', JSON.stringify(crashed));
    for (const ref of [serving!, diedWhileDown!, unhealthyWhileDown!]) await restarted.delete(ref);
  } finally {
    await watch.close();
    await restarted.close();
  }
});

test('an apiserver restart: the informer resumes from its resourceVersion and misses no change', async () => {
  const runtime = newRuntime();
  const verdicts = new VerdictLog();
  const watch = runtime.watchHealth({ onVerdict: verdicts.onVerdict });
  try {
    const ref = await createWorker(runtime);
    await makeReady(runtime, ref);
    const beforeRestart = runtime.podInformer().counters;
    await kube.stopApiserver();
    await kube.startApiserver();
    // Most likely before the informer's backoff lets it reconnect; either way it must arrive.
    await setStatus(ref.name, statuses.terminated('Error', 1));
    const verdict = await verdicts.next(ref.name);
    assert.equal(verdict.reason, 'pod_crashed', JSON.stringify(verdict));

    const counters = runtime.podInformer().counters;
    assert.ok(counters.reconnects > beforeRestart.reconnects, `the watch reconnected: ${JSON.stringify(counters)}`);
    assert.equal(counters.relists, beforeRestart.relists, 'resumed from its resourceVersion, no re-list');
    assert.equal(counters.lists, beforeRestart.lists, JSON.stringify(counters));
    await runtime.delete(ref);
  } finally {
    await watch.close();
    await runtime.close();
  }
});

async function etcd(pathname: string, body: unknown): Promise<{ header?: { revision?: string } }> {
  const res = await fetch(`${kube.etcdUrl}${pathname}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(res.status, 200, `etcd ${pathname}: ${await res.clone().text()}`);
  return (await res.json()) as { header?: { revision?: string } };
}

test('a pod removed while the apiserver was down, history compacted: the informer re-lists and reports it gone', async () => {
  const runtime = newRuntime();
  const verdicts = new VerdictLog();
  const watch = runtime.watchHealth({ onVerdict: verdicts.onVerdict });
  try {
    const ref = await createWorker(runtime);
    await makeReady(runtime, ref);
    const beforeOutage = runtime.podInformer().counters;
    await kube.stopApiserver();
    // Behind the apiserver's back: the pod's key goes, and the history that would tell a watch so.
    const base64 = (text: string) => Buffer.from(text).toString('base64');
    await etcd('/v3/kv/deleterange', { key: base64(`/registry/pods/${namespace}/${ref.name}`) });
    const put = await etcd('/v3/kv/put', { key: base64('corral-test/bump'), value: base64('x') });
    await etcd('/v3/kv/compaction', { revision: put.header?.revision, physical: true });
    await kube.startApiserver();

    const verdict = await verdicts.next(ref.name);
    assert.equal(verdict.reason, 'pod_vanished', JSON.stringify(verdict));
    const counters = runtime.podInformer().counters;
    assert.ok(counters.relists > beforeOutage.relists, `re-listed after 410: ${JSON.stringify(counters)}`);
    assert.equal(runtime.podInformer().get(ref.name), undefined, 'the cache forgot the pod');
    await runtime.delete(ref);
  } finally {
    await watch.close();
    await runtime.close();
  }
});
