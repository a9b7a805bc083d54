// The janitor end to end: the real dev server (its Schedule triggers the run), the real registry,
// the process runtime running the real demo worker. Three kinds of divergence are made for real
// (an orphan pod, a stranded secret, a worker whose lifecycle workflow was terminated by hand);
// one pass reconciles all of them, and a second pass finds nothing left to do. Then a pass over
// 1,000 live workers (their workflows running, as the visibility store sees them) acts on none
// of them, retires the rows whose workflow does not exist, and reports the wedged ones.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Client, ScheduleOverlapPolicy, type ScheduleHandle } from '@temporalio/client';
import {
  bundleWorkflowCode,
  NativeConnection,
  Worker,
  type WorkerOptions,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createJanitorActivities, podRefOf, type JanitorActivities } from '../../src/activities/janitor-activities';
import { ensureJanitorSchedule, janitorRetention } from '../../src/client/janitor-schedule';
import { waitFor } from '../../src/embedded/wait';
import {
  janitorTaskQueueOf,
  describeQuery,
  workerLifecycleWorkflowId,
  type WorkerPodRef,
  type JanitorAction,
  type JanitorRunReport,
} from '../../src/common';
import { createJanitorMetrics } from '../../src/metrics/janitor-metrics';
import type { ManagedWorker, PodRuntime } from '../../src/runtime/pod-runtime';
import { demoWorkerSettings, historyText } from '../harness/lifecycle-e2e';
import { newWorkerId, waitForState } from '../harness/lifecycle-env';
import { usePoolE2e, type PoolE2e } from '../harness/pool-e2e';
import { workerProcessGroups } from '../harness/process-inspection';

// Schedule ids are global to the namespace and test files share one dev server: a private id.
const scheduleId = `corral/janitor-e2e-${process.pid}`;
const pool = 'jan';
// The janitor runs as a corral worker runs it — its workflow on a base queue, its activities on
// that queue's janitor queue (src/common/task-queues.ts), each polled by a worker of its own —
// on queues private to this file, so what it sees and counts is exactly this file's doing. The
// pool e2e world's corral worker runs the lifecycle workflows the janitor looks at.
let e2e: PoolE2e;
/** The base queue the janitor's workflow runs on (as the schedule names it). */
const taskQueue = `janitor-e2e-${process.pid}`;
let connection: NativeConnection;
let workflowBundle: WorkflowBundleWithSourceMap;
const janitorMetrics = new Registry();
const workers: { worker: Worker; running: Promise<void> }[] = [];

async function startWorker(options: Omit<WorkerOptions, 'connection' | 'namespace'>): Promise<void> {
  const worker = await Worker.create({ connection, namespace: e2e.temporal.namespace, ...options });
  workers.push({ worker, running: worker.run() });
}

before(async () => {
  e2e = await usePoolE2e();
  connection = await NativeConnection.connect({ address: e2e.temporal.address });
  workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows') });
  await startWorker({ taskQueue, workflowBundle });
  await startWorker({
    taskQueue: janitorTaskQueueOf(taskQueue),
    activities: createJanitorActivities({
      store: e2e.registry.store,
      runtime: e2e.runtime,
      temporal: e2e.client,
      metrics: createJanitorMetrics(janitorMetrics),
    }),
  });
});
after(async () => {
  await e2e?.client.schedule
    .getHandle(scheduleId)
    .delete()
    .catch(() => undefined);
  for (const { worker } of workers) worker.shutdown();
  await Promise.all(workers.map(({ running }) => running));
  await connection?.close();
  // Left behind only if a test failed: entries the harness's cleanup cannot name (no record).
  for (const entry of (await e2e?.runtime.listManaged()) ?? []) {
    const ref = podRefOf(entry);
    if (ref) await e2e.runtime.delete(ref);
  }
  await e2e?.close();
});

const podSpec = (workerId: string, image: string) => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image,
  resources: demoWorkerSettings.resources,
  maxLifetimeSeconds: 3_600,
});
const credentials = (token: string) => ({
  epoch: 1,
  version: 1,
  expiresAt: new Date(Date.now() + 3_600_000),
  token,
});
const newToken = () => crypto.randomBytes(24).toString('hex');

