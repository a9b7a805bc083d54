// Drill 1: kill -9 of a `corral worker` replica (of 2) mid-fill and mid-claims, repeated.
//
// A process pool of the small worker (minIdle 6, releasePolicy retire: every released worker is
// retired and refilled, so claims keep a fill going; a 1.5 s image start keeps spawns in flight).
// Per kill: claims run from 2 s before the kill to 1 s after it; the kill lands once a readiness
// wait is running. Then, with only the survivor: the time until every spawn in flight at the kill
// left spawning/activating, every activity the dead replica held continued elsewhere, every claim
// in flight was answered, and (from the histories) every workflow task scheduled around the kill
// completed; recovery = the slowest of those. Also: the time until the pool is back at minIdle.
// A replacement replica starts after the measurement, so the next kill again leaves one survivor.
import { performance } from 'node:perf_hooks';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { poolWorkflowId } from '../../src/common';
import {
  activitiesHeldBy,
  activityContinued,
  allPass,
  checkInvariants,
  claimLoop,
  claimSummary,
  drainAtEnd,
  errText,
  hold,
  identityOf,
  processPool,
  registrySampler,
  runDrill,
  say,
  since,
  startReplica,
  startWorld,
  summarise,
  until,
  workflowTaskDelays,
} from './support';

