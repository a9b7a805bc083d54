// The pool workflow never fails (`corral-resilient-pool`, docs/decisions/0016-controllers-never-fail.md):
// its activities (mocked here: this is the workflow's own logic, on the time-skipping server) fail
// past their retries, and the pool counts, backs off and goes on — it refills once the fault
// clears, and a drain whose drain requests fail still ends drained. Quota failures are not the
// breaker's business. The registry side of the breaker's fence is in test/e2e/pool-keeper.test.ts.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { PoolActivities, PoolView } from '../../src/activities/pool-activities';
import {
  type WorkerState,
  describePoolQuery,
  drainPoolUpdate,
  poolActivityNames,
  poolWorkflowId,
  type PoolDescription,
  type PoolWorkflowInput,
  janitorTaskQueueOf,
  type RetentionReport,
  type JanitorRunReport,
} from '../../src/common';
import { countsTowardBreaker, nextBreakerSequence } from '../../src/workflows/pool/spawn-breaker';
import type { JanitorActivities } from '../../src/activities/janitor-activities';
import { recordHistory } from '../harness/lifecycle-env';
import { createTimeSkippingEnv } from '../harness/time-skipping';

const taskQueue = 'pool-resilience';

/** A registry stand-in: one pool, its workers, and faults the test switches on. */
class FakePool {
  minIdle = 2;
  maxWorkers = 6;
  status: 'active' | 'draining' | 'drained' = 'active';
  failureThreshold = 2;
  workers = new Map<string, { state: WorkerState; reason?: string; generation?: number }>();
  /** The pod template's generation: started workers get it; idle ones of older ones are stale. */
  templateGeneration = 1;
  /** Demand mode: readPool reports the idle surplus over minIdle (the demand-driven target). */
  demand = false;
  /** Demand mode: what readPool says about looking again (the fast window set the target). */
  recheckInMs: number | null = null;
  maxSurge = 1;
  /** The fewest idle workers seen after any change the pool made once it had filled (rolling floor). */
  fewestIdleAfterFill: number | null = null;
  private noteIdle(): void {
    if (this.fewestIdleAfterFill !== null) this.fewestIdleAfterFill = Math.min(this.fewestIdleAfterFill, this.idle());
  }
  /** How a started worker ends up: ready at once, or lost with this reason. */
  spawnOutcome: { state: 'idle' } | { state: 'lost'; reason: string } = { state: 'idle' };
  /** Calls of each activity that fail (non-retryable: past their retries at once), counted down. */
  faults = { readPool: 0, startPoolWorkers: 0, drainPoolWorkers: 0 };
  breakerWrites: { state: string; sequence?: number }[] = [];
  /** Counts the pool asked retireSurplusIdle for. */
  retireCalls: number[] = [];

  private fail(activity: keyof FakePool['faults']): void {
    if (this.faults[activity] <= 0) return;
    this.faults[activity]--;
    throw ApplicationFailure.nonRetryable(`${activity}: injected fault`, 'InjectedFault');
  }

