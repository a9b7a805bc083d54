// Drill 5 and the drain-while-spawning scenario (process runtime, one replica).
//
// wedged-drain: a pool of 4 idle workers; one worker's workflow is wedged: the drill terminates
// it and starts a workflow with the same id and input on a task queue nobody polls (a workflow
// whose tasks never run: e.g. a stuck worker build, a nondeterminism loop), so its row stays idle
// and any update to it never completes. Then the pool is drained. Measured: the time until the
// other three rows ended; checked: the pool workflow did not fail (running or completed once the
// pool is drained or its drain activity was retried, 90 s at most), and what the pool reports.
//
// drain-while-spawning: a pool of 3 whose image never becomes ready (a 600 s start delay); once
// all 3 readiness waits run, the pool is drained. Measured: drain request → pool `drained`, and
// → the last row ended (the last worker's drain answer); target: drained within 5 s of that.
import { performance } from 'node:perf_hooks';
import { defaultPayloadConverter } from '@temporalio/common';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { poolWorkflowId, workerLifecycleWorkflowId } from '../../src/common';
import {
  allPass,
  checkInvariants,
  errText,
  processGroups,
  processPool,
  registrySampler,
  runDrill,
  say,
  since,
  startReplica,
  startWorld,
  until,
} from './support';

export async function wedgedDrainDrill(): Promise<Record<string, unknown>> {
  const pool = 'wedged';
  const world = await startWorld({ name: 'wedged' });
  const result: Record<string, unknown> = {};
  return runDrill('wedged-drain', world, result, async () => {
    const image = await smallWorkerPath();
    const spec = processPool(pool, image, { minIdle: 4, maxWorkers: 6 });
    result.setup = {
      pool: spec,
      replicas: 1,
      wedge: 'one idle worker’s workflow terminated and started again (same id and input) on a task queue nobody polls',
    };
    const a = await startReplica(world, 'wedged-a');
    await a.corral.applyPool(spec);
    const sampler = registrySampler(world.db, pool);
    const filled = await until(async () => (await a.corral.getPool(pool))?.counts?.idle === 4, {
      timeoutMs: 180_000,
      what: 'fill',
    });
    result.fill_ms = filled?.ms ?? null;
    const { rows } = await world.db.query<{ id: string }>(
      "SELECT id FROM workers WHERE pool = $1 AND state = 'idle' ORDER BY id",
      [pool],
    );
    const wedgedId = rows[0].id;
    const wedgedWorkflow = workerLifecycleWorkflowId(pool, wedgedId);
    const handle = world.client.workflow.getHandle(wedgedWorkflow);
    const history = await handle.fetchHistory();
    const input = (history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? []).map((p) =>
      defaultPayloadConverter.fromPayload(p),
    );
    await handle.terminate('chaos drill: wedge this worker’s workflow');
    await world.client.workflow.start('workerLifecycleWorkflow', {
      taskQueue: `${world.taskQueue}-nobody-polls`,
      workflowId: wedgedWorkflow,
      args: input,
    });
    say(`wedged-drain: wedged ${wedgedId}; draining the pool`);
    const drainAt = performance.now();
    const drainWall = Date.now();
    await a.corral.drainPool(pool);
    const othersEnded = await until(
      async () => {
        const { rows: live } = await world.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM workers WHERE pool = $1 AND id <> $2 AND state NOT IN ('retired', 'lost')",
          [pool, wedgedId],
        );
        return live[0].n === 0;
      },
      { timeoutMs: 120_000, what: 'the other workers to end' },
    );
    const othersMs = othersEnded ? since(drainAt) : null;
    // Give the pool workflow time to trip over the wedged worker (its drain update never completes):
    // until the pool is drained, or its drain activity has been retried (one attempt timed out), 90 s at most.
    const drained = await until(
      async () => {
        if ((await a.corral.getPool(pool))?.status === 'drained') return 'drained';
        const { raw } = await world.client.workflow.getHandle(poolWorkflowId(pool)).describe();
        return (raw.pendingActivities ?? []).some((p) => (p.attempt ?? 1) >= 2) ? 'retrying' : false;
      },
      { timeoutMs: 90_000, intervalMs: 500, what: 'pool drained or its drain retried' },
    );
    const poolDesc = await world.client.workflow.getHandle(poolWorkflowId(pool)).describe();
    const poolStatus = await a.corral.getPool(pool);
    await sampler.stop();
    const invariants = await checkInvariants(world, {
      pool,
      seen: sampler.seen,
      terminatedByDrill: new Set(),
    });
    // The first run of the wedged worker was terminated by the drill; the wedged run is expected to be running.
    const wf = invariants.workflows_running_or_properly_ended;
    const badList = (wf.detail as { failed_or_terminated: { workflowId: string }[] }).failed_or_terminated;
    const others = badList.filter((b) => b.workflowId !== wedgedWorkflow);
    wf.ok = others.length === 0;
    const poolFailed = ['FAILED', 'TERMINATED', 'TIMED_OUT'].includes(poolDesc.status.name);
    result.drain_request_to_others_ended_ms = othersMs;
    result.pool_drained_despite_wedge_ms = drained?.value === 'drained' ? drained.ms : null;
    result.observed = drained ? `${drained.value} after ${drained.ms} ms` : 'neither within 90 s';
    result.pool_workflow_view = await a.corral
      .describePool(pool)
      .then((d) => d.workflow)
      .catch((err: unknown) => errText(err));
    result.pool_workflow_status_after = poolDesc.status.name;
    result.pool_status_after = { status: poolStatus?.status, counts: poolStatus?.counts };
    result.pool_workflow_pending_activities = (poolDesc.raw.pendingActivities ?? []).map((p) => ({
      type: p.activityType?.name,
      attempt: p.attempt,
      last_failure: p.lastFailure?.message?.slice(0, 200),
    }));
    result.outcome = {
      other_workers_drained: othersEnded !== null,
      pool_workflow_not_failed: !poolFailed,
    };
    result.invariants = invariants;
    result.invariants_pass = allPass(invariants) && othersEnded !== null && !poolFailed;
    result.drain_requested_at = new Date(drainWall).toISOString();
    result.timeline = sampler.timeline;
    await handle.terminate('chaos drill: done').catch(() => undefined);
  });
}

