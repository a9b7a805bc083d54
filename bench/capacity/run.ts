// bench/capacity (issue 20): static minIdle sized for the peak vs demand-driven warm capacity
// (docs/decisions/0035-demand-driven-warm-capacity.md), on the real stack — a Temporal dev server,
// embedded Postgres, one `bin/corral worker` replica (process runtime, the small protocol worker) —
// replaying the same bursty multi-tenant claim trace against each mode in turn.
//
// The trace (seeded, so both modes get exactly the same claims): a compressed day of D minutes —
// night (the first 30 % and the last 20 %) at 2 % of the peak rate, a morning ramp (30–40 %), the day
// at the peak rate (40–70 %) with three bursts of 15 claims in 2 s from the heavy tenant, an
// evening ramp (70–80 %). Arrivals are a non-homogeneous Poisson process (thinning). 20 tenants:
// tenant-00 makes 40 % of the claims (and the bursts), the other 19 share the rest evenly. Each claim
// holds its worker for an exponential time (mean 5 s) and releases it; the pools retire released
// workers (releasePolicy retire: one tenant per worker), so every claim consumes warm capacity.
//
// Static: minIdle = what demand mode's estimator asks for at the peak rate — ceil(m + 2·√m),
// m = λ_peak·L, L the replenishment lead time (claim → the pool's reservation → ready) measured on a
// calibration pool first, kept warm while 40 claims arrive at the peak rate. Demand: minIdle 1,
// warmCapacity { mode: demand, coolDown 1m, burst 2 }.
//
// Per mode: warm-hit ratio (claims served by an idle worker without waiting), claim latency
// percentiles (client side), errors by code, idle worker-seconds (the registry's idle count sampled
// every 250 ms, integrated), and the largest tenant's share of the claims that were not warm hits
// (and of the time waited in the queue); claims and warm hits by phase of the day. Target (issue 20): demand within 5 percentage points of
// static on warm hits, with ≤ 50 % of its idle worker-seconds.
//
// Each worker takes startDelayMs to start (the small worker's DEMO_WORKER_START_DELAY_MS), as a pod
// with its image cached takes seconds to be scheduled, started and initialised; the process runtime
// alone starts one in ~0.3 s, which no pod does and which leaves a warm pool little to do.
//
// Usage: node --require tsx/cjs bench/capacity/run.ts [minutesPerMode=10] [peakClaimsPerSecond=2] [startDelayMs=4000]
// → one JSON document on stdout, also written to bench/results/capacity.json (capacity-start-<ms>ms.json
// for another start delay).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CorralError } from '../../src/client/errors';
import type { ClaimResult } from '../../src/client/corral-client';
import type { PoolSpecInput } from '../../src/config/pool-spec';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { repoRoot } from '../../src/embedded/tools';
import { PoolStore } from '../../src/registry/pool-store';
import { warmCapacityTarget } from '../../src/config/warm-capacity';
import { provenance } from '../provenance';
import { errText, hold, machine, processPool, say, startReplica, startWorld, summarise, until } from '../chaos/support';

const minutesPerMode = Number(process.argv[2] ?? 10);
const peakPerSecond = Number(process.argv[3] ?? 2);
/** How long a worker takes to start (DEMO_WORKER_START_DELAY_MS): a pod's schedule, start and init. */
const defaultStartDelayMs = 4_000;
const startDelayMs = Number(process.argv[4] ?? defaultStartDelayMs);
const tenants = Array.from({ length: 20 }, (_, i) => `tenant-${String(i).padStart(2, '0')}`);
const heavyTenant = tenants[0]!;
const meanHoldMs = 5_000;
const claimTimeout = '60s';

/** A small seeded PRNG (mulberry32): the same trace for both modes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The rate at fraction f of the day, as a fraction of the peak. */
function dayShape(f: number): number {
  const night = 0.02;
  if (f < 0.3 || f >= 0.8) return night;
  if (f < 0.4) return night + ((1 - night) * (f - 0.3)) / 0.1;
  if (f < 0.7) return 1;
  return 1 - ((1 - night) * (f - 0.7)) / 0.1;
}

