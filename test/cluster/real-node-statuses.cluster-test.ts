// corral's Kubernetes runtime against a real kubelet (test/harness/real-node.ts): every typed
// failure reason produced by real pods on a real node (containerd + runc + CNI bridge), reaching
// the waiting caller (awaitReady) or the health watch as the classifier says it should. The
// statuses the kubelet wrote are kept in test-results/real-node-statuses.json (the shapes
// test/fixtures/kubelet-pod-statuses.ts's `realKubeletScenarios` were taken from).
//
// Not part of `make test`: it needs root and a provisioned node (`make test-cluster`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { classifyPodFailure } from '../../src/runtime/classify-pod-failure';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import type { PodHealthVerdict } from '../../src/runtime/pod-runtime';
import type { WorkerPodSpecInput } from '../../src/runtime/worker-pod-spec';
import { repoRoot } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { workerProtocolV1, type WorkerPodRef } from '../../src/common';
import { createTestNamespace } from '../harness/kube-namespace';
import { realNodeImages, startRealNode, type RealNode } from '../harness/real-node';
import { credentials, newWorkerId } from '../integration/runtime-behaviour';

const pool = 'real';
const port = 8080;
const notScheduledGraceMs = 1_500;
/** Bounds on a readiness wait: a real pod starts in about a second, but the machine is shared. */
const waitMs = 90_000;
const testTimeout = { timeout: 180_000 };

let node: RealNode;
let admin: KubeConfig;
let core: CoreV1Api;
let namespace: string;
let runtime: KubernetesPodRuntime;
/** The statuses the kubelet wrote, by scenario: kept for the fixtures. */
const observed: Record<string, unknown> = {};

const spec = (workerId: string, over: Partial<WorkerPodSpecInput> = {}): WorkerPodSpecInput => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image: realNodeImages.worker,
  port,
  healthIntervalMs: 1_000,
  healthFailureThreshold: 1,
  // CPU limits under 100m throttle runc init itself (seconds per start); requests small so pods fit 2 cores.
  resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 200, memoryMiB: 64 } },
  maxLifetimeSeconds: 3_600,
  ...over,
});

before(async () => {
  node = await startRealNode();
  // The check run after stop() sees a live node (so its empty answer then means something).
  assert.ok(
    (await node.leftovers()).some((item) => item.startsWith('bridge ')),
    'leftovers() sees the bridge',
  );
  admin = node.kubeConfig();
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace(admin, 'real');
  runtime = new KubernetesPodRuntime({ kubeConfig: admin, namespace, notScheduledGraceMs, unreachableAfterMs: 30_000 });
});

