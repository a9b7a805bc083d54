// A pool on the Kubernetes runtime end to end, against the real kube-apiserver + etcd: the real
// dev server, registry, pool and worker workflows and CorralClient, with the harness's kubelet
// running the real demo worker behind each pod (test/harness/kube-pool-e2e.ts). Fill → claim →
// release → same-tenant reuse → drain, and nothing of the pool left in the namespace.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort } from '../../src/embedded/ports';
import { waitFor } from '../../src/embedded/wait';
import { corralAnnotations, corralLabels, managedBySelector } from '../../src/runtime/kubernetes/pod-manifest';
import { useKubePoolE2e, type KubePoolE2e } from '../harness/kube-pool-e2e';
import { setPodFate } from '../harness/kwok';
import { demoPoolSpec } from '../harness/pool-e2e';

let e2e: KubePoolE2e;
before(async () => {
  e2e = await useKubePoolE2e();
});
after(async () => {
  await e2e?.close();
});

const image = 'registry.example/corral/demo-worker:0.1.0';

async function rowsOf(pool: string) {
  return (await e2e.registry.store.listWorkers({ pool, limit: 1_000 })).filter((w) => w.pool === pool);
}

/** The pool's pods (not being deleted) and secrets, straight from the apiserver. */
async function objectsOf(pool: string) {
  const labelSelector = `${managedBySelector},${corralLabels.pool}=${pool}`;
  const [pods, secrets] = await Promise.all([
    e2e.core.listNamespacedPod({ namespace: e2e.namespace, labelSelector }),
    e2e.core.listNamespacedSecret({ namespace: e2e.namespace, labelSelector }),
  ]);
  return { pods: pods.items.filter((p) => !p.metadata?.deletionTimestamp), secrets: secrets.items };
}

async function healthOf(endpoint: string) {
  const res = await fetch(`${endpoint}/healthz`, { signal: AbortSignal.timeout(5_000) });
  return (await res.json()) as { workerId: string; tenant: string | null; highestEpoch: number; status: string };
}