/** The part of the day a claim fell in (bursts are counted apart). */
function phaseOf(f: number): string {
  if (f < 0.3 || f >= 0.8) return 'night';
  if (f < 0.4) return 'morning_ramp';
  if (f < 0.7) return 'day';
  return 'evening_ramp';
}

interface TraceClaim {
  atMs: number;
  tenant: string;
  holdMs: number;
  burst: boolean;
}

function makeTrace(durationMs: number, peak: number): TraceClaim[] {
  const random = prng(20261129);
  const exp = (mean: number) => -Math.log(1 - random()) * mean;
  const pickTenant = () => (random() < 0.4 ? heavyTenant : tenants[1 + Math.floor(random() * 19)]!);
  const claims: TraceClaim[] = [];
  // Thinning: candidates at the peak rate, each kept with probability shape(t).
  for (let t = exp(1000 / peak); t < durationMs; t += exp(1000 / peak)) {
    if (random() < dayShape(t / durationMs)) {
      claims.push({ atMs: t, tenant: pickTenant(), holdMs: exp(meanHoldMs), burst: false });
    }
  }
  for (const f of [0.45, 0.55, 0.65]) {
    for (let i = 0; i < 15; i++) {
      claims.push({
        atMs: f * durationMs + random() * 2_000,
        tenant: heavyTenant,
        holdMs: exp(meanHoldMs),
        burst: true,
      });
    }
  }
  return claims.sort((a, b) => a.atMs - b.atMs);
}

interface ClaimOutcome {
  /** When the trace made the claim, as a fraction of the day. */
  dayFraction: number;
  tenant: string;
  burst: boolean;
  latencyMs: number;
  warmHit: boolean;
  waitedMs: number;
  error?: string;
}

async function replay(
  corral: () => import('../../src/client/corral-client').CorralClient,
  pool: string,
  trace: TraceClaim[],
  durationMs = 1,
): Promise<ClaimOutcome[]> {
  const t0 = performance.now();
  const outcomes: Promise<ClaimOutcome>[] = [];
  for (const [i, c] of trace.entries()) {
    const wait = c.atMs - (performance.now() - t0);
    if (wait > 0) await hold(wait); // pacing the trace, not waiting for an event
    outcomes.push(
      (async () => {
        const started = performance.now();
        let lease: ClaimResult;
        try {
          lease = await corral().claim(pool, { tenant: c.tenant, requestId: `${pool}-${i}`, timeout: claimTimeout });
        } catch (err) {
          return {
            dayFraction: c.atMs / durationMs,
            tenant: c.tenant,
            burst: c.burst,
            latencyMs: performance.now() - started,
            warmHit: false,
            waitedMs: 0,
            error: err instanceof CorralError ? err.code : errText(err),
          };
        }
        const latencyMs = performance.now() - started;
        await hold(c.holdMs); // the tenant uses its worker
        await corral()
          .release(lease)
          .catch(() => undefined);
        return {
          dayFraction: c.atMs / durationMs,
          tenant: c.tenant,
          burst: c.burst,
          latencyMs,
          warmHit: lease.path === 'warm' && lease.waitedMs === 0,
          waitedMs: lease.waitedMs,
        };
      })(),
    );
  }
  return Promise.all(outcomes);
}