after(async () => {
  await runtime?.close();
  const out = path.join(repoRoot, 'test-results', 'real-node-statuses.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(observed, null, 2)}\n`);
  if (!node) return;
  // Throws if a teardown step failed; then, checked afresh, nothing of the node is left.
  await node.stop();
  assert.deepEqual(await node.leftovers(), [], 'the real node left nothing on the machine');
});

async function readPod(name: string): Promise<V1Pod | undefined> {
  return core.readNamespacedPod({ namespace, name }).catch((err: unknown) => {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  });
}

/** The pod's status as the kubelet wrote it (the wire form: timestamps as strings). */
async function record(scenario: string, name: string): Promise<void> {
  const pod = await readPod(name);
  if (pod?.status) observed[scenario] = JSON.parse(JSON.stringify(pod.status)) as unknown;
}

/** Creates a worker, waits (as corral does), and optionally acts once the wait has begun. */
async function spawn(
  workerSpec: WorkerPodSpecInput,
  options: { timeoutMs?: number; afterWaiting?: (ref: WorkerPodRef) => Promise<void> } = {},
) {
  const { ref } = await runtime.create(workerSpec, credentials(1));
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  const outcome = runtime.awaitReady(ref, { timeoutMs: options.timeoutMs ?? waitMs, onWaiting: markWaiting });
  if (options.afterWaiting) {
    await Promise.race([waiting, outcome]);
    await options.afterWaiting(ref);
  }
  return { ref, outcome: await outcome };
}

/** Deletes through the runtime and waits until the kubelet has really removed the pod. */
async function remove(ref: WorkerPodRef): Promise<void> {
  await runtime.delete(ref);
  await waitFor(async () => (await readPod(ref.name)) === undefined, {
    what: `pod ${ref.name} to be gone`,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
}

async function waitForContainerRunning(name: string): Promise<void> {
  await waitFor(async () => (await readPod(name))?.status?.containerStatuses?.[0]?.state?.running !== undefined, {
    what: `${name}'s container to run`,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
}

function failedWith(outcome: { status: string }, reason: string): string {
  assert.equal(outcome.status, 'failed', JSON.stringify(outcome));
  const failed = outcome as { status: 'failed'; reason: string; detail: string };
  assert.equal(failed.reason, reason, JSON.stringify(outcome));
  return failed.detail;
}

test('a worker on the real node turns Ready and answers the worker protocol on its pod IP', testTimeout, async () => {
  const { ref, outcome } = await spawn(spec(newWorkerId()));
  assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
  const endpoint = outcome.status === 'ready' ? outcome.endpoint : '';
  const prefix = node.podCidr.replace(/0\/24$/, '');
  assert.ok(endpoint.startsWith(`http://${prefix}`), `${endpoint} is an address of the pod bridge ${node.podCidr}`);
  const health = (await (await fetch(`${endpoint}/healthz`, { signal: AbortSignal.timeout(5_000) })).json()) as {
    protocol?: string;
  };
  assert.equal(health.protocol, workerProtocolV1);
  await record('ready', ref.name);
  const listed = (await runtime.listManaged({ pool })).find((w) => w.name === ref.name);
  assert.deepEqual(listed?.verdict, { status: 'ready' });
  await remove(ref);
});

test('an image the closed registry cannot serve is image_pull_backoff', testTimeout, async () => {
  const { ref, outcome } = await spawn(spec(newWorkerId(), { image: 'registry.example/corral/demo-worker:0.1.0' }));
  const detail = failedWith(outcome, 'image_pull_backoff');
  assert.match(detail, /ErrImagePull|ImagePullBackOff/);
  await record('imagePull', ref.name);
  await remove(ref);
});

test('an image whose entrypoint does not exist is invalid_image', testTimeout, async () => {
  const { ref, outcome } = await spawn(spec(newWorkerId(), { image: realNodeImages.noEntrypoint }));
  const detail = failedWith(outcome, 'invalid_image');
  assert.match(detail, /no such file or directory/);
  await record('entrypointMissing', ref.name);
  await remove(ref);
});

test('a worker that exits 1 before it is ready is pod_crashed', testTimeout, async () => {
  const { ref, outcome } = await spawn(spec(newWorkerId(), { args: ['/bin/sh', '-c', 'echo crashing; exit 1'] }));
  const detail = failedWith(outcome, 'pod_crashed');
  assert.match(detail, /exit code 1/);
  await record('exitedBeforeReady', ref.name);
  await remove(ref);
});

test('a worker over its 32Mi memory limit is pod_oom_killed', testTimeout, async () => {
  const { ref, outcome } = await spawn(
    spec(newWorkerId(), {
      args: ['/bin/memhog', '512'],
      resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 200, memoryMiB: 32 } },
    }),
  );
  failedWith(outcome, 'pod_oom_killed');
  await record('oomKilled', ref.name);
  await remove(ref);
});

test('a pod past its activeDeadlineSeconds is failed by the kubelet: deadline_exceeded', testTimeout, async () => {
  const { ref, outcome } = await spawn(spec(newWorkerId(), { healthPath: '/never-ready' }), {
    afterWaiting: async (r) => {
      await waitForContainerRunning(r.name);
      // A pool's lifetime is at least a minute; a running pod's deadline may be lowered.
      await core.patchNamespacedPod(
        { namespace, name: r.name, body: { spec: { activeDeadlineSeconds: 2 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },
  });
  const detail = failedWith(outcome, 'deadline_exceeded');
  assert.match(detail, /deadline/);
  await record('activeDeadlineExceeded', ref.name);
  await remove(ref);
});

test('a pod no node can hold is pod_not_scheduled once its grace period ends', testTimeout, async () => {
  const tooBig = { requests: { cpuMillis: 512_000, memoryMiB: 16 }, limits: { cpuMillis: 512_000, memoryMiB: 16 } };
  const { ref, outcome } = await spawn(spec(newWorkerId(), { resources: tooBig }));
  const detail = failedWith(outcome, 'pod_not_scheduled');
  assert.match(detail, /Insufficient cpu/);
  await record('unschedulable', ref.name);
  await remove(ref);
});

test(
  'a running worker whose readiness probe never passes is health_check_failed at the deadline',
  testTimeout,
  async () => {
    const workerId = newWorkerId();
    const { ref } = await runtime.create(spec(workerId, { healthPath: '/never-ready' }), credentials(1));
    await waitForContainerRunning(ref.name);
    // The probe has failed at least once: Ready=False with the container running.
    await waitFor(
      async () =>
        (await readPod(ref.name))?.status?.conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'False' && c.reason === 'ContainersNotReady',
        ),
      { what: `${ref.name} running and not ready`, timeoutMs: 60_000, intervalMs: 250 },
    );
    const outcome = await runtime.awaitReady(ref, { timeoutMs: 3_000 });
    const detail = failedWith(outcome, 'health_check_failed');
    assert.match(detail, /readiness probe of worker did not pass/);
    await record('runningNotReady', ref.name);
    await remove(ref);
  },
);

test('a worker deleted by someone else during the wait is pod_vanished', testTimeout, async () => {
  const { outcome } = await spawn(spec(newWorkerId(), { healthPath: '/never-ready' }), {
    afterWaiting: async (r) => {
      await waitForContainerRunning(r.name);
      await core.deleteNamespacedPod({ namespace, name: r.name });
    },
  });
  failedWith(outcome, 'pod_vanished');
});

test(
  'a serving worker: its probe failing is health_check_failed, then its deletion by someone else is pod_vanished',
  testTimeout,
  async () => {
    // busybox httpd serves /healthz until the test connects to :9000, then it is stopped; the
    // container keeps running, so only the readiness probe can tell.
    // The shell stays PID 1 and exits on SIGTERM, so a delete takes no grace period.
    const script = `trap 'exit 0' TERM; httpd -f -p "$PORT" -h / & h=$!; nc -l -p 9000 </dev/null >/dev/null; kill "$h"; sleep 3600 & wait`;
    const { ref, outcome } = await spawn(spec(newWorkerId(), { args: ['/bin/sh', '-c', script] }));
    assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
    const podIP = outcome.status === 'ready' ? new URL(outcome.endpoint).hostname : '';

    const verdicts: PodHealthVerdict[] = [];
    const watch = runtime.watchHealth({ onVerdict: (v) => verdicts.push(v) });
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host: podIP, port: 9000 }, () => {
          socket.end();
          resolve();
        });
        socket.on('error', reject);
      });
      await waitFor(() => verdicts.length > 0, { what: 'a health verdict', timeoutMs: 60_000, intervalMs: 100 });
      assert.equal(verdicts[0]?.ref.name, ref.name);
      assert.equal(verdicts[0]?.reason, 'health_check_failed', JSON.stringify(verdicts));
      await record('servedThenNotReady', ref.name);

      // A second worker, ready, deleted by someone else while the watch runs.
      const second = await spawn(spec(newWorkerId()));
      assert.equal(second.outcome.status, 'ready', JSON.stringify(second.outcome));
      await core.deleteNamespacedPod({ namespace, name: second.ref.name });
      await waitFor(() => verdicts.find((v) => v.ref.name === second.ref.name), {
        what: 'a verdict for the deleted worker',
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      assert.equal(verdicts.find((v) => v.ref.name === second.ref.name)?.reason, 'pod_vanished');
      await remove(second.ref);
    } finally {
      await watch.close();
    }
    await remove(ref);
  },
);

// Shapes corral's own pods (restartPolicy Never, a validated image name, IfNotPresent) never
// show, made with plain pods and given to the classifier as the kubelet wrote them.
async function rawPod(name: string, container: Record<string, unknown>, restartPolicy = 'Always'): Promise<void> {
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: {
        restartPolicy,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        dnsPolicy: 'Default',
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'worker', resources: { limits: { cpu: '200m', memory: '32Mi' } }, ...container }] as never,
      },
    },
  });
}