  readonly activities: PoolActivities = {
    readPool: async ({ ask }): Promise<PoolView> => {
      this.fail('readPool');
      const counts: Partial<Record<WorkerState, number>> = {};
      const asked: Record<string, WorkerState> = {};
      const askedReasons: Record<string, string> = {};
      let live = 0;
      for (const [id, { state, reason }] of this.workers) {
        if (ask.includes(id)) {
          asked[id] = state;
          if (reason) askedReasons[id] = reason;
        }
        if (state === 'retired' || state === 'lost') continue;
        counts[state] = (counts[state] ?? 0) + 1;
        live++;
      }
      return {
        exists: true,
        status: this.status,
        generation: 1,
        minIdle: this.minIdle,
        maxWorkers: this.maxWorkers,
        refillPerMinute: 600,
        breaker: { failureThreshold: this.failureThreshold, cooldownMs: 3_600_000, successThreshold: 1 },
        counts,
        live,
        asked,
        askedReasons,
        surplusIdle: this.demand ? Math.max(0, (counts.idle ?? 0) - this.minIdle) : 0,
        targetRecheckInMs: this.demand ? this.recheckInMs : null,
        templateGeneration: this.templateGeneration,
        staleIdle: [...this.workers.values()].filter(
          (w) => w.state === 'idle' && (w.generation ?? 1) < this.templateGeneration,
        ).length,
        maxSurge: this.maxSurge,
      };
    },
    retireSurplusIdle: async ({ count, belowGeneration }) => {
      this.retireCalls.push(count);
      const idle = [...this.workers]
        .filter(
          ([, w]) => w.state === 'idle' && (belowGeneration === undefined || (w.generation ?? 1) < belowGeneration),
        )
        .sort(([, a], [, b]) => (a.generation ?? 1) - (b.generation ?? 1))
        .slice(0, count);
      for (const [id] of idle) this.workers.set(id, { state: 'retired' });
      this.noteIdle();
      return { marked: idle.length, unanswered: 0 };
    },
    recordPoolBreaker: async ({ state, sequence }) => {
      this.breakerWrites.push({ state, sequence });
      return { applied: true };
    },
    startPoolWorkers: async ({ workerIds }) => {
      this.fail('startPoolWorkers');
      for (const id of workerIds) this.workers.set(id, { ...this.spawnOutcome, generation: this.templateGeneration });
      return { started: workerIds, stoppedBy: null };
    },
    drainPoolWorkers: async () => {
      this.fail('drainPoolWorkers');
      let live = 0;
      for (const [id, worker] of this.workers) {
        if (worker.state === 'retired' || worker.state === 'lost') continue;
        live++;
        this.workers.set(id, { state: 'retired' });
      }
      return { asked: live, live, unanswered: 0 };
    },
    markPoolDrained: async () => {
      if (this.status === 'draining') this.status = 'drained';
    },
  };

  idle(): number {
    return [...this.workers.values()].filter((w) => w.state === 'idle').length;
  }
}

let env: TestWorkflowEnvironment;
let fake: FakePool;
let stopWorker: () => Promise<void>;

before(async () => {
  env = await createTimeSkippingEnv();
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../../src/workflows'),
    // Every test's pool calls the current fake.
    activities: Object.fromEntries(
      poolActivityNames.map((name) => [
        name,
        (...args: unknown[]) => (fake.activities[name] as (...a: unknown[]) => Promise<unknown>)(...args),
      ]),
    ),
  });
  const running = worker.run();
  stopWorker = async () => {
    worker.shutdown();
    await running;
  };
});
after(async () => {
  await stopWorker?.();
  await env?.teardown();
});
beforeEach(() => {
  fake = new FakePool();
});

let poolCount = 0;
async function startPool(input: Partial<PoolWorkflowInput> = {}) {
  const pool = `p${++poolCount}`;
  return env.client.workflow.start('poolWorkflow', {
    taskQueue,
    workflowId: poolWorkflowId(pool),
    args: [{ pool, reconcileIntervalMs: 60_000, ...input } satisfies PoolWorkflowInput],
  });
}

/**
 * Moves the test server's clock a second at a time until the pool's description satisfies `done`
 * (the workflow's timers fire as the clock passes them): waits on the event, never on a duration.
 */
async function advanceUntil(
  handle: Awaited<ReturnType<typeof startPool>>,
  what: string,
  done: (d: PoolDescription) => boolean,
  maxSimulatedMs = 30 * 60_000,
): Promise<PoolDescription> {
  let last: PoolDescription | undefined;
  for (let waited = 0; waited <= maxSimulatedMs; waited += 1_000) {
    last = await handle.query(describePoolQuery);
    if (done(last)) return last;
    await env.sleep(1_000);
  }
  throw new Error(`${what}: not within ${maxSimulatedMs} simulated ms; last ${JSON.stringify(last)}`);
}