export async function replicaKillDrill(opts: { kills: number }): Promise<Record<string, unknown>> {
  const pool = 'kill';
  const minIdle = 6;
  const world = await startWorld({ name: 'kill' });
  const result: Record<string, unknown> = {};
  return runDrill('replica-kill', world, result, async () => {
    const image = await smallWorkerPath();
    const spec = processPool(pool, image, {
      minIdle,
      maxWorkers: 10,
      releasePolicy: 'retire',
      env: { DEMO_WORKER_START_DELAY_MS: '1500' },
    });
    result.setup = {
      pool: spec,
      replicas: 2,
      claims: '2 concurrent loops, hold 300 ms, from 2 s before each kill to 1 s after it',
      kill: 'SIGKILL of one replica once a readiness wait runs; the replacement starts after the measurement',
    };
    say('replica-kill: starting 2 replicas');
    let replicas = [await startReplica(world, 'kill-a'), await startReplica(world, 'kill-b')];
    await replicas[0].corral.applyPool(spec);
    const sampler = registrySampler(world.db, pool);
    const filled = await until(
      async () => {
        const c = await world.db.query("SELECT count(*)::int AS n FROM workers WHERE pool = $1 AND state = 'idle'", [
          pool,
        ]);
        return (c.rows[0] as { n: number }).n >= minIdle;
      },
      { timeoutMs: 180_000, what: 'first fill' },
    );
    result.first_fill_ms = filled?.ms ?? null;

    const kills: Record<string, unknown>[] = [];
    for (let k = 0; k < opts.kills; k++) {
      const victim = replicas[0];
      const survivor = replicas[1];
      const identity = identityOf(victim);
      // Claims through the survivor's API (the victim's API dies with it).
      const claims = claimLoop(() => survivor.corral, pool, {
        concurrency: 2,
        holdMs: 300,
        timeout: '30s',
        tag: `k${k}`,
      });
      await hold(2_000);
      // Mid-fill: a readiness wait is running somewhere.
      await until(
        async () => {
          const { rows } = await world.db.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM workers WHERE pool = $1 AND state IN ('spawning', 'activating')",
            [pool],
          );
          return rows[0].n > 0;
        },
        { timeoutMs: 30_000, intervalMs: 50, what: 'a spawn in flight' },
      );
      const { rows: inFlight } = await world.db.query<{ id: string; state: string }>(
        "SELECT id, state FROM workers WHERE pool = $1 AND state IN ('spawning', 'activating')",
        [pool],
      );
      const held = await activitiesHeldBy(world, identity).catch(() => []);
      const claimsBefore = claims.records.length;
      const killWall = Date.now();
      const killAt = performance.now();
      victim.proc.child.kill('SIGKILL');
      await victim.proc.exited;
      say(
        `replica-kill ${k + 1}/${opts.kills}: killed pid ${victim.pid}; ${inFlight.length} spawns in flight, ${held.length} activities held`,
      );
      await hold(1_000);
      await claims.stop();
      const claimsAnsweredMs = Math.max(
        0,
        ...claims.records.slice(claimsBefore).map((r) => Math.round(r.endMs - killAt)),
      );

      const spawnsDone = await until(
        async () => {
          if (inFlight.length === 0) return true;
          const { rows } = await world.db.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM workers WHERE id = ANY($1::text[]) AND state IN ('spawning', 'activating')",
            [inFlight.map((r) => r.id)],
          );
          return rows[0].n === 0;
        },
        { timeoutMs: 120_000, what: 'spawns in flight at the kill to finish' },
      );
      const spawnsDoneMs = spawnsDone ? since(killAt) : null;
      const activitiesDone = await until(
        async () => {
          for (const a of held) if (!(await activityContinued(world, a, identity))) return false;
          return true;
        },
        { timeoutMs: 120_000, intervalMs: 200, what: 'held activities to continue' },
      );
      const activitiesMs = activitiesDone ? since(killAt) : null;
      const back = await until(
        async () => {
          const { rows } = await world.db.query<{ state: string; n: number }>(
            'SELECT state, count(*)::int AS n FROM workers WHERE pool = $1 GROUP BY state',
            [pool],
          );
          const c = Object.fromEntries(rows.map((r) => [r.state, r.n]));
          return (c.idle ?? 0) >= minIdle && !c.spawning && !c.activating && !c.claimed;
        },
        { timeoutMs: 120_000, what: 'pool back at minIdle' },
      );
      const backMs = back ? since(killAt) : null;
      const tasks = await workflowTaskDelays(world, killWall, killWall - 5_000, killWall + 20_000).catch(
        (err: unknown) => ({ error: errText(err), max_ms: null }),
      );
      const parts = [spawnsDoneMs, activitiesMs, claimsAnsweredMs, tasks.max_ms];
      const recoveryMs = parts.some((p) => p === null) ? null : Math.max(...(parts as number[]));
      const kill = {
        kill: k + 1,
        victim_pid: victim.pid,
        spawns_in_flight: inFlight.length,
        activities_held: held.map((a) => `${a.type}@${a.workflowId === poolWorkflowId(pool) ? 'pool' : 'worker'}`),
        recovery_ms: recoveryMs,
        spawns_in_flight_done_ms: spawnsDoneMs,
        held_activities_continued_ms: activitiesMs,
        claims_in_flight_answered_ms: claimsAnsweredMs,
        workflow_tasks: tasks,
        pool_back_at_min_idle_ms: backMs,
        claims: claimSummary(claims.records),
      };
      say(`replica-kill ${k + 1}: ${JSON.stringify({ ...kill, workflow_tasks: tasks.max_ms, claims: undefined })}`);
      kills.push(kill);
      // Back to two replicas for the next kill.
      const replacement = await startReplica(world, `kill-r${k}`);
      replicas = [survivor, replacement];
    }
    const pick = (key: string) => kills.map((x) => x[key]).filter((v): v is number => typeof v === 'number');
    result.kills = kills;
    result.summary = {
      kills: kills.length,
      recovery_ms: summarise(pick('recovery_ms')),
      spawns_in_flight_done_ms: summarise(pick('spawns_in_flight_done_ms')),
      held_activities_continued_ms: summarise(pick('held_activities_continued_ms')),
      claims_in_flight_answered_ms: summarise(pick('claims_in_flight_answered_ms')),
      workflow_task_max_ms: summarise(
        kills.map((x) => (x.workflow_tasks as { max_ms: number | null }).max_ms).filter((v): v is number => v !== null),
      ),
      pool_back_at_min_idle_ms: summarise(pick('pool_back_at_min_idle_ms')),
      not_recovered: kills.filter((x) => x.recovery_ms === null).length,
    };
    const recovery = result.summary as { recovery_ms: { max: number; n: number } };
    result.target = { recovery_max_ms: 10_000 };
    result.met = recovery.recovery_ms.n === opts.kills && recovery.recovery_ms.max <= 10_000;

    await sampler.stop();
    const invariants = await checkInvariants(world, { pool, seen: sampler.seen });
    result.invariants = invariants;
    result.invariants_pass = allPass(invariants);
    result.timeline = sampler.timeline;
    // The drill ends with the pool drained through the survivor.
    await drainAtEnd(replicas[0].corral, pool);
  });
}
