// Drill 4: the Temporal dev server is killed (SIGKILL) mid-fill (a fill of 8 at 1 spawn/s, 2 s image
// start; the kill once 2 are idle and others still start) and started again on the same
// SQLite file and port, 5 s later. Two replicas keep running through it (their connections retry).
// Measured: the time from the restart until the fill completes (minIdle idle, nothing starting)
// and until every worker workflow answers a query as idle and the pool workflow counts minIdle;
// checked: no workflow lost (every workflow that existed before the kill still exists afterwards,
// running or properly ended) and the usual invariants.
import { performance } from 'node:perf_hooks';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { startTemporalDevServer } from '../../src/embedded/temporal-dev-server';
import { poolWorkflowId, describeQuery, workerLifecycleWorkflowId } from '../../src/common';
import {
  allPass,
  checkInvariants,
  drainAtEnd,
  hold,
  processPool,
  registrySampler,
  runDrill,
  say,
  since,
  startReplica,
  startWorld,
  until,
} from './support';

export async function temporalRestartDrill(): Promise<Record<string, unknown>> {
  const pool = 'tfill';
  const minIdle = 8;
  const world = await startWorld({ name: 'temporal', temporalDbFile: true });
  const result: Record<string, unknown> = {};
  return runDrill('temporal-restart', world, result, async () => {
    const image = await smallWorkerPath();
    const spec = processPool(pool, image, {
      minIdle,
      maxWorkers: 10,
      refillPerMinute: 60,
      env: { DEMO_WORKER_START_DELAY_MS: '2000' },
    });
    result.setup = {
      pool: spec,
      replicas: 2,
      fault:
        'SIGKILL of the Temporal dev server once 2 workers are idle and others still start; restarted 5 s later on its SQLite file and port',
    };
    const a = await startReplica(world, 'temporal-a');
    await startReplica(world, 'temporal-b');
    const sampler = registrySampler(world.db, pool);
    const applied = performance.now();
    await a.corral.applyPool(spec);
    // Mid-fill: some idle, some still starting (the registry, polled directly); the kill follows at once.
    const atKill = await until(
      async () => {
        const { rows } = await world.db.query<{ id: string; state: string }>(
          'SELECT id, state FROM workers WHERE pool = $1',
          [pool],
        );
        const c: Record<string, number> = {};
        for (const r of rows) c[r.state] = (c[r.state] ?? 0) + 1;
        return (c.idle ?? 0) >= 2 && (c.spawning ?? 0) + (c.activating ?? 0) > 0 ? { rows, c } : false;
      },
      { timeoutMs: 120_000, intervalMs: 50, what: 'mid-fill: 2 idle, some starting' },
    );
    const killAt = performance.now();
    await world.temporal.process.kill();
    if (!atKill) throw new Error('the fill was never seen mid-way');
    const countsAtKill = atKill.value.c;
    // Every workflow that existed at the kill: the pool's and one per worker row.
    const before = [poolWorkflowId(pool), ...atKill.value.rows.map((r) => workerLifecycleWorkflowId(pool, r.id))];
    say(`temporal-restart: dev server killed at ${JSON.stringify(countsAtKill)}; ${before.length} workflows`);
    await hold(5_000);
    world.temporal = await startTemporalDevServer({ ...world.temporalPorts, dbFile: world.temporalDbFile });
    const restartedAt = performance.now();
    say(`temporal-restart: dev server back after ${since(killAt)} ms`);
    const filled = await until(
      async () => {
        const c = (await a.corral.getPool(pool))?.counts;
        return c && c.idle === minIdle && !c.spawning && !c.activating;
      },
      { timeoutMs: 300_000, what: 'fill after the restart' },
    );
    // The workflows themselves resumed: every worker workflow answers a query (served by a
    // replica) with state idle, and the pool workflow's own inventory reads minIdle idle.
    const ids = (
      await world.db.query<{ id: string }>("SELECT id FROM workers WHERE pool = $1 AND state = 'idle'", [pool])
    ).rows.map((r) => r.id);
    const resumed = await until(
      async () => {
        const states = await Promise.all(
          ids.map((id) =>
            world.client.workflow
              .getHandle(workerLifecycleWorkflowId(pool, id))
              .query(describeQuery)
              .then((d) => d.state),
          ),
        );
        const view = await a.corral.describePool(pool);
        return states.every((st) => st === 'idle') && view.workflow?.inventory?.idle === minIdle;
      },
      { timeoutMs: 120_000, intervalMs: 250, what: 'workflows to answer as idle' },
    );
    result.workflows_answer_idle_after_restart_ms = resumed ? since(restartedAt) : null;
    result.counts_at_kill = countsAtKill;
    result.down_ms = Math.round(restartedAt - killAt);
    result.fill_completed_after_restart_ms = filled ? since(restartedAt) : null;
    result.fill_total_ms = filled ? since(applied) : null;
    const after = new Set<string>();
    for await (const wf of world.client.workflow.list({ query: '' })) after.add(wf.workflowId);
    const lostWorkflows = before.filter((id) => !after.has(id));
    await sampler.stop();
    const invariants = await checkInvariants(world, { pool, seen: sampler.seen });
    invariants.no_workflow_lost = {
      ok: lostWorkflows.length === 0,
      detail: { before: before.length, lost: lostWorkflows },
    };
    result.invariants = invariants;
    result.invariants_pass = allPass(invariants) && filled !== null && resumed !== null;
    result.timeline = sampler.timeline;
    await drainAtEnd(a.corral, pool);
  });
}