test('activities failing past their retries: the pool counts, backs off, keeps running and refills once the fault clears', async () => {
  fake.faults.readPool = 3;
  fake.faults.startPoolWorkers = 4;
  const handle = await startPool();

  const failing = await advanceUntil(handle, 'a failed turn reported', (d) => (d.failureStreak ?? 0) >= 2);
  assert.ok(failing.lastFailure, 'the last failure is described');
  assert.match(failing.lastFailure.message, /injected fault/);
  assert.ok(failing.lastFailure.retryAt > failing.lastFailure.at, 'a backoff is scheduled');

  const refilled = await advanceUntil(
    handle,
    'the pool refilled after the faults cleared',
    (d) => (d.inventory.idle ?? 0) === fake.minIdle,
  );
  assert.equal(fake.idle(), fake.minIdle);
  assert.equal(refilled.totals.activityFailures, 7, 'every failure counted: 3 reads, 4 refills');
  assert.equal(refilled.failureStreak, 0, 'the streak ends with the first good turn');
  assert.deepEqual(fake.faults, { readPool: 0, startPoolWorkers: 0, drainPoolWorkers: 0 });
  assert.equal((await handle.describe()).status.name, 'RUNNING', 'the run did not fail');

  // The breaker is re-asserted on every turn, each write's sequence greater than the last.
  assert.ok(fake.breakerWrites.length >= 2);
  const sequences = fake.breakerWrites.map((w) => w.sequence!);
  assert.ok(
    sequences.every((seq, i) => i === 0 || seq > sequences[i - 1]!),
    `increasing: ${sequences.join(', ')}`,
  );
  await handle.terminate('test done');
});

test('a drain whose drain requests fail keeps trying and still ends drained', async () => {
  const handle = await startPool();
  await advanceUntil(handle, 'the pool filled', (d) => (d.inventory.idle ?? 0) === fake.minIdle);

  fake.faults.drainPoolWorkers = 3;
  fake.status = 'draining';
  await handle.executeUpdate(drainPoolUpdate);
  const result = await handle.result(); // the server skips time while the client waits on the result
  assert.equal(result.status, 'drained');
  assert.equal(fake.status, 'drained');
  assert.equal(result.totals.activityFailures, 3);
  assert.equal(fake.faults.drainPoolWorkers, 0);
  assert.equal([...fake.workers.values()].filter((w) => w.state !== 'retired').length, 0, 'every worker drained');
  await recordHistory(handle, 'pool-resilient-drain');
});

test('demand mode: when the target falls, the pool retires exactly the idle surplus, and refills again when it rises', async () => {
  fake.minIdle = 5;
  fake.demand = true;
  const handle = await startPool({ reconcileIntervalMs: 1_000 });
  await advanceUntil(handle, 'the pool filled to 5', (d) => (d.inventory.idle ?? 0) === 5);
  assert.deepEqual(fake.retireCalls, [], 'nothing to retire while at the target');

  fake.minIdle = 2; // the demand-driven target fell (readPool reports it)
  const shrunk = await advanceUntil(handle, 'the surplus retired', (d) => (d.inventory.idle ?? 0) === 2);
  assert.deepEqual(fake.retireCalls, [3], 'one request for exactly the surplus');
  assert.equal(shrunk.totals.idleRetired, 3);

  fake.minIdle = 4;
  await advanceUntil(handle, 'refilled to the new target', (d) => (d.inventory.idle ?? 0) === 4);
  assert.equal(fake.idle(), 4);
  assert.deepEqual(fake.retireCalls, [3], 'a rise never retires');
  await handle.terminate('test done');
});

test('demand mode: a target the 10-second window set is looked at again 10 s later, with nothing to wake the pool', async () => {
  fake.minIdle = 5;
  fake.demand = true;
  fake.recheckInMs = 10_000;
  // The safety-net turn is an hour away: only the recheck can make the pool read again.
  const handle = await startPool({ reconcileIntervalMs: 3_600_000 });
  await advanceUntil(handle, 'the pool filled to 5 and read it', (d) => (d.inventory.idle ?? 0) === 5, 30_000);
  fake.minIdle = 2; // the burst left the fast window: the target fell, and no signal says so
  const shrunk = await advanceUntil(handle, 'the surplus retired', (d) => (d.inventory.idle ?? 0) === 2, 30_000);
  assert.equal(shrunk.totals.idleRetired, 3);
  assert.deepEqual(fake.retireCalls, [3]);
  await handle.terminate('test done');
});

