// Prompt drains end to end (issue 16, docs/decisions/0019-prompt-drains-and-failover.md): the real
// dev server, registry, process runtime and demo worker. A pool drained while its workers are
// still starting ends without waiting for those starts (on the landed code the drain waited for
// each start: 99.5 s for two workers); a serving worker is asked to drain and stays up, reporting
// `draining`, until it says it has finished, and only then is deleted. How fast is measured by
// bench/chaos (drain-while-spawning), not here.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../src/embedded/wait';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

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

test('a pool drained while its workers start: every start is cut short, nothing is left, the pool is drained', async () => {
  const pool = 'drain-starting';
  // Workers that take ten minutes to listen, with a spawn deadline far beyond: only the drain ends these starts.
  await e2e.corral.applyPool(
    demoPoolSpec(pool, {
      minIdle: 3,
      env: { DEMO_WORKER_START_DELAY_MS: '600000' },
      deadlines: { spawn: '30m', activation: '15s', hotIdleTtl: '10m', maxLifetime: '1h', drain: '5m' },
    }),
  );
  await e2e.waitForCounts(pool, { spawning: 3 });
  await waitFor(async () => (await e2e.runtime.listManaged()).filter((m) => m.pool === pool).length >= 3, {
    what: 'three worker processes started',
    timeoutMs: 60_000,
    intervalMs: 100,
  });

  await e2e.corral.drainPool(pool);
  const result = await e2e.corral.waitForDrained(pool, { timeoutMs: 120_000 });
  assert.equal(result.status, 'drained');
  const rows = await rowsOf(pool);
  assert.equal(rows.length, 3, 'no refill after the drain');
  for (const row of rows) {
    assert.equal(row.state, 'retired', JSON.stringify(row));
    const trail = (await e2e.registry.store.history(row.id)).map((t) => `${t.fromState ?? '∅'}→${t.toState}`);
    assert.deepEqual(trail, ['∅→spawning', 'spawning→draining', 'draining→retired'], row.id);
  }
  assert.deepEqual(
    (await e2e.runtime.listManaged()).filter((m) => m.pool === pool),
    [],
    'no process and no credentials left',
  );
});

test('a serving worker is asked to drain and stays up, draining, until it says it has finished', async () => {
  const pool = 'drain-serving';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 1, env: { DEMO_WORKER_DRAIN_DELAY_MS: '4000' } }));
  await e2e.waitForCounts(pool, { idle: 1 });
  const [worker] = await rowsOf(pool);
  assert.ok(worker?.endpoint, 'the idle worker has an endpoint');

  await e2e.corral.drainPool(pool);
  // While the worker finishes its work, its row is draining and the worker itself says so.
  const answer = await waitFor(
    async () => {
      const row = (await rowsOf(pool)).find((w) => w.id === worker.id);
      if (row?.state !== 'draining') return false;
      const health = (await (
        await fetch(`${worker.endpoint}/healthz`, { signal: AbortSignal.timeout(2_000) })
      ).json()) as {
        status: string;
      };
      return health.status === 'draining' ? health : false;
    },
    { what: 'the worker draining, alive, while its row is draining', timeoutMs: 60_000, intervalMs: 50 },
  );
  assert.equal(answer.status, 'draining');
  assert.equal((await e2e.corral.waitForDrained(pool, { timeoutMs: 120_000 })).status, 'drained');
  assert.equal((await rowsOf(pool)).find((w) => w.id === worker.id)?.state, 'retired');
  assert.deepEqual(
    (await e2e.runtime.listManaged()).filter((m) => m.pool === pool),
    [],
  );
});