async function waitingReason(name: string, reason: string): Promise<V1Pod> {
  return waitFor(
    async () => {
      const pod = await readPod(name);
      return pod?.status?.containerStatuses?.[0]?.state?.waiting?.reason === reason ? pod : undefined;
    },
    { what: `${name} waiting with ${reason}`, timeoutMs: 90_000, intervalMs: 250 },
  );
}

const classify = (pod: V1Pod) => {
  const verdict = classifyPodFailure(JSON.parse(JSON.stringify(pod)) as V1Pod, {
    now: new Date(),
    notScheduledGraceMs,
  });
  return verdict.status === 'failed' ? verdict.reason : verdict.status;
};

test(
  'real ErrImageNeverPull, InvalidImageName and CrashLoopBackOff statuses classify as invalid_image, invalid_image, pod_crashed',
  testTimeout,
  async () => {
    await rawPod('never-pull', { image: 'corral.test/missing:1', imagePullPolicy: 'Never' });
    await rawPod('bad-name', { image: 'corral.test/UPPER:1' });
    await rawPod('crash-loop', { image: realNodeImages.worker, args: ['/bin/sh', '-c', 'echo crashing; exit 1'] });
    const cases: [string, string, string, string][] = [
      ['never-pull', 'ErrImageNeverPull', 'invalid_image', 'errImageNeverPull'],
      ['bad-name', 'InvalidImageName', 'invalid_image', 'invalidImageName'],
      ['crash-loop', 'CrashLoopBackOff', 'pod_crashed', 'crashLoopBackOff'],
    ];
    for (const [name, reason, expected, scenario] of cases) {
      const pod = await waitingReason(name, reason);
      observed[scenario] = JSON.parse(JSON.stringify(pod.status)) as unknown;
      assert.equal(classify(pod), expected, `${name}: ${JSON.stringify(pod.status)}`);
    }
    for (const [name] of cases) await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 });
  },
);
