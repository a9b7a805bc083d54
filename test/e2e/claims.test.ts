// 100 concurrent claims against a pool with 10 idle workers and maxWorkers 40, end to end:
// real dev server, registry, process runtime and demo workers, CorralClient.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ClaimResult } from '../../src/client/corral-client';
import { CorralError } from '../../src/client/errors';
import { workerLifecycleWorkflowId } from '../../src/workflows/worker-lifecycle/messages';
import { recordHistory } from '../harness/lifecycle-env';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e();
});
after(async () => {
  await e2e?.close();
});

test('100 concurrent claims: distinct leases, 10 warm, 30 cold, the rest at_capacity; repeats get the same lease', async (t) => {
  const pool = 'burst';
  const spec = demoPoolSpec(pool, { minIdle: 10, maxWorkers: 40, releasePolicy: 'recycle' });
  await e2e.corral.applyPool(spec);
  await e2e.waitForCounts(pool, { idle: 10, spawning: 0, activating: 0 });
  // minIdle 0 from now on (a live spec change), so refills do not race the burst for capacity.
  await e2e.corral.applyPool({ ...spec, minIdle: 0 });

  const outcomes = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      e2e.corral
        .claim(pool, { tenant: `tenant-${i % 7}`, requestId: `burst-${i}`, timeout: '2m' })
        .then((lease) => ({ i, lease }))
        .catch((error: unknown) => ({ i, error })),
    ),
  );
  const leases = outcomes.flatMap((o) => ('lease' in o ? [o as { i: number; lease: ClaimResult }] : []));
  const errors = outcomes.flatMap((o) => ('error' in o ? [o.error] : []));
  for (const error of errors) {
    assert.ok(error instanceof CorralError && error.code === 'at_capacity', `unexpected failure: ${String(error)}`);
  }
  const warm = leases.filter((l) => l.lease.path === 'warm').length;
  const cold = leases.filter((l) => l.lease.path === 'cold').length;
  t.diagnostic(`warm ${warm}, cold ${cold}, at_capacity ${errors.length}`);
  assert.equal(warm, 10);
  assert.equal(cold, 30);
  assert.equal(errors.length, 60);

  assert.equal(new Set(leases.map((l) => l.lease.workerId)).size, leases.length, 'no worker went to two claims');
  const coldOne = leases.find((l) => l.lease.path === 'cold');
  if (coldOne) {
    await recordHistory(
      e2e.client.workflow.getHandle(workerLifecycleWorkflowId(pool, coldOne.lease.workerId)),
      'cold-claim',
    );
  }
  assert.equal(new Set(leases.map((l) => l.lease.endpoint)).size, leases.length);
  for (const { lease } of leases) {
    assert.equal((await e2e.corral.checkLease(lease)).status, 'valid');
  }
  assert.equal(
    await e2e.metricValue('corral_warm_capacity_misses_total', { pool, reason: 'no_idle_worker' }),
    30,
    'every cold claim counted as a warm-capacity miss',
  );

  // Every repeat of a request id gets the very same lease, concurrently too.
  const repeats = await Promise.all(
    leases.map(({ i }) => e2e.corral.claim(pool, { tenant: `tenant-${i % 7}`, requestId: `burst-${i}` })),
  );
  assert.deepEqual(
    repeats.map((r) => [r.workerId, r.epoch, r.endpoint, r.tenant]),
    leases.map(({ lease }) => [lease.workerId, lease.epoch, lease.endpoint, lease.tenant]),
  );
  const rows = await e2e.registry.store.listWorkers({ pool, limit: 1_000 });
  assert.equal(rows.length, 40, 'maxWorkers was never exceeded');
  assert.equal(rows.filter((w) => w.state === 'claimed').length, 40);

  // A request id is bound to its tenant.
  await assert.rejects(
    e2e.corral.claim(pool, { tenant: 'someone-else', requestId: leases[0] ? `burst-${leases[0].i}` : 'x' }),
    (err) => err instanceof CorralError && err.code === 'invalid_request' && err.field === 'requestId',
  );
});

test('bad claim input is refused with a typed error naming the field, and nothing is written', async () => {
  const before = await e2e.registry.db.query('SELECT count(*)::int AS n FROM claims');
  await assert.rejects(
    e2e.corral.claim('burst', { tenant: '', requestId: 'r' }),
    (err) => err instanceof CorralError && err.code === 'invalid_request' && err.field === 'tenant',
  );
  await assert.rejects(
    e2e.corral.claim('burst', { tenant: 'acme', requestId: 'r', timeout: 'soon' }),
    (err) => err instanceof CorralError && err.code === 'invalid_request' && err.field === 'timeout',
  );
  await assert.rejects(
    e2e.corral.claim('no-such-pool', { tenant: 'acme', requestId: 'r' }),
    (err) => err instanceof CorralError && err.code === 'pool_not_found',
  );
  await assert.rejects(
    e2e.corral.release({ workerId: 'nobody', epoch: 1 }),
    (err) => err instanceof CorralError && err.code === 'stale_lease',
  );
  await assert.rejects(
    e2e.corral.applyPool(demoPoolSpec('bad', { deadlines: { spawn: '1s' } })),
    (err) => err instanceof CorralError && err.code === 'invalid_request' && err.field === 'deadlines.spawn',
  );
  const afterCount = await e2e.registry.db.query('SELECT count(*)::int AS n FROM claims');
  assert.equal(afterCount.rows[0].n, before.rows[0].n);
  assert.equal(await e2e.pools.getPool('bad'), null);
});

test('a claim that times out frees its request id; the worker spawned for it joins the pool idle', async () => {
  const pool = 'slow';
  // A worker that takes 3 s to start, and no warm capacity: the claim must take the cold path.
  await e2e.corral.applyPool(
    demoPoolSpec(pool, { minIdle: 0, maxWorkers: 2, env: { DEMO_WORKER_START_DELAY_MS: '3000' } }),
  );
  await assert.rejects(
    e2e.corral.claim(pool, { tenant: 'acme', requestId: 'slow-1', timeout: '500ms' }),
    (err) => err instanceof CorralError && err.code === 'timeout',
  );
  // Nobody holds a lease for it, so the cold worker becomes idle capacity instead of claimed.
  await e2e.waitForCounts(pool, { idle: 1, claimed: 0, spawning: 0, activating: 0 });
  const [worker] = await e2e.registry.store.listWorkers({ pool, states: ['idle'] });
  assert.equal(worker.tenant, null);
  await recordHistory(
    e2e.client.workflow.getHandle(workerLifecycleWorkflowId(pool, worker.id)),
    'abandoned-cold-claim',
  );

  // The request id is free again: retried, it gets that worker, warm.
  const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'slow-1' });
  assert.deepEqual([lease.workerId, lease.path], [worker.id, 'warm']);
});