for (const [room, maxWorkers] of [
  ['room to surge', 20],
  ['no room (at maxWorkers)', 4],
] as const) {
  test(`rolling replacement with ${room}: every idle worker ends on the new template, idle never below minIdle − maxSurge`, async () => {
    fake.minIdle = 4;
    fake.maxWorkers = maxWorkers;
    fake.maxSurge = 1;
    const handle = await startPool({ reconcileIntervalMs: 1_000 });
    await advanceUntil(handle, 'the pool filled to 4', (d) => (d.inventory.idle ?? 0) === 4);
    fake.fewestIdleAfterFill = fake.idle();
    fake.templateGeneration = 2; // a new pod template was applied
    const replaced = await advanceUntil(
      handle,
      'every idle worker on template 2',
      () => fake.idle() === 4 && [...fake.workers.values()].every((w) => w.state !== 'idle' || w.generation === 2),
    );
    assert.equal(replaced.totals.idleReplaced, 4, 'each old worker retired once');
    assert.ok(
      fake.fewestIdleAfterFill >= 4 - fake.maxSurge,
      `idle dipped to ${fake.fewestIdleAfterFill} (floor ${4 - fake.maxSurge})`,
    );
    if (maxWorkers > 4) assert.equal(fake.fewestIdleAfterFill, 4, 'with room, new ones first: idle never dips');
    await handle.terminate('test done');
  });
}

test('spawns refused by quota are not counted by the breaker; other spawn failures open it', async () => {
  fake.minIdle = 1;
  fake.spawnOutcome = { state: 'lost', reason: 'quota_exceeded' };
  const quota = await startPool({ reconcileIntervalMs: 1_000 });
  const refused = await advanceUntil(
    quota,
    'more quota refusals than the breaker threshold',
    (d) => (d.totals.spawnsRefusedByCapacity ?? 0) > fake.failureThreshold + 1,
  );
  assert.equal(refused.breaker.state, 'closed');
  assert.equal(refused.breaker.consecutiveFailures, 0);
  await quota.terminate('test done');

  fake.spawnOutcome = { state: 'lost', reason: 'pod_crashed' };
  const crashing = await startPool({ reconcileIntervalMs: 1_000 });
  const opened = await advanceUntil(crashing, 'the breaker to open', (d) => d.breaker.state === 'open');
  assert.equal(opened.totals.spawnsRefusedByCapacity ?? 0, 0);
  assert.equal(fake.breakerWrites.at(-1)?.state, 'open');
  await crashing.terminate('test done');
});

test('breaker rules: quota is not the breaker’s business; sequences grow with time and past it', () => {
  assert.equal(countsTowardBreaker('quota_exceeded'), false);
  assert.equal(countsTowardBreaker('pod_crashed'), true);
  assert.equal(countsTowardBreaker('lost'), true);
  assert.equal(countsTowardBreaker(null), true);
  assert.equal(nextBreakerSequence(undefined, 1_000), 1_000);
  assert.equal(nextBreakerSequence(1_000, 1_000), 1_001, 'the same instant still moves on');
  assert.equal(nextBreakerSequence(5_000, 1_000), 5_001, 'a clock behind the carried counter still moves on');
  assert.equal(nextBreakerSequence(1_001, 2_000), 2_000);
});

test('the janitor never fails: a reconciliation failing past its retries is reported, retention still runs, the run returns', async () => {
  const retention: RetentionReport = {
    retentionMs: 3_600_000,
    workers: 0,
    transitions: 0,
    claims: 0,
    batches: 1,
    complete: true,
    durationMs: 0,
  };
  const janitorActivities: Pick<JanitorActivities, 'reconcileStrandedResources' | 'deleteExpiredRecords'> = {
    reconcileStrandedResources: async () => {
      throw ApplicationFailure.nonRetryable('runtime inventory: injected fault', 'InjectedFault');
    },
    deleteExpiredRecords: async () => retention,
  };
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: janitorTaskQueueOf(taskQueue),
    activities: janitorActivities,
  });
  const report = (await worker.runUntil(
    env.client.workflow.execute('janitorWorkflow', {
      taskQueue,
      workflowId: 'corral/janitor/run-resilience',
      args: [{}],
    }),
  )) as JanitorRunReport;
  assert.deepEqual(report.failures, [
    { activity: 'reconcileStrandedResources', message: 'runtime inventory: injected fault' },
  ]);
  assert.deepEqual(report.retention, retention);
  assert.deepEqual([report.pods, report.rows, report.actions], [0, 0, []]);
  assert.match(report.divergence.join('\n'), /reconcileStrandedResources failed/);
});
