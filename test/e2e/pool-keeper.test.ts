// Controllers never fail, for real (docs/decisions/0016-controllers-never-fail.md): the real dev
// server, the real registry, the process runtime running the demo worker. A pool workflow
// terminated by hand is started again by the pool keeper within its check period and the pool
// refills; the registry's breaker write is fenced by its sequence; the janitor's last completed
// pass is in the registry for every replica's /metrics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { waitFor } from '../../src/embedded/wait';
import { createJanitorMetrics } from '../../src/metrics/janitor-metrics';
import { createPoolKeeperMetrics } from '../../src/metrics/pool-metrics';
import { RegistryReadings } from '../../src/metrics/registry-readings';
import { PoolKeeper, type PoolKeeperCheck } from '../../src/workers/pool-keeper';
import { describePoolQuery, poolWorkflowId } from '../../src/common';
import { parsePoolSpec } from '../../src/config/pool-spec';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';
import { workerProcessGroups } from '../harness/process-inspection';

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e();
});
after(async () => {
  await e2e?.close();
});

test('a pool workflow terminated by hand is started again by the keeper, and the pool refills', async () => {
  const pool = 'kept';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 2, maxWorkers: 4 }));
  await e2e.waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 });
  const handle = e2e.client.workflow.getHandle(poolWorkflowId(pool));
  const { runId: terminatedRun } = await handle.describe();
  await handle.terminate('operator mistake');

  // A worker dies while nobody keeps the pool: only a new pool run refills it.
  const [victim] = (await e2e.registry.store.listWorkers({ pool, states: ['idle'], limit: 10 })).filter(
    (w) => w.pool === pool,
  );
  const groups = workerProcessGroups(victim!.id);
  assert.equal(groups.length, 1);
  process.kill(-Number(groups[0]), 'SIGKILL');
  await waitFor(async () => (await e2e.registry.store.getWorker(victim!.id))?.state === 'lost', {
    what: 'the killed worker to be lost',
    timeoutMs: 60_000,
  });
  assert.equal((await e2e.counts(pool)).idle, 1, 'no pool workflow, no refill');

  const metrics = new Registry();
  const checks: PoolKeeperCheck[] = [];
  const keeper = new PoolKeeper({
    pools: e2e.pools,
    temporal: e2e.client,
    taskQueue: e2e.taskQueue,
    intervalMs: 1_000, // short on purpose; production defaults to 30 s
    metrics: createPoolKeeperMetrics(metrics),
    log: (line) => console.log(`[pool keeper] ${line}`),
    onCheck: (check) => checks.push(check),
  });
  keeper.start();
  try {
    const restarted = await waitFor(
      async () => {
        const described = await handle.describe();
        return described.status.name === 'RUNNING' && described.runId !== terminatedRun ? described : undefined;
      },
      { what: 'the keeper to start a new pool run', timeoutMs: 30_000 },
    );
    assert.ok(
      checks.some((c) => c.restarted.includes(pool)),
      'the keeper says it started it',
    );
    await e2e.waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 });
    const description = await e2e.client.workflow
      .getHandle(poolWorkflowId(pool), restarted.runId)
      .query(describePoolQuery);
    assert.equal(description.failureStreak, 0);

    // The next checks find it running and start nothing.
    const seen = checks.length;
    await waitFor(async () => checks.length > seen, { what: 'another check', timeoutMs: 30_000 });
    const latest = checks.at(-1)!;
    assert.deepEqual(latest.restarted, []);
    assert.equal(latest.expected, latest.running);
    const gauge = (await metrics.getMetricsAsJSON()).find((m) => m.name === 'corral_pool_workflows');
    const byState = Object.fromEntries(gauge!.values.map((v) => [v.labels.state, v.value]));
    assert.equal(byState.expected, byState.running);
    assert.ok(Number(byState.expected) >= 1);
    assert.equal((await handle.describe()).runId, restarted.runId, 'a running pool workflow is left alone');
  } finally {
    await keeper.stop();
  }
});

test('a breaker write older than the stored one is refused: a stale open cannot follow a newer closed', async () => {
  const pool = 'fenced';
  await e2e.pools.applyPool(parsePoolSpec(demoPoolSpec(pool, { minIdle: 0 })));
  assert.deepEqual(await e2e.pools.recordBreakerState(pool, 'open', 1_000), { applied: true });
  assert.deepEqual(await e2e.pools.recordBreakerState(pool, 'closed', 2_000), { applied: true });
  // The older attempt's statement lands last.
  assert.deepEqual(await e2e.pools.recordBreakerState(pool, 'open', 1_500), { applied: false });
  assert.deepEqual(await e2e.pools.breakerRecord(pool), { state: 'closed', sequence: 2_000 });
  assert.equal((await e2e.pools.getPool(pool))?.breakerState, 'closed', 'the cold path reads closed');
  // The same sequence again is not newer either; a re-assertion moves the fence on.
  assert.deepEqual(await e2e.pools.recordBreakerState(pool, 'open', 2_000), { applied: false });
  assert.deepEqual(await e2e.pools.recordBreakerState(pool, 'closed', 2_001), { applied: true });
  assert.deepEqual(await e2e.pools.breakerRecord(pool), { state: 'closed', sequence: 2_001 });
});

test('the janitor’s last completed pass is in the registry; every replica reports the seconds since', async () => {
  const readings = new RegistryReadings(e2e.registry.db);
  const metrics = new Registry();
  createJanitorMetrics(metrics, { lastPass: readings });
  await e2e.pools.recordJanitorPass();
  const seconds = await readings.secondsSinceJanitorPass();
  assert.ok(seconds !== null && seconds >= 0);
  const gauge = (await metrics.getMetricsAsJSON()).find((m) => m.name === 'corral_janitor_seconds_since_last_pass');
  assert.equal(gauge?.values.length, 1);
  assert.ok(Number(gauge!.values[0]!.value) >= 0);
});
