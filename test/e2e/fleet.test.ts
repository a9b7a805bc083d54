// A fleet on one `corral worker` at default settings (issue 15). With a health monitor activity
// per serving worker, the SDK's 100 default slots filled up with monitors: a pool of 150 stalled
// at 72 idle with spawns stuck, and its drain made no progress. With one health watcher per
// replica and the runtime's own task queue, 150 fill, serve and drain. Workers here are the small
// protocol worker (a few MB each), so 150 processes fit the machine.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CorralClient } from '../../src/client/corral-client';
import type { PoolSpecInput } from '../../src/config/pool-spec';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { waitFor } from '../../src/embedded/wait';
import type { WorkerState } from '../../src/common';
import { PoolStore } from '../../src/registry/pool-store';
import { startCorralWorkerProcess, type CorralWorkerProcess } from '../harness/corral-worker-process';
import { useLifecycleE2e, type LifecycleE2e } from '../harness/lifecycle-e2e';
import { workerProcessGroups } from '../harness/process-inspection';

let e2e: LifecycleE2e;
let corralWorker: CorralWorkerProcess;
let corral: CorralClient;
let pools: PoolStore;
let image: string;

before(async () => {
  e2e = await useLifecycleE2e();
  image = await smallWorkerPath();
  // Default settings: nothing about slots, queues or health is configured here.
  corralWorker = await startCorralWorkerProcess(e2e, { name: 'corral-fleet', taskQueue: `fleet-${process.pid}` });
  corral = new CorralClient({ url: String(corralWorker.ready.apiUrl) });
  pools = new PoolStore(e2e.registry.db);
});
after(async () => {
  await corralWorker?.proc.kill();
  await e2e?.close();
});

function fleetSpec(name: string, overrides: Partial<PoolSpecInput>): PoolSpecInput {
  return {
    name,
    runtime: 'process',
    image,
    port: 8080,
    minIdle: 1,
    maxWorkers: 1,
    refillPerMinute: 1_000,
    resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
    ...overrides,
  };
}

async function waitForCounts(pool: string, want: Partial<Record<WorkerState, number>>, timeoutMs: number) {
  let last: Partial<Record<WorkerState, number>> = {};
  try {
    await waitFor(
      async () => {
        last = (await pools.inventory(pool)).counts;
        return Object.entries(want).every(([state, n]) => (last[state as WorkerState] ?? 0) === n);
      },
      { what: `pool ${pool} to have ${JSON.stringify(want)}`, timeoutMs, intervalMs: 500 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`);
  }
}

test('a pool of 150 fills and drains on one corral worker at default settings', async () => {
  const pool = 'fleet';
  await corral.applyPool(fleetSpec(pool, { minIdle: 150, maxWorkers: 150 }));
  await waitForCounts(pool, { idle: 150, spawning: 0, activating: 0 }, 300_000);

  await corral.drainPool(pool);
  const drained = await corral.waitForDrained(pool, { timeoutMs: 300_000, intervalMs: 500 });
  assert.equal(drained.status, 'drained');
  const rows = (await e2e.registry.store.listWorkers({ pool, limit: 1_000 })).filter((w) => w.pool === pool);
  assert.equal(rows.length, 150, 'no worker beyond the 150 (nothing respawned or lost)');
  assert.deepEqual(
    rows.filter((w) => w.state !== 'retired').map((w) => [w.id, w.state, w.failureReason]),
    [],
    'every worker retired',
  );
  assert.deepEqual(
    rows.filter((w) => workerProcessGroups(w.id).length > 0).map((w) => w.id),
    [],
    'no worker process left running',
  );
});

test('a pool without a health hook still has a dead worker noticed: its exit is the verdict', async () => {
  const pool = 'nohook';
  await corral.applyPool(fleetSpec(pool, { minIdle: 2, maxWorkers: 3, healthPath: null }));
  await waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 }, 120_000);
  const [victim] = (await e2e.registry.store.listWorkers({ pool, limit: 10 })).filter(
    (w) => w.pool === pool && w.state === 'idle',
  );
  const groups = workerProcessGroups(victim.id);
  assert.equal(groups.length, 1);
  process.kill(-Number(groups[0]), 'SIGKILL');

  await waitFor(async () => (await e2e.registry.store.getWorker(victim.id))?.state === 'lost', {
    what: 'the killed worker to be lost',
    timeoutMs: 60_000,
  });
  const lost = await e2e.registry.store.getWorker(victim.id);
  assert.equal(lost?.failureReason, 'pod_crashed');
  await waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 }, 120_000);
  await corral.deletePool(pool, { timeoutMs: 120_000, intervalMs: 500 });
});
