// Pools end to end: the real dev server, the real registry, the process runtime running the real
// demo worker, the pool workflow and CorralClient. Fill and self-heal, the spawn breaker, release
// policies and drain.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isCorralError } from '../../src/client/errors';
import { parsePoolSpec } from '../../src/config/pool-spec';
import { describePoolQuery, poolWorkflowId } from '../../src/common';
import { workerProcessGroups } from '../harness/process-inspection';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';
import { waitFor } from '../../src/embedded/wait';
import { recordHistory } from '../harness/lifecycle-env';

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e();
});
after(async () => {
  await e2e?.close();
});

async function rowsOf(pool: string) {
  return (await e2e.registry.store.listWorkers({ pool, limit: 1_000 })).filter((w) => w.pool === pool);
}

test('minIdle 5 fills the pool; a killed worker is replaced with no call from anyone', async () => {
  const pool = 'fill';
  const applied = await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 5, maxWorkers: 8 }));
  assert.equal(applied.created, true);
  await e2e.waitForCounts(pool, { idle: 5, spawning: 0, activating: 0 });

  const again = await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 5, maxWorkers: 8 }));
  assert.deepEqual(
    { created: again.created, changed: again.changed, generation: again.pool.generation },
    { created: false, changed: false, generation: 1 },
    'applying the same spec changes nothing',
  );

  const [victim] = (await rowsOf(pool)).filter((w) => w.state === 'idle');
  const groups = workerProcessGroups(victim.id);
  assert.equal(groups.length, 1);
  process.kill(-Number(groups[0]), 'SIGKILL');

  // The process prober sees it exit, the worker workflow ends it lost, the pool refills.
  await waitFor(async () => (await e2e.registry.store.getWorker(victim.id))?.state === 'lost', {
    what: 'the killed worker to be lost',
    timeoutMs: 60_000,
  });
  await e2e.waitForCounts(pool, { idle: 5, spawning: 0, activating: 0 });
  const rows = await rowsOf(pool);
  assert.equal(rows.length, 6, 'exactly one replacement');
  assert.equal(rows.filter((w) => w.state === 'lost').length, 1);
  const trail = await e2e.registry.store.history(victim.id);
  assert.ok(
    trail.every((t) => t.origin !== 'client' && t.origin !== 'operator'),
    'nobody called anything',
  );
});

