// A pool workflow outlives activities that fail past their retries, on real servers (issue 16,
// docs/decisions/0016-controllers-never-fail.md): the dev server, the registry, the process
// runtime and the demo worker. The fault is real too: the registry refuses every new worker row
// (a trigger raising an error, as a full disk or a broken migration would), so the pool's refill
// activity fails attempt after attempt until its retries run out. On the landed code that failed
// the pool workflow for good; now the pool counts it, backs off, and refills once the fault clears.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../src/embedded/wait';
import { describePoolQuery, poolWorkflowId } from '../../src/common';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e();
});
after(async () => {
  await e2e?.registry.db.query('DROP TRIGGER IF EXISTS corral_test_refuse_workers ON workers').catch(() => undefined);
  await e2e?.close();
});

test('refills that fail past their retries: the pool keeps running, counts them, and refills once the fault clears', async () => {
  const pool = 'outlives';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 1, maxWorkers: 6 }));
  await e2e.waitForCounts(pool, { idle: 1, spawning: 0, activating: 0 });
  const handle = e2e.client.workflow.getHandle(poolWorkflowId(pool));
  const { runId } = await handle.describe();

  await e2e.registry.db.query(`
    CREATE OR REPLACE FUNCTION corral_test_refuse_worker_rows() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'injected fault: worker rows refused'; END $$;
    CREATE TRIGGER corral_test_refuse_workers BEFORE INSERT ON workers
      FOR EACH ROW EXECUTE FUNCTION corral_test_refuse_worker_rows();`);
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 3, maxWorkers: 6 }));

  // The refill activity exhausts its attempts; the pool records the failure and goes on.
  const failing = await waitFor(
    async () => {
      const described = await handle.query(describePoolQuery);
      return (described.totals.activityFailures ?? 0) >= 1 ? described : false;
    },
    { what: 'the pool to record a refill that failed past its retries', timeoutMs: 120_000, intervalMs: 250 },
  );
  assert.match(failing.lastFailure?.message ?? '', /injected fault/);
  const during = await handle.describe();
  assert.equal(during.status.name, 'RUNNING', 'the pool workflow did not fail');
  assert.equal(during.runId, runId, 'the same run: nothing had to restart it');

  await e2e.registry.db.query('DROP TRIGGER corral_test_refuse_workers ON workers');
  await e2e.waitForCounts(pool, { idle: 3 }, 180_000);
  assert.equal((await handle.describe()).status.name, 'RUNNING');
});
