// Demand-driven warm capacity end to end (issue 20, docs/decisions/0035-demand-driven-warm-capacity.md):
// the real dev server, registry, process runtime and demo worker. A demand-mode pool with minIdle 0
// keeps nothing warm until claims arrive, then keeps what the observed rate asks for; lowering its
// ceiling retires the surplus through the workers' own workflows. The estimator itself is tested in
// test/unit/warm-capacity.test.ts, the registry's reads in test/integration/registry.test.ts, and the
// trace comparison with static minIdle is bench/capacity.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RegistryReadings } from '../../src/metrics/registry-readings';
import { waitFor } from '../../src/embedded/wait';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e();
});
after(async () => {
  await e2e?.close();
});

test('a demand pool at minIdle 0 warms up to what the claim rate asks for, reports it, and retires the surplus when its ceiling drops', async () => {
  const pool = 'demand';
  const spec = demoPoolSpec(pool, {
    minIdle: 0,
    maxWorkers: 20,
    releasePolicy: 'retire',
    warmCapacity: { mode: 'demand', coolDown: '10m', burst: 2 },
  });
  await e2e.corral.applyPool(spec);
  const quiet = await e2e.corral.poolScale(pool);
  assert.deepEqual([quiet.mode, quiet.effectiveTarget, quiet.idle, quiet.claimsPerMinute], ['demand', 0, 0, 0]);

  // A burst of 12 claims, each taking the cold path (nothing is warm yet), then given back.
  const leases = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      e2e.corral.claim(pool, { tenant: `t${i % 3}`, requestId: `burst-${i}`, timeout: '2m' }),
    ),
  );
  assert.ok(leases.every((l) => l.path === 'cold'));
  await Promise.all(leases.map((lease) => e2e.corral.release(lease)));

  // The pool turn after the last release computes its target and refills to it. The target moves
  // once the refill's workers are ready (their spawn-to-ready time replaces the 10 s assumed before)
  // and once the burst has left the 10-second window (the rate is then the minute's: 12/min).
  let warm = await e2e.corral.poolScale(pool);
  await waitFor(
    async () => {
      warm = await e2e.corral.poolScale(pool);
      return warm.claimsPerMinute === 12 && warm.idle === warm.effectiveTarget && warm.live === warm.idle;
    },
    { what: `pool ${pool} holding its target of idle workers`, timeoutMs: 120_000, intervalMs: 250 },
  );
  assert.ok(warm.spawnSeconds > 0);
  assert.ok(Math.abs(warm.leadSeconds - (warm.reactionSeconds + warm.spawnSeconds)) < 0.002, JSON.stringify(warm));
  assert.ok(warm.effectiveTarget >= 1 && warm.effectiveTarget <= 20, JSON.stringify(warm));
  const forecast = (12 / 60) * warm.leadSeconds;
  assert.equal(warm.effectiveTarget, Math.ceil(forecast + 2 * Math.sqrt(forecast)));
  assert.equal(warm.headroom, warm.effectiveTarget - Math.ceil(forecast));
  const readings = new RegistryReadings(e2e.registry.db);
  assert.deepEqual(
    (await readings.warmCapacityTargets()).find((t) => t.pool === pool),
    { pool, effectiveTarget: warm.effectiveTarget, headroom: warm.headroom },
    'the gauges read what the pool recorded',
  );

  // An autoscaler (or an operator) lowers the ceiling: the pool retires every surplus idle worker.
  await e2e.corral.scalePool(pool, { maxIdle: 0 });
  await e2e.waitForCounts(pool, { idle: 0, draining: 0 });
  const scaled = await e2e.corral.poolScale(pool);
  assert.deepEqual([scaled.effectiveTarget, scaled.maxIdle, scaled.idle], [0, 0, 0]);
  // The workflow counts a retirement when its activity returns, which may be after the registry
  // shows the worker gone: wait for the count to catch up, then check it is exactly one per worker.
  const totals = async () =>
    (
      (await e2e.corral.describePool(pool)).workflow as {
        totals?: { idleRetired?: number; spawnsStarted?: number };
      } | null
    )?.totals ?? {};
  await waitFor(
    async () => {
      const t = await totals();
      return (t.idleRetired ?? 0) >= (t.spawnsStarted ?? 1);
    },
    { what: 'the pool counting every retirement', timeoutMs: 30_000, intervalMs: 100 },
  );
  const counted = await totals();
  assert.ok((counted.idleRetired ?? 0) >= warm.effectiveTarget, JSON.stringify(counted));
  assert.equal(
    counted.idleRetired,
    counted.spawnsStarted,
    'every worker the pool started for warm capacity was retired once, through its workflow (none was claimed)',
  );
});