/** Integrates the pool's idle workers (not asked to drain) over time: idle worker-seconds. */
function idleSampler(store: PoolStore, pool: string) {
  let idleSeconds = 0;
  let last = performance.now();
  let lastIdle = 0;
  let stopped = false;
  const targets: number[] = [];
  const loop = (async () => {
    while (!stopped) {
      try {
        const { counts } = await store.inventory(pool);
        const now = performance.now();
        idleSeconds += (lastIdle * (now - last)) / 1000;
        last = now;
        lastIdle = counts.idle ?? 0;
        targets.push(lastIdle);
      } catch {
        // a missed sample: the previous count stands until the next
      }
      await hold(250);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      idleSeconds += (lastIdle * (performance.now() - last)) / 1000;
      return { idleWorkerSeconds: Math.round(idleSeconds), maxIdle: Math.max(0, ...targets) };
    },
  };
}

function summariseMode(outcomes: ClaimOutcome[], idle: { idleWorkerSeconds: number; maxIdle: number }) {
  const ok = outcomes.filter((o) => !o.error);
  const notWarm = outcomes.filter((o) => !o.warmHit);
  const waited = ok.filter((o) => o.waitedMs > 0);
  const totalWaitedMs = waited.reduce((sum, o) => sum + o.waitedMs, 0);
  const errors: Record<string, number> = {};
  for (const o of outcomes) if (o.error) errors[o.error] = (errors[o.error] ?? 0) + 1;
  const share = (part: number, whole: number) => (whole === 0 ? 0 : Math.round((part / whole) * 1000) / 1000);
  const byPhase: Record<string, { claims: number; warm_hits: number }> = {};
  for (const o of outcomes) {
    const phase = o.burst ? 'bursts' : phaseOf(o.dayFraction);
    const tally = (byPhase[phase] ??= { claims: 0, warm_hits: 0 });
    tally.claims++;
    if (o.warmHit) tally.warm_hits++;
  }
  return {
    claims: outcomes.length,
    by_phase: byPhase,
    warm_hit_ratio: share(ok.filter((o) => o.warmHit).length, outcomes.length),
    latency_ms: summarise(ok.map((o) => o.latencyMs)),
    errors,
    idle_worker_seconds: idle.idleWorkerSeconds,
    max_idle_seen: idle.maxIdle,
    not_warm: notWarm.length,
    waited_in_queue: waited.length,
    largest_tenant: {
      tenant: heavyTenant,
      share_of_claims: share(outcomes.filter((o) => o.tenant === heavyTenant).length, outcomes.length),
      share_of_not_warm: share(notWarm.filter((o) => o.tenant === heavyTenant).length, notWarm.length),
      share_of_time_waited: share(
        waited.filter((o) => o.tenant === heavyTenant).reduce((sum, o) => sum + o.waitedMs, 0),
        totalWaitedMs,
      ),
    },
  };
}

async function main(): Promise<void> {
  const durationMs = minutesPerMode * 60_000;
  const trace = makeTrace(durationMs, peakPerSecond);
  say(`trace: ${trace.length} claims over ${minutesPerMode} min per mode, peak ${peakPerSecond}/s`);
  const world = await startWorld({ name: 'capacity' });
  const result: Record<string, unknown> = {
    bench: 'capacity',
    provenance: provenance(),
    machine: machine(),
    trace: {
      minutes: minutesPerMode,
      peak_claims_per_second: peakPerSecond,
      claims: trace.length,
      bursts: '3 × 15 claims in 2 s from the heavy tenant during the day',
      tenants: tenants.length,
      heavy_tenant_share: 0.4,
      mean_hold_ms: meanHoldMs,
      worker_start_delay_ms: startDelayMs,
      shape: 'night 2 % (0–30 %, 80–100 %), ramps (30–40 %, 70–80 %), peak (40–70 %)',
    },
  };
  try {
    const image = await smallWorkerPath();
    const replica = await startReplica(world, 'a');
    const store = new PoolStore(world.db);
    const base = (name: string, over: Partial<PoolSpecInput>): PoolSpecInput =>
      processPool(name, image, {
        maxWorkers: 80,
        refillPerMinute: 1_000,
        env: { DEMO_WORKER_START_DELAY_MS: String(startDelayMs) },
        releasePolicy: 'retire',
        onFull: 'wait',
        ...over,
      });

    // Calibration: the replenishment lead time L (reaction + spawn) that sizes static minIdle for
    // the peak, measured on a pool kept warm while 40 claims arrive at the peak rate.
    const calibration = base('calibrate', { minIdle: 20 });
    await replica.corral.applyPool(calibration);
    await until(async () => ((await store.inventory('calibrate')).counts.idle ?? 0) >= 20, {
      timeoutMs: 120_000,
      what: 'calibration pool warm',
    });
    const calibrationTrace = Array.from({ length: 40 }, (_, i) => ({
      atMs: (i * 1000) / peakPerSecond,
      tenant: tenants[i % tenants.length]!,
      holdMs: meanHoldMs,
      burst: false,
    }));
    await replay(() => replica.corral, 'calibrate', calibrationTrace);
    const observed = await store.observeDemand('calibrate', 60_000);
    await replica.corral.drainPool('calibrate');
    const peakPerMinute = peakPerSecond * 60;
    const atPeak = warmCapacityTarget(
      { minIdle: 0, maxWorkers: 80, warmCapacity: { mode: 'demand', coolDown: 60_000, burst: 2 } },
      {
        ...observed,
        claimsLastTenSeconds: peakPerSecond * 10,
        claimsLastMinute: peakPerMinute,
        peakClaimsPerMinute: peakPerMinute,
      },
    );
    const staticMinIdle = atPeak.effectiveTarget;
    const ms = (seconds: number) => Math.round(seconds * 1000);
    result.calibration = {
      lead_ms: ms(atPeak.leadSeconds),
      reaction_ms: ms(atPeak.reactionSeconds),
      spawn_ms: ms(atPeak.spawnSeconds),
      static_min_idle: staticMinIdle,
    };
    say(`L = ${atPeak.leadSeconds.toFixed(2)} s → static minIdle ${staticMinIdle}`);

    const modes: [string, PoolSpecInput][] = [
      ['static', base('cap-static', { minIdle: staticMinIdle })],
      ['demand', base('cap-demand', { minIdle: 1, warmCapacity: { mode: 'demand', coolDown: '1m', burst: 2 } })],
    ];
    for (const [mode, spec] of modes) {
      await replica.corral.applyPool(spec);
      await until(async () => ((await store.inventory(spec.name)).counts.idle ?? 0) >= spec.minIdle, {
        timeoutMs: 120_000,
        what: `${mode} pool at its minIdle`,
      });
      say(`${mode}: replaying`);
      const sampler = idleSampler(store, spec.name);
      const outcomes = await replay(() => replica.corral, spec.name, trace, durationMs);
      const idle = await sampler.stop();
      result[mode] = summariseMode(outcomes, idle);
      say(`${mode}: ${JSON.stringify(result[mode])}`);
      await replica.corral.drainPool(spec.name);
      await until(async () => (await replica.corral.getPool(spec.name))?.status === 'drained', {
        timeoutMs: 180_000,
        what: `${mode} pool drained`,
      });
    }
    const s = result.static as ReturnType<typeof summariseMode>;
    const d = result.demand as ReturnType<typeof summariseMode>;
    const warmHitDeltaPp = Math.round((s.warm_hit_ratio - d.warm_hit_ratio) * 1000) / 10;
    const idleRatio = Math.round((d.idle_worker_seconds / Math.max(1, s.idle_worker_seconds)) * 1000) / 1000;
    result.comparison = {
      warm_hit_gap_pp: warmHitDeltaPp,
      demand_idle_seconds_vs_static: idleRatio,
      target: 'warm_hit_gap_pp ≤ 5 and demand_idle_seconds_vs_static ≤ 0.5',
      target_met: warmHitDeltaPp <= 5 && idleRatio <= 0.5,
    };
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  } finally {
    await world.cleanups.run();
  }
  const json = JSON.stringify(result, null, 2);
  fs.mkdirSync(path.join(repoRoot, 'bench', 'results'), { recursive: true });
  const name = startDelayMs === defaultStartDelayMs ? 'capacity' : `capacity-start-${startDelayMs}ms`;
  fs.writeFileSync(path.join(repoRoot, 'bench', 'results', `${name}.json`), `${json}\n`);
  console.log(json);
}

void main();