test('a bad image opens the breaker, one probe at a time in half-open, a fixed spec closes it and fills', async (t) => {
  const pool = 'breaker';
  const spec = demoPoolSpec(pool, {
    image: '/nonexistent/corral-worker-image',
    minIdle: 3,
    maxWorkers: 6,
    // A long cooldown first, so the spawns made before the breaker opened can be counted at rest.
    breaker: { failureThreshold: 3, cooldown: '1h', successThreshold: 1 },
  });
  await e2e.corral.applyPool(spec);
  const handle = e2e.client.workflow.getHandle(poolWorkflowId(pool));
  await waitFor(async () => (await handle.query(describePoolQuery)).breaker.state === 'open', {
    what: 'the breaker to open',
    timeoutMs: 60_000,
  });
  assert.equal(await e2e.metricValue('corral_spawn_breaker_state', { pool }), 2, 'gauge says open');
  assert.equal((await e2e.pools.getPool(pool))?.breakerState, 'open');
  await waitFor(async () => (await e2e.counts(pool)).spawning === undefined, {
    what: 'the last spawns to end',
    timeoutMs: 30_000,
  });
  const beforeOpen = await rowsOf(pool);
  assert.ok(beforeOpen.every((w) => w.state === 'lost' && w.failureReason === 'invalid_image'));
  // Threshold 3 with minIdle 3: at most the first batch of 3 plus one replacement per failure
  // counted below the threshold.
  assert.ok(beforeOpen.length >= 3 && beforeOpen.length <= 5, `${beforeOpen.length} spawns before opening`);

  // A 1 s cooldown (a spec change, so the next probe comes at once): each half-open lets exactly
  // one probe spawn, which fails and re-opens the breaker.
  await e2e.corral.applyPool({ ...spec, breaker: { failureThreshold: 3, cooldown: '1s', successThreshold: 1 } });
  await waitFor(async () => (await handle.query(describePoolQuery)).totals.probes >= 3, {
    what: 'three half-open probes',
    timeoutMs: 60_000,
  });
  const seen = new Set(beforeOpen.map((w) => w.id));
  const probes = (await rowsOf(pool))
    .filter((w) => !seen.has(w.id))
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  assert.ok(probes.length >= 3);
  for (let i = 1; i < probes.length; i++) {
    assert.ok(
      probes[i - 1].state === 'lost' && probes[i - 1].stateSince.getTime() <= probes[i].createdAt.getTime(),
      `probe ${i} was created while probe ${i - 1} was still running`,
    );
  }
  t.diagnostic(
    `bad image: ${beforeOpen.length} spawns before the breaker opened (threshold 3, minIdle 3), then one probe ` +
      `per cooldown (${probes.length} so far, never two at once); invalid_image is not retried within a worker`,
  );

  // Fix the image: the new spec earns a probe at once; it succeeds, the breaker closes, the pool fills.
  const fixed = await e2e.corral.applyPool({
    ...spec,
    image: demoPoolSpec(pool).image,
    breaker: { failureThreshold: 3, cooldown: '1s', successThreshold: 1 },
  });
  assert.equal(fixed.changed, true);
  await e2e.waitForCounts(pool, { idle: 3, spawning: 0, activating: 0 });
  const closed = await handle.query(describePoolQuery);
  assert.equal(closed.breaker.state, 'closed');
  await recordHistory(handle, 'pool-breaker');
  assert.equal(await e2e.metricValue('corral_spawn_breaker_state', { pool }), 0, 'gauge says closed');
});

test('release policies: hot_idle reuse by the same tenant only, recycle, retire; a retried release answers the same, a stale one is refused', async () => {
  await e2e.corral.applyPool(demoPoolSpec('hot', { minIdle: 1, releasePolicy: 'hot_idle' }));
  await e2e.corral.applyPool(demoPoolSpec('recycle', { minIdle: 1, releasePolicy: 'recycle' }));
  await e2e.corral.applyPool(demoPoolSpec('retire', { minIdle: 1, releasePolicy: 'retire' }));
  await Promise.all(['hot', 'recycle', 'retire'].map((p) => e2e.waitForCounts(p, { idle: 1 })));

  // hot_idle: the tenant's own worker comes back to it, never to another tenant.
  const first = await e2e.corral.claim('hot', { tenant: 'acme', requestId: 'hot-1' });
  const released = await e2e.corral.release(first);
  assert.equal(released.state, 'hot_idle');
  assert.deepEqual(await e2e.corral.release(first), released, 'a retried release answers what the first one did');
  await assert.rejects(e2e.corral.release({ ...first, epoch: first.epoch - 1 }), (err) =>
    isCorralError(err, 'stale_lease'),
  );
  await e2e.waitForCounts('hot', { idle: 1 }); // the pool refilled behind the hot_idle worker
  const other = await e2e.corral.claim('hot', { tenant: 'globex', requestId: 'hot-2' });
  assert.notEqual(other.workerId, first.workerId, 'another tenant never gets the hot_idle worker');
  const again = await e2e.corral.claim('hot', { tenant: 'acme', requestId: 'hot-3' });
  assert.equal(again.workerId, first.workerId, 'the same tenant reuses its hot_idle worker first');
  assert.equal(again.epoch, released.epoch + 1);
  assert.equal((await e2e.corral.checkLease(first)).status, 'stale_lease');
  assert.equal((await e2e.corral.checkLease(again)).status, 'valid');

  // recycle: back to idle, unbound, claimable by anyone.
  const r1 = await e2e.corral.claim('recycle', { tenant: 'acme', requestId: 'rec-1' });
  assert.deepEqual(await e2e.corral.release(r1), { workerId: r1.workerId, state: 'idle', epoch: r1.epoch + 1 });
  const row = await e2e.registry.store.getWorker(r1.workerId);
  assert.equal(row?.tenant, null);
  // The pool refilled while r1 was out, so two workers are idle now: two claims take both.
  const taken = await Promise.all(
    ['rec-2', 'rec-3'].map((requestId) => e2e.corral.claim('recycle', { tenant: 'globex', requestId })),
  );
  assert.ok(
    taken.some((lease) => lease.workerId === r1.workerId),
    'a recycled worker serves another tenant',
  );

  // retire: single use; the worker drains and its pod goes.
  const t1 = await e2e.corral.claim('retire', { tenant: 'acme', requestId: 'ret-1' });
  assert.equal((await e2e.corral.release(t1)).state, 'draining');
  await waitFor(async () => (await e2e.registry.store.getWorker(t1.workerId))?.state === 'retired', {
    what: 'the single-use worker to retire',
    timeoutMs: 30_000,
  });
  assert.equal((await e2e.runtime.listManaged()).filter((m) => m.workerId === t1.workerId).length, 0);
});

