// Rolling replacement end to end (issue 20, docs/decisions/0036-rolling-replacement.md): the real
// dev server, registry, process runtime and demo worker. A new pod template reaches the idle
// workers too — replaced new ones first, idle never below minIdle − maxSurge — and a claimed worker
// of the old template is retired when released; a change of the pool's sizes replaces nobody.
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

test('a new pod template replaces every idle worker at a bounded surge, and the old claimed one on release', async () => {
  const pool = 'rolling';
  const spec = demoPoolSpec(pool, { minIdle: 3, maxWorkers: 10, maxSurge: 1, releasePolicy: 'hot_idle' });
  await e2e.corral.applyPool(spec);
  const held = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'held', timeout: '2m' });
  await e2e.waitForCounts(pool, { idle: 3, spawning: 0, activating: 0 });
  const before = await e2e.corral.describePool(pool);
  assert.equal(before.templateGeneration, 1);

  // Sizes are not the template: nobody is replaced.
  await e2e.corral.scalePool(pool, { maxWorkers: 12 });
  assert.equal((await e2e.corral.describePool(pool)).templateGeneration, 1);

  await e2e.corral.applyPool({ ...spec, maxWorkers: 12, env: { DEMO_TEMPLATE: 'two' } });
  let fewestIdle = Infinity;
  await waitFor(
    async () => {
      const described = await e2e.corral.describePool(pool);
      const idle = described.pool.counts.idle ?? 0;
      fewestIdle = Math.min(fewestIdle, idle);
      const current = described.generations.find((g) => g.current);
      const idleElsewhere = described.generations.filter((g) => !g.current).some((g) => (g.counts.idle ?? 0) > 0);
      return described.templateGeneration === 2 && (current?.counts.idle ?? 0) === 3 && !idleElsewhere;
    },
    { what: `pool ${pool}'s idle workers all on template 2`, timeoutMs: 180_000, intervalMs: 100 },
  );
  assert.ok(fewestIdle >= 3 - 1, `idle dipped to ${fewestIdle}, below minIdle − maxSurge`);
  // The registry shows the last old worker leaving before the pool's activity has returned and the
  // workflow counted it: wait for the count, then check it is exactly one per old worker.
  const replacedCount = async () =>
    ((await e2e.corral.describePool(pool)).workflow as { totals?: { idleReplaced?: number } } | null)?.totals
      ?.idleReplaced ?? 0;
  await waitFor(async () => (await replacedCount()) >= 3, {
    what: 'the pool counting 3 replacements',
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  const after = await e2e.corral.describePool(pool);
  assert.equal(await replacedCount(), 3, 'each old idle worker replaced once');
  assert.deepEqual(
    after.generations.find((g) => g.generation === 1)?.counts,
    { claimed: 1 },
    'the claimed worker kept its tenant',
  );

  // The old-template worker goes on release instead of staying hot_idle for acme.
  const released = await e2e.corral.release(held);
  assert.equal(released.state, 'draining');
  await waitFor(async () => (await e2e.registry.store.getWorker(held.workerId))?.state === 'retired', {
    what: `worker ${held.workerId} retired`,
    timeoutMs: 60_000,
    intervalMs: 100,
  });
  const settled = await e2e.corral.describePool(pool);
  assert.deepEqual(
    settled.generations.map((g) => g.generation),
    [2],
    'only the current template is left',
  );
});
