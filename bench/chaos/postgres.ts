// Drill 2: the registry goes away while workers serve.
// - freeze: every postgres process of the drill's server gets SIGSTOP for 30 s, then SIGCONT (a
//   hung database: connections open, nothing answers).
// - stop (postgres-outage): the server is stopped for 11 minutes and started again on the same
//   data directory and port (the registry's local activities used to give up after 10 minutes).
// The pool (process runtime, 2 replicas) has deadlines that fall inside the outage: credentials
// refreshed every 10 s (ttl 5m, refreshLead 4m50s), idle TTL 1 min (idle workers retire and the
// pool refills), hot-idle TTL 20 s; two workers are claimed across it. Afterwards: no workflow
// failed, no worker lost since the fault began, the held leases still check valid, a claim works,
// the pool is back at minIdle, and the deadlines that fell inside are honoured (no live row with
// expired credentials, no idle row past its idle TTL).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import type { Lease } from '../../src/client/corral-client';
import {
  allPass,
  checkInvariants,
  drainAtEnd,
  errText,
  hold,
  processPool,
  registrySampler,
  say,
  since,
  startReplica,
  startWorld,
  until,
  type World,
} from './support';

/** The server's processes: the postmaster (postmaster.pid) and its children. */
function postgresPids(world: World): number[] {
  const postmaster = Number(
    fs.readFileSync(path.join(world.postgres.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0],
  );
  const pids = [postmaster];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export async function postgresDrill(opts: {
  mode: 'freeze' | 'stop';
  faultMs: number;
}): Promise<Record<string, unknown>> {
  const pool = opts.mode === 'freeze' ? 'pgfreeze' : 'pgoutage';
  const minIdle = 4;
  const world = await startWorld({ name: pool });
  const result: Record<string, unknown> = {};
  let frozen: number[] = [];
  try {
    const image = await smallWorkerPath();
    const spec = processPool(pool, image, {
      minIdle,
      maxWorkers: 8,
      releasePolicy: 'hot_idle',
      credentials: { ttl: '5m', refreshLead: '290s' },
      deadlines: { spawn: '2m', activation: '30s', idleTtl: '1m', hotIdleTtl: '20s', maxLifetime: '24h', drain: '1m' },
    });
    result.setup = {
      pool: spec,
      replicas: 2,
      fault:
        opts.mode === 'freeze'
          ? `SIGSTOP of every postgres process for ${opts.faultMs / 1000} s, then SIGCONT`
          : `postgres stopped for ${opts.faultMs / 60_000} min, started again on the same data directory`,
      serving: '2 workers claimed before the fault and held across it; a claim attempted during it',
    };
    say(`${pool}: starting 2 replicas`);
    const a = await startReplica(world, `${pool}-a`);
    await startReplica(world, `${pool}-b`);
    await a.corral.applyPool(spec);
    const sampler = registrySampler(world.db, pool);
    const filled = await until(async () => (await a.corral.getPool(pool))?.counts?.idle === minIdle, {
      timeoutMs: 180_000,
      what: 'fill',
    });
    result.fill_ms = filled?.ms ?? null;
    const leases: Lease[] = [];
    for (let i = 0; i < 2; i++) {
      leases.push(await a.corral.claim(pool, { tenant: `held-${i}`, requestId: `${pool}-held-${i}`, timeout: '60s' }));
    }
    // Let the idle TTLs of the first fill fall inside the fault: begin 40 s after the fill.
    await hold(opts.mode === 'freeze' ? 40_000 : 30_000);

    const faultFrom = Date.now();
    const faultAt = performance.now();
    if (opts.mode === 'freeze') {
      frozen = postgresPids(world);
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
      say(`${pool}: froze ${frozen.length} postgres processes`);
    } else {
      await world.postgres.stopServer();
      say(`${pool}: postgres stopped`);
    }
    // A claim during the fault: it must fail cleanly (typed, bounded), not hang.
    const duringT0 = performance.now();
    const during = await a.corral.claim(pool, { tenant: 'during', requestId: `${pool}-during`, timeout: '5s' }).then(
      () => ({ ok: true as const, ms: since(duringT0) }),
      (err: unknown) => ({ ok: false as const, ms: since(duringT0), error: errText(err).slice(0, 200) }),
    );
    // Holding the fault is the drill itself.
    await hold(Math.max(0, opts.faultMs - since(faultAt)));
    if (opts.mode === 'freeze') {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
      frozen = [];
    } else {
      await world.postgres.startServer();
    }
    const resumedAt = performance.now();
    say(`${pool}: registry back after ${since(faultAt)} ms`);

    const claimWorks = await until(
      async () => {
        const lease = await a.corral.claim(pool, {
          tenant: 'after',
          requestId: `${pool}-after-${Math.round(performance.now())}`,
          timeout: '10s',
        });
        await a.corral.release(lease);
        return true;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'a claim after the fault' },
    );
    const back = await until(async () => (await a.corral.getPool(pool))?.counts?.idle === minIdle, {
      timeoutMs: 180_000,
      what: 'pool back at minIdle',
    });
    const backAfterMs = back ? since(resumedAt) : null;
    // Deadlines that fell inside the fault are honoured afterwards: no live row with expired
    // credentials, no idle row past its idle TTL (1 min, + 30 s of slack).
    const overdue = async () =>
      (
        await world.db.query<{ id: string; state: string; why: string }>(
          `SELECT id, state, CASE WHEN credential_expires_at < now() THEN 'credentials expired' ELSE 'idle past its TTL' END AS why
           FROM workers WHERE pool = $1 AND state IN ('idle', 'claimed', 'hot_idle')
             AND (credential_expires_at < now() OR (state = 'idle' AND state_since < now() - interval '90 seconds'))`,
          [pool],
        )
      ).rows;
    const caughtUp = await until(async () => (await overdue()).length === 0, {
      timeoutMs: 240_000,
      intervalMs: 1_000,
      what: 'deadlines that fell inside the fault to be honoured',
    });
    const caughtUpMs = caughtUp ? since(resumedAt) : null;
    const stillOverdue = caughtUp ? [] : await overdue();
    const leaseChecks = await Promise.all(
      leases.map((l) =>
        a.corral.checkLease({ workerId: l.workerId, epoch: l.epoch }).then(
          (c) => c,
          (err: unknown) => ({ error: errText(err) }),
        ),
      ),
    );
    // Let every deadline the fault delayed run once more (credential refresh: 10 s) before the checks.
    await hold(15_000);
    await sampler.stop();
    const invariants = await checkInvariants(world, { pool, seen: sampler.seen, faultFrom });
    const lostSince = (invariants.no_lost_row.detail as { lost_since_fault: unknown[] }).lost_since_fault;
    const workflowsOk = invariants.workflows_running_or_properly_ended.ok;
    result.fault_ms = Math.round(resumedAt - faultAt);
    result.claim_during_fault = during;
    result.claim_works_after_ms = claimWorks?.ms ?? null;
    result.pool_back_at_min_idle_after_ms = backAfterMs;
    result.held_leases_after = leaseChecks;
    result.deadlines_caught_up_after_ms = caughtUpMs;
    result.still_overdue = stillOverdue;
    result.outcome = {
      no_workflow_failed: workflowsOk,
      no_worker_lost_to_the_fault: lostSince.length === 0,
      held_leases_still_valid: leaseChecks.every((c) => (c as { valid?: boolean }).valid === true),
      claims_work_after: claimWorks !== null,
      deadlines_honoured_after: caughtUp !== null,
    };
    // What the registry recorded from the fault on: the deadlines that fell inside it, done afterwards.
    const { rows: ops } = await world.db.query<{ operation: string; to_state: string; n: number }>(
      `SELECT t.operation, t.to_state, count(*)::int AS n FROM worker_transitions t JOIN workers w ON w.id = t.worker_id
       WHERE w.pool = $1 AND t.at >= $2 GROUP BY 1, 2 ORDER BY 1, 2`,
      [pool, new Date(faultFrom)],
    );
    result.transitions_since_fault = ops.map((o) => `${o.operation} → ${o.to_state}: ${o.n}`);
    result.invariants = invariants;
    result.invariants_pass =
      allPass(invariants) && Object.values(result.outcome as Record<string, boolean>).every(Boolean);
    result.timeline = sampler.timeline;
    await drainAtEnd(a.corral, pool);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    say(`${pool} failed: ${errText(err)}`);
  } finally {
    for (const pid of frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    await world.cleanups.run();
  }
  return result;
}