async function counters(): Promise<Record<string, number>> {
  const metric = await janitorMetrics.getSingleMetric('corral_stranded_resources_reconciled_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [`${v.labels.kind}/${v.labels.outcome}`, v.value]));
}

const byKindAndName = (a: JanitorAction, b: JanitorAction) =>
  `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`);

/** Triggers one scheduled run and waits for its report (the run's workflow id carries Temporal's timestamp). */
async function runThroughSchedule(
  schedule: ScheduleHandle,
): Promise<{ report: JanitorRunReport; workflowId: string; runId: string }> {
  const taken = (await schedule.describe()).info.numActionsTaken;
  await schedule.trigger();
  const action = await waitFor(
    async () => {
      const { info } = await schedule.describe();
      return info.numActionsTaken > taken ? info.recentActions.at(-1)?.action : undefined;
    },
    { what: `schedule ${scheduleId} to start a run`, timeoutMs: 30_000 },
  );
  const { workflowId, firstExecutionRunId: runId } = action.workflow;
  const report = (await e2e.client.workflow.getHandle(workflowId, runId).result()) as JanitorRunReport;
  return { report, workflowId, runId };
}

test('one scheduled pass deletes an orphan pod and a stranded secret and retires a row whose workflow was terminated; a second pass is a no-op', async () => {
  // An orphan pod: a running demo worker whose worker has no registry row at all.
  const orphanId = newWorkerId();
  const orphanToken = newToken();
  const orphan = await e2e.runtime.create(podSpec(orphanId, demoWorkerSettings.image), credentials(orphanToken));
  const orphanReady = await e2e.runtime.awaitReady(orphan.ref, { timeoutMs: 30_000 });
  assert.equal(orphanReady.status, 'ready');
  assert.equal(workerProcessGroups(orphanId).length, 1);

  // A stranded secret: credentials of a retired worker with no pod. The process runtime reports
  // credentials without a worker record that way (as Kubernetes reports a Secret without a Pod);
  // an executable that does not exist leaves a record and no process, and the record is removed.
  const strandedId = newWorkerId();
  const strandedToken = newToken();
  await e2e.registry.seedWorker({ id: strandedId, pool, state: 'retired', epoch: 3 });
  const stranded = await e2e.runtime.create(
    podSpec(strandedId, '/nonexistent/corral-worker'),
    credentials(strandedToken),
  );
  fs.rmSync(path.join(e2e.stateDir, 'workers', stranded.ref.name, 'worker.json'));
  const strandedFile = e2e.runtime.credentialsPath(stranded.ref);

  // A worker whose lifecycle workflow an operator terminated: its row stays idle, its pod runs on.
  const lostId = newWorkerId();
  const lifecycle = await e2e.client.workflow.start('workerLifecycleWorkflow', {
    taskQueue: e2e.taskQueue,
    workflowId: workerLifecycleWorkflowId(pool, lostId),
    args: [{ workerId: lostId, pool, settings: demoWorkerSettings }],
  });
  await waitForState(lifecycle, 'idle');
  const lostPod = (await lifecycle.query(describeQuery)).podName;
  assert.ok(lostPod);
  await lifecycle.terminate('e2e: the workflow is gone, its worker is not');
  assert.equal((await lifecycle.describe()).status.name, 'TERMINATED');
  const lostBefore = await e2e.registry.store.getWorker(lostId);
  assert.deepEqual([lostBefore?.state, lostBefore?.epoch], ['idle', 1]);
  assert.equal(workerProcessGroups(lostId).length, 1, 'terminating the workflow left its worker running');

  assert.deepEqual(
    (await e2e.runtime.listManaged()).map((w) => [w.name, w.hasPod, w.hasSecret]),
    [
      [orphan.ref.name, true, true],
      [stranded.ref.name, false, true],
      [lostPod, true, true],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    'the runtime sees two pods and one secret without a pod',
  );

  // The schedule as corral workers install it. Paused here so only the test's triggers run it
  // (an interval boundary could otherwise start a pass mid-test); ensuring again keeps the pause.
  const { handle: schedule, created } = await ensureJanitorSchedule(e2e.client, { taskQueue, graceMs: 0, scheduleId });
  assert.equal(created, true);
  await schedule.pause('e2e: passes are triggered by the test');
  const again = await ensureJanitorSchedule(e2e.client, { taskQueue, graceMs: 0, scheduleId });
  assert.equal(again.created, false, 'a second ensure updates, it does not fail');
  const described = await schedule.describe();
  assert.equal(described.policies.overlap, ScheduleOverlapPolicy.SKIP);
  assert.deepEqual(
    described.spec.intervals?.map((i) => i.every),
    [5 * 60_000],
  );
  assert.equal(described.action.workflowType, 'janitorWorkflow');
  assert.equal(described.action.workflowId, `${scheduleId}/run`);
  assert.equal(described.action.taskQueue, taskQueue);
  assert.deepEqual(described.action.args, [{ graceMs: 0, retentionMs: janitorRetention.defaultMs }]);
  assert.equal(described.state.paused, true, "an operator's pause survives a corral worker's start");

  const countersBefore = await counters();
  const first = await runThroughSchedule(schedule);
  const { report } = first;
  assert.equal(report.pods, 3);
  assert.equal(report.rows, 1, 'one non-terminal row: the terminated worker');
  assert.equal(report.workflowLookup, 'visibility');
  assert.deepEqual([report.omittedActions, report.wedged], [0, []]);
  assert.deepEqual(
    { ...report.retention, durationMs: 0 },
    {
      retentionMs: janitorRetention.defaultMs,
      workers: 0,
      transitions: 0,
      claims: 0,
      batches: 2,
      complete: true,
      durationMs: 0,
    },
    'nothing is old enough for retention',
  );
  const expected: JanitorAction[] = [
    { kind: 'pod', name: orphan.ref.name, workerId: orphanId, pool, reason: 'no_row', outcome: 'deleted' },
    { kind: 'pod', name: lostPod, workerId: lostId, pool, reason: 'workflow_not_running', outcome: 'deleted' },
    {
      kind: 'row',
      name: lostId,
      workerId: lostId,
      pool,
      reason: 'workflow_not_running',
      outcome: 'deleted',
      workflowStatus: 'TERMINATED',
      epoch: 2,
    },
    {
      kind: 'secret',
      name: stranded.ref.name,
      workerId: strandedId,
      pool,
      reason: 'terminal_row',
      outcome: 'deleted',
    },
  ];
  assert.deepEqual([...report.actions].sort(byKindAndName), expected.sort(byKindAndName));
  assert.equal(report.divergence.length, 4, report.divergence.join('\n'));

  // The runtime: nothing left, no process of either worker alive, no credentials on disk.
  assert.deepEqual(await e2e.runtime.listManaged(), []);
  assert.deepEqual(workerProcessGroups(orphanId), []);
  assert.deepEqual(workerProcessGroups(lostId), []);
  assert.equal(fs.existsSync(strandedFile), false);

  // The registry: retired by a fenced CAS that moved the epoch, audited as the janitor's doing.
  const lostAfter = await e2e.registry.store.getWorker(lostId);
  assert.deepEqual(
    [lostAfter?.state, lostAfter?.epoch, lostAfter?.failureReason],
    ['retired', 2, 'workflow_not_running'],
  );
  const trail = await e2e.registry.store.history(lostId);
  const last = trail.at(-1);
  assert.deepEqual(
    [last?.fromState, last?.toState, last?.epochBefore, last?.epochAfter, last?.operation, last?.origin],
    ['idle', 'retired', 1, 2, 'reap', 'janitor'],
  );
  assert.equal((await e2e.registry.store.getWorker(strandedId))?.epoch, 3, 'a terminal row is not touched');

  // The counter, and no credential bytes in the report or in the run's history.
  const countersAfter = await counters();
  assert.deepEqual(countersAfter, {
    ...countersBefore,
    'pod/deleted': countersBefore['pod/deleted'] + 2,
    'secret/deleted': countersBefore['secret/deleted'] + 1,
    'row/deleted': countersBefore['row/deleted'] + 1,
  });
  const history = await historyText(e2e.client.workflow.getHandle(first.workflowId, first.runId));
  for (const token of [orphanToken, strandedToken]) {
    assert.ok(!JSON.stringify(report).includes(token));
    assert.ok(!history.includes(token), 'no credential token in the janitor run history');
  }

  // A second pass right after finds nothing and changes nothing.
  const second = await runThroughSchedule(schedule);
  // (Two triggers in one second share a workflow id: Temporal appends a timestamp in seconds.)
  assert.notEqual(second.runId, first.runId);
  assert.deepEqual(
    { ...second.report, checkedAt: '', durationMs: 0, retention: undefined },
    {
      checkedAt: '',
      pods: 0,
      rows: 0,
      workflowLookup: 'visibility',
      actions: [],
      omittedActions: 0,
      wedged: [],
      divergence: [],
      durationMs: 0,
      retention: undefined,
    },
  );
  assert.deepEqual(await counters(), countersAfter);
  assert.equal((await e2e.registry.store.history(lostId)).length, trail.length);
});

test('a row inside the grace period is kept with its pod, and reaped with it once the grace is over', async () => {
  // A row (and a running pod) whose workflow never existed: e.g. written by someone who died
  // before starting it. Within the grace it may still be about to start.
  const workerId = newWorkerId();
  await e2e.registry.seedWorker({ id: workerId, pool, state: 'idle', epoch: 1 });
  const { ref } = await e2e.runtime.create(podSpec(workerId, demoWorkerSettings.image), credentials(newToken()));
  assert.equal((await e2e.runtime.awaitReady(ref, { timeoutMs: 30_000 })).status, 'ready');
  const run = (graceMs: number, n: number) =>
    e2e.client.workflow.execute('janitorWorkflow', {
      taskQueue,
      workflowId: `janitor-e2e-${process.pid}-grace-${n}`,
      args: [{ graceMs }],
    }) as Promise<JanitorRunReport>;

  const countersBefore = await counters();
  const patient = await run(10 * 60_000, 1);
  assert.deepEqual(patient.actions, [
    {
      kind: 'row',
      name: workerId,
      workerId,
      pool,
      reason: 'within_grace',
      outcome: 'kept',
      workflowStatus: 'NOT_FOUND',
    },
  ]);
  assert.deepEqual(
    (await e2e.runtime.listManaged()).map((w) => w.name),
    [ref.name],
    'the pod of a kept row is kept',
  );
  assert.equal((await e2e.registry.store.getWorker(workerId))?.epoch, 1);
  assert.equal((await counters())['row/kept'], countersBefore['row/kept'] + 1);

  const reaper = await run(0, 2);
  assert.deepEqual(
    reaper.actions.map((a) => [a.kind, a.reason, a.outcome, a.workflowStatus, a.epoch]),
    [
      ['row', 'workflow_not_running', 'deleted', 'NOT_FOUND', 2],
      ['pod', 'workflow_not_running', 'deleted', undefined, undefined],
    ],
  );
  assert.deepEqual(await e2e.runtime.listManaged(), []);
  assert.deepEqual(workerProcessGroups(workerId), []);
});

/** Runs `work` over `items`, at most `concurrency` at a time. */
async function inLanes<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** A runtime that only lists the given inventory and records deletes; any other call fails the test. */
function inventoryOnlyRuntime(inventory: ManagedWorker[]): { runtime: PodRuntime; deleted: WorkerPodRef[] } {
  const deleted: WorkerPodRef[] = [];
  const calls: Partial<PodRuntime> = {
    kind: 'process',
    listManaged: async () => inventory,
    delete: async (ref) => {
      deleted.push(ref);
    },
  };
  const runtime = new Proxy(calls, {
    get: (target, prop) =>
      prop in target
        ? target[prop as keyof PodRuntime]
        : () => Promise.reject(new Error(`the janitor must not call runtime.${String(prop)}`)),
  }) as PodRuntime;
  return { runtime, deleted };
}

test('a pass over 1,000 live workers acts on none of them, retires the rows whose workflow does not exist, and reports the wedged ones', async () => {
  const scalePool = 'janscale';
  const liveCount = 1_000;
  const idOf = (kind: string, i: number) => `js${process.pid}${kind}${i}`;
  const live = Array.from({ length: liveCount }, (_, i) => idOf('live', i));
  const orphaned = Array.from({ length: 20 }, (_, i) => idOf('gone', i));
  const wedged = live.slice(0, 3);
  const superseded = live[3]!;
  // Rows straight into the registry, last changed 10 minutes ago (past the 60 s grace): 1,000 live
  // ones whose workflow runs (three of them in spawning for an hour: past the default 2 min spawn
  // deadline plus the margin), one of those on its second spawn attempt, and 20 with no workflow.
  await e2e.registry.db.query(
    `INSERT INTO workers (id, pool, image, state, epoch, spawn_attempt, endpoint, state_since, created_at, updated_at)
     SELECT id, $2, 'corral/demo:1', 'idle', 2, 1, 'http://127.0.0.1:1', now() - interval '10 minutes',
            now() - interval '20 minutes', now() - interval '10 minutes'
       FROM unnest($1::text[]) AS id`,
    [[...live, ...orphaned], scalePool],
  );
  await e2e.registry.db.query(
    `UPDATE workers SET state = 'spawning', endpoint = NULL, state_since = now() - interval '1 hour',
            updated_at = now() - interval '1 hour'
      WHERE id = ANY ($1::text[])`,
    [wedged],
  );
  await e2e.registry.db.query(`UPDATE workers SET spawn_attempt = 2 WHERE id = $1`, [superseded]);
  await e2e.registry.db.query(
    `INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, at)
     VALUES ($1, 'spawning', 'spawning', 1, 1, 'respawn', 'lifecycle_workflow', now() - interval '10 minutes')`,
    [superseded],
  );

  // Their lifecycle workflows: real executions of the lifecycle workflow type under each worker's
  // workflow id, on a task queue nobody polls — Running to Temporal and its visibility store, at
  // the cost of a start each. They end on their own if this test dies before terminating them.
  const parkedQueue = `janitor-parked-${process.pid}`;
  await inLanes(live, 32, async (id) => {
    await e2e.client.workflow.start('workerLifecycleWorkflow', {
      taskQueue: parkedQueue,
      workflowId: workerLifecycleWorkflowId(scalePool, id),
      args: [],
      workflowExecutionTimeout: '15m',
    });
  });
  try {
    await waitFor(
      async () =>
        (await e2e.client.workflow.count(`TaskQueue = '${parkedQueue}' AND ExecutionStatus = 'Running'`)).count ===
        liveCount,
      { what: `visibility to list ${liveCount} running lifecycle workflows`, timeoutMs: 60_000, intervalMs: 250 },
    );

    // The inventory: each live worker's current pod, the superseded attempt's pod, the pod of a
    // row about to be retired, and a pod with no row at all.
    const podOf = (workerId: string, spawnAttempt: number): ManagedWorker => ({
      name: `${scalePool}-${workerId}-${spawnAttempt}`,
      workerId,
      pool: scalePool,
      spawnAttempt,
      epoch: 2,
      hasPod: true,
      hasSecret: true,
      verdict: { status: 'ready' },
    });
    const inventory = [
      ...live.map((id) => podOf(id, id === superseded ? 2 : 1)),
      podOf(superseded, 1),
      podOf(orphaned[0]!, 1),
      podOf(idOf('norow', 0), 1),
    ];
    const { runtime, deleted } = inventoryOnlyRuntime(inventory);

    // The janitor as corral runs it, on private queues: its workflow on one, its activities on
    // that queue's janitor queue, with a Temporal client that counts describes.
    let describes = 0;
    const counting = new Client({
      connection: e2e.client.connection,
      namespace: e2e.temporal.namespace,
      interceptors: {
        workflow: [
          {
            describe: (input, next) => {
              describes += 1;
              return next(input);
            },
          },
        ],
      },
    });
    const scaleMetrics = new Registry();
    const scaleQueue = `janitor-scale-${process.pid}`;
    const workflows = await Worker.create({
      connection,
      namespace: e2e.temporal.namespace,
      taskQueue: scaleQueue,
      workflowBundle,
    });
    const activities: JanitorActivities = createJanitorActivities({
      store: e2e.registry.store,
      runtime,
      temporal: counting,
      metrics: createJanitorMetrics(scaleMetrics),
    });
    const janitorActivities = await Worker.create({
      connection,
      namespace: e2e.temporal.namespace,
      taskQueue: janitorTaskQueueOf(scaleQueue),
      activities,
    });
    const { rows: liveRows } = await e2e.registry.db.query(
      `SELECT count(*)::int AS n FROM workers WHERE state NOT IN ('retired', 'lost')`,
    );

    // Completing at all means the activity finished inside its start-to-close timeout (5 min):
    // Temporal enforces that bound, the test only waits for the result.
    const report = await workflows.runUntil(
      janitorActivities.runUntil(
        e2e.client.workflow.execute('janitorWorkflow', {
          taskQueue: scaleQueue,
          workflowId: `janitor-scale-${process.pid}`,
          args: [{}],
        }) as Promise<JanitorRunReport>,
      ),
    );
    console.log(
      JSON.stringify({
        benchmark: 'janitor reconcile pass',
        liveWorkers: liveCount,
        rows: report.rows,
        pods: report.pods,
        describes,
        reconcileMs: report.durationMs,
        retentionMs: report.retention?.durationMs,
      }),
    );

    assert.equal(report.rows, liveRows[0].n, 'every live row was examined');
    assert.equal(report.pods, inventory.length);
    assert.equal(report.workflowLookup, 'visibility');
    // One visibility listing answered for the 1,000; only the 20 rows missing from it were described.
    assert.equal(describes, orphaned.length);

    const byName = (a: JanitorAction, b: JanitorAction) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`);
    const expected: JanitorAction[] = [
      ...orphaned.map(
        (id): JanitorAction => ({
          kind: 'row',
          name: id,
          workerId: id,
          pool: scalePool,
          reason: 'workflow_not_running',
          outcome: 'deleted',
          workflowStatus: 'NOT_FOUND',
          epoch: 3,
        }),
      ),
      {
        kind: 'pod',
        name: `${scalePool}-${orphaned[0]}-1`,
        workerId: orphaned[0]!,
        pool: scalePool,
        reason: 'workflow_not_running',
        outcome: 'deleted',
      },
      {
        kind: 'pod',
        name: `${scalePool}-${superseded}-1`,
        workerId: superseded,
        pool: scalePool,
        reason: 'older_attempt',
        outcome: 'deleted',
      },
      {
        kind: 'pod',
        name: `${scalePool}-${idOf('norow', 0)}-1`,
        workerId: idOf('norow', 0),
        pool: scalePool,
        reason: 'no_row',
        outcome: 'deleted',
      },
    ];
    assert.deepEqual([...report.actions].sort(byName), expected.sort(byName));
    assert.deepEqual(
      deleted.map((ref) => ref.name).sort(),
      expected
        .filter((a) => a.kind === 'pod')
        .map((a) => a.name)
        .sort(),
    );

    // Nothing live was touched: every one of the 1,000 rows is as it was.
    const { rows: untouched } = await e2e.registry.db.query(
      `SELECT count(*)::int AS n FROM workers
        WHERE id = ANY ($1::text[]) AND epoch = 2 AND state IN ('idle', 'spawning')`,
      [live],
    );
    assert.equal(untouched[0].n, liveCount);
    const { rows: retired } = await e2e.registry.db.query(
      `SELECT count(*)::int AS n FROM workers WHERE id = ANY ($1::text[]) AND state = 'retired' AND epoch = 3`,
      [orphaned],
    );
    assert.equal(retired[0].n, orphaned.length);

    // Wedged: running, but in spawning for an hour.
    assert.deepEqual(
      report.wedged.map((w) => [w.workerId, w.pool, w.state, w.deadlineSeconds]).sort(),
      wedged.map((id) => [id, scalePool, 'spawning', 120]).sort(),
    );
    const gauge = await scaleMetrics.getSingleMetric('corral_janitor_wedged_workers')!.get();
    const value = (state: string) =>
      gauge.values.find((v) => v.labels.pool === scalePool && v.labels.state === state)?.value;
    assert.deepEqual([value('spawning'), value('activating'), value('draining')], [3, 0, 0]);
  } finally {
    await inLanes(live, 32, async (id) => {
      await e2e.client.workflow
        .getHandle(workerLifecycleWorkflowId(scalePool, id))
        .terminate('janitor scale test done')
        .catch(() => undefined);
    });
  }
});