export async function drainWhileSpawningDrill(): Promise<Record<string, unknown>> {
  const pool = 'spawndrain';
  const world = await startWorld({ name: 'spawndrain' });
  const result: Record<string, unknown> = {};
  return runDrill('drain-while-spawning', world, result, async () => {
    const image = await smallWorkerPath();
    const spec = processPool(pool, image, {
      minIdle: 3,
      maxWorkers: 3,
      env: { DEMO_WORKER_START_DELAY_MS: '600000' },
      deadlines: { spawn: '5m', activation: '30s', maxLifetime: '24h', drain: '1m' },
    });
    result.setup = { pool: spec, replicas: 1, image: 'the small worker with a 600 s start delay: never ready in time' };
    const a = await startReplica(world, 'spawndrain-a');
    await a.corral.applyPool(spec);
    const sampler = registrySampler(world.db, pool, 200);
    const starting = await until(
      async () => {
        const { rows } = await world.db.query<{ id: string }>(
          "SELECT id FROM workers WHERE pool = $1 AND state = 'spawning'",
          [pool],
        );
        if (rows.length < 3) return false;
        const groups = processGroups(rows.map((r) => r.id));
        return groups.size === 3 ? rows.map((r) => r.id) : false;
      },
      { timeoutMs: 120_000, what: '3 workers starting' },
    );
    if (!starting) throw new Error('the 3 workers did not start');
    const drainWall = Date.now();
    const drainAt = performance.now();
    await a.corral.drainPool(pool);
    const drained = await until(async () => (await a.corral.getPool(pool))?.status === 'drained', {
      timeoutMs: 180_000,
      intervalMs: 50,
      what: 'pool drained',
    });
    const drainedMs = drained ? since(drainAt) : null;
    const { rows } = await world.db.query<{
      id: string;
      state: string;
      state_since: Date;
      failure_reason: string | null;
    }>('SELECT id, state, state_since, failure_reason FROM workers WHERE pool = $1', [pool]);
    const lastEndedMs = Math.max(...rows.map((r) => r.state_since.getTime() - drainWall));
    await sampler.stop();
    const invariants = await checkInvariants(world, { pool, seen: sampler.seen });
    result.drain_to_drained_ms = drainedMs;
    result.drain_to_last_worker_ended_ms = lastEndedMs;
    result.drained_after_last_worker_ms = drainedMs === null ? null : drainedMs - lastEndedMs;
    result.rows = rows.map((r) => ({ id: r.id, state: r.state, reason: r.failure_reason }));
    result.worker_processes_left = processGroups(starting.value).size;
    result.target = { drained_within_ms_of_last_worker: 5_000 };
    result.met = drainedMs !== null && drainedMs - lastEndedMs <= 5_000;
    result.invariants = invariants;
    result.invariants_pass = allPass(invariants);
    result.timeline = sampler.timeline;
  });
}
