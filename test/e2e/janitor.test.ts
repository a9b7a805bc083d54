// The janitor end to end: the real dev server (its Schedule triggers the run), the real registry,
// the process runtime running the real demo worker. Three kinds of divergence are made for real
// (an orphan pod, a stranded secret, a worker whose lifecycle workflow was terminated by hand);
// one pass reconciles all of them, and a second pass finds nothing left to do.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ScheduleOverlapPolicy, type ScheduleHandle } from '@temporalio/client';
import { podRefOf, type JanitorAction, type JanitorReport } from '../../src/activities/janitor-activities';
import { ensureJanitorSchedule } from '../../src/client/janitor-schedule';
import { waitFor } from '../../src/embedded/wait';
import { describeQuery, workerLifecycleWorkflowId } from '../../src/workflows/worker-lifecycle/messages';
import { demoWorkerSettings, historyText } from '../harness/lifecycle-e2e';
import { newWorkerId, waitForState } from '../harness/lifecycle-env';
import { usePoolE2e, type PoolE2e } from '../harness/pool-e2e';
import { workerProcessGroups } from '../harness/process-inspection';

// Schedule ids are global to the namespace and test files share one dev server: a private id.
const scheduleId = `corral/janitor-e2e-${process.pid}`;
const pool = 'jan';
// The corral worker of the pool e2e world registers every activity, the janitor's included.
let e2e: PoolE2e;
let taskQueue: string;

before(async () => {
  e2e = await usePoolE2e();
  taskQueue = e2e.taskQueue;
});
after(async () => {
  await e2e?.client.schedule
    .getHandle(scheduleId)
    .delete()
    .catch(() => undefined);
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
  const metric = await e2e.metrics.getSingleMetric('corral_stranded_resources_reconciled_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [`${v.labels.kind}/${v.labels.outcome}`, v.value]));
}

const byKindAndName = (a: JanitorAction, b: JanitorAction) =>
  `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`);

/** Triggers one scheduled run and waits for its report (the run's workflow id carries Temporal's timestamp). */
async function runThroughSchedule(
  schedule: ScheduleHandle,
): Promise<{ report: JanitorReport; workflowId: string; runId: string }> {
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
  const report = (await e2e.client.workflow.getHandle(workflowId, runId).result()) as JanitorReport;
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
    taskQueue,
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
  assert.deepEqual(described.action.args, [{ graceMs: 0 }]);
  assert.equal(described.state.paused, true, "an operator's pause survives a corral worker's start");

  const countersBefore = await counters();
  const first = await runThroughSchedule(schedule);
  const { report } = first;
  assert.equal(report.pods, 3);
  assert.equal(report.rows, 1, 'one non-terminal row: the terminated worker');
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
    { ...second.report, checkedAt: '' },
    { checkedAt: '', pods: 0, rows: 0, actions: [], divergence: [] },
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
    }) as Promise<JanitorReport>;

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