test('drain: no new claims, claimed workers drain after release, every pod and row gone, workflow completes', async () => {
  const pool = 'drain';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 3 }));
  await e2e.waitForCounts(pool, { idle: 3 });
  const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'drain-1' });

  await e2e.corral.drainPool(pool);
  await assert.rejects(e2e.corral.claim(pool, { tenant: 'acme', requestId: 'drain-2' }), (err) =>
    isCorralError(err, 'pool_draining'),
  );
  // Idle workers go; the claimed one keeps its tenant until release.
  await e2e.waitForCounts(pool, { idle: 0, claimed: 1, draining: 0 });
  assert.equal((await e2e.corral.checkLease(lease)).status, 'valid');
  await e2e.corral.release(lease);

  const result = await e2e.corral.waitForDrained(pool);
  assert.equal(result.status, 'drained');
  await recordHistory(e2e.client.workflow.getHandle(poolWorkflowId(pool)), 'pool-fill-drain');
  const rows = await rowsOf(pool);
  assert.ok(rows.length >= 3);
  assert.ok(
    rows.every((w) => w.state === 'retired'),
    JSON.stringify(rows.map((w) => w.state)),
  );
  assert.deepEqual(
    (await e2e.runtime.listManaged()).filter((m) => m.pool === pool),
    [],
    'no pod and no secret left in the runtime',
  );
  assert.equal((await e2e.pools.getPool(pool))?.status, 'drained');
});

test('the pool continues as new and carries on: same workers, breaker and totals, no extra spawns', async () => {
  const pool = 'longlived';
  await e2e.pools.applyPool(parsePoolSpec(demoPoolSpec(pool, { minIdle: 2, maxWorkers: 4 })));
  // Started directly (not by applyPool) to set a low history threshold and a fast reconcile tick.
  const first = await e2e.client.workflow.start('poolWorkflow', {
    taskQueue: e2e.taskQueue,
    workflowId: poolWorkflowId(pool),
    args: [{ pool, continueAsNewAfterEvents: 40, reconcileIntervalMs: 200 }],
  });
  await e2e.waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 });
  await waitFor(
    async () =>
      (await e2e.client.workflow.getHandle(poolWorkflowId(pool), first.firstExecutionRunId).describe()).status.name ===
      'CONTINUED_AS_NEW',
    { what: 'the first run to continue as new', timeoutMs: 60_000 },
  );
  const latest = e2e.client.workflow.getHandle(poolWorkflowId(pool));
  await waitFor(
    async () =>
      (await latest.describe()).runId !== first.firstExecutionRunId &&
      (await latest.query(describePoolQuery)).inventory.idle === 2,
    {
      what: 'a later run to describe the pool',
      timeoutMs: 30_000,
    },
  );
  const described = await latest.query(describePoolQuery);
  assert.equal(described.totals.spawnsStarted, 2, 'the count crossed the run boundary');
  assert.equal(described.breaker.state, 'closed');
  assert.equal((await rowsOf(pool)).length, 2, 'no run spawned again what an earlier run had spawned');
  await latest.terminate('test done');
});