test('a kubernetes pool fills, serves a claim, keeps the worker hot for its tenant and drains to nothing', async () => {
  const pool = 'kube';
  // One port for every pod of the pool, as in a cluster; the harness's kubelet gives each pod its own IP.
  const port = await freePort();
  const applied = await e2e.corral.applyPool(
    demoPoolSpec(pool, { runtime: 'kubernetes', image, port, minIdle: 1, maxWorkers: 1, releasePolicy: 'hot_idle' }),
  );
  assert.equal(applied.created, true);

  // Fill: one idle worker, backed by one Pod and one Secret in the namespace.
  await e2e.waitForCounts(pool, { idle: 1, spawning: 0, activating: 0 });
  const [worker] = await rowsOf(pool);
  assert.equal(worker.state, 'idle');
  const { pods, secrets } = await objectsOf(pool);
  assert.deepEqual(
    pods.map((p) => p.metadata?.name),
    [worker.podName],
  );
  assert.deepEqual(
    secrets.map((s) => s.metadata?.name),
    [`${worker.podName}-credentials`],
  );
  const [pod] = pods;
  assert.equal(pod.metadata?.labels?.[corralLabels.workerId], worker.id);
  assert.equal(pod.spec?.containers[0]?.image, image);
  assert.equal(pod.status?.phase, 'Running');
  assert.equal(worker.endpoint, `http://${pod.status?.podIP}:${port}`, 'the endpoint is the pod IP and its port');
  assert.equal(
    secrets[0].metadata?.annotations?.[corralAnnotations.credentialVersion],
    String(worker.credentialVersion),
    'the Secret holds the credentials the registry recorded',
  );
  assert.deepEqual(
    (await e2e.runtime.listManaged({ pool })).map((m) => ({
      workerId: m.workerId,
      hasPod: m.hasPod,
      hasSecret: m.hasSecret,
      verdict: m.verdict,
    })),
    [{ workerId: worker.id, hasPod: true, hasSecret: true, verdict: { status: 'ready' } }],
  );
  const warm = await healthOf(worker.endpoint!);
  assert.deepEqual(
    { workerId: warm.workerId, tenant: warm.tenant, highestEpoch: warm.highestEpoch },
    { workerId: worker.id, tenant: null, highestEpoch: worker.epoch },
    'activated warm: its identity and epoch, no tenant',
  );

  // Claim: the warm worker, fenced by a valid lease, handed its tenant over HTTP.
  const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'kube-1' });
  assert.deepEqual(
    { workerId: lease.workerId, tenant: lease.tenant, path: lease.path, endpoint: lease.endpoint },
    { workerId: worker.id, tenant: 'acme', path: 'warm', endpoint: worker.endpoint },
  );
  assert.equal(lease.epoch, worker.epoch + 1);
  assert.equal((await e2e.corral.checkLease(lease)).status, 'valid');
  const claimed = await healthOf(lease.endpoint);
  assert.deepEqual([claimed.tenant, claimed.highestEpoch], ['acme', lease.epoch], 'the worker saw the tenant');

  // Release: hot_idle for acme; the old lease is dead; the same tenant gets the same pod back.
  const released = await e2e.corral.release(lease);
  assert.deepEqual(released, { workerId: worker.id, state: 'hot_idle', epoch: lease.epoch + 1 });
  assert.equal((await e2e.corral.checkLease(lease)).status, 'stale_lease');
  const hot = await e2e.registry.store.getWorker(worker.id);
  assert.deepEqual([hot?.state, hot?.tenant], ['hot_idle', 'acme']);
  const again = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'kube-2' });
  assert.deepEqual([again.workerId, again.epoch], [worker.id, released.epoch + 1], 'hot_idle reused by its tenant');
  assert.equal((await healthOf(again.endpoint)).highestEpoch, again.epoch);
  assert.deepEqual(
    (await objectsOf(pool)).pods.map((p) => p.metadata?.uid),
    [pod.metadata?.uid],
    'the same pod served both claims',
  );
  assert.equal((await e2e.corral.release(again)).state, 'hot_idle');

  // Drain: every row retired, no Pod, no Secret, no worker process left.
  await e2e.corral.drainPool(pool);
  const result = await e2e.corral.waitForDrained(pool);
  assert.equal(result.status, 'drained');
  const rows = await rowsOf(pool);
  assert.deepEqual(
    rows.map((w) => [w.id, w.state]),
    [[worker.id, 'retired']],
  );
  const left = await objectsOf(pool);
  assert.deepEqual({ pods: left.pods.length, secrets: left.secrets.length }, { pods: 0, secrets: 0 });
  assert.deepEqual(await e2e.runtime.listManaged({ pool }), []);
  await waitFor(() => e2e.kubelet.runningPods().length === 0, {
    what: 'the kubelet to stop the deleted pod’s worker',
    timeoutMs: 30_000,
  });
  const trail = (await e2e.registry.store.history(worker.id)).map((t) => t.toState);
  assert.deepEqual(
    [trail[0], trail.filter((state) => state === 'claimed').length, trail.at(-1)],
    ['spawning', 2, 'retired'],
    trail.join(' → '),
  );
});

test('without a health hook, a serving pod that dies is noticed by its status: lost with the typed reason, replaced', async () => {
  const pool = 'kube-nohook';
  const port = await freePort();
  await e2e.corral.applyPool(
    demoPoolSpec(pool, { runtime: 'kubernetes', image, port, minIdle: 2, maxWorkers: 3, healthPath: null }),
  );
  await e2e.waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 });
  const [oomVictim, evictVictim] = (await rowsOf(pool)).filter((w) => w.state === 'idle');
  const { pods } = await objectsOf(pool);
  const probe = pods.find((p) => p.metadata?.name === oomVictim!.podName)?.spec?.containers[0]?.readinessProbe;
  assert.equal(probe?.tcpSocket?.port, 'http', 'no health hook: the kubelet probes the port only');
  assert.equal(probe?.httpGet, undefined);

  // KWOK plays the kubelet: one pod is OOM-killed, the other evicted (status only; nobody calls corral).
  await setPodFate(e2e.core, e2e.namespace, oomVictim!.podName!, 'oom');
  await setPodFate(e2e.core, e2e.namespace, evictVictim!.podName!, 'evict');
  for (const [victim, reason] of [
    [oomVictim!, 'pod_oom_killed'],
    [evictVictim!, 'pod_evicted'],
  ] as const) {
    await waitFor(async () => (await e2e.registry.store.getWorker(victim.id))?.state === 'lost', {
      what: `${victim.id} to be lost`,
      timeoutMs: 60_000,
    });
    assert.equal((await e2e.registry.store.getWorker(victim.id))?.failureReason, reason);
  }
  await e2e.waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 });
  await e2e.corral.deletePool(pool, { timeoutMs: 120_000, intervalMs: 500 });
});
