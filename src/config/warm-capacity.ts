// Demand-driven warm capacity (docs/decisions/0035-demand-driven-warm-capacity.md): how many idle
// workers a pool keeps, from what the registry observed. Pure: the pool's readPool activity feeds
// it the registry's numbers on every pool turn, and the result is what the pool refills to.
//
// The pool is an (S−1, S) inventory: every claim that takes an idle worker orders one replacement,
// which arrives a lead time L later. With Poisson claims at rate λ, the replacements on their way
// are Poisson with mean λ·E[L] whatever L's distribution (Palm's theorem), and a claim finds no idle
// worker when S or more are on their way. The estimator, in full:
//   λ_10s    = claims in the last 10 seconds / 10 s  — a rising rate, within seconds
//   λ_now    = claims in the last minute / 60 s
//   λ_peak   = the most claims in any clock minute of the last `coolDown` / 60 s
//   λ        = max(λ_10s, λ_now, λ_peak)              — held until the busiest minute leaves coolDown
//   L        = reaction + spawn                     — the replenishment lead time, both means:
//     reaction = from a warm claim to the pool's next reservation of a worker (0 before any is known)
//     spawn    = from a reservation to the worker ready (10 s before any is known)
//   forecast = λ × L                                — replacements on their way, on average
//   target   = clamp(ceil(forecast + burst × √forecast), minIdle, maxIdle)
//              (the normal approximation of the Poisson quantile: burst 2 ≈ 98 % of claims warm)
//   headroom = target before clamping − ceil(forecast)
// Static pools keep minIdle (target = minIdle, headroom 0).
import type { PoolSpec } from './pool-spec';

/** Spawn-to-ready assumed before the pool has a ready worker to measure. */
export const defaultSpawnSeconds = 10;
/** The fast window: a rising rate counts within it; a target it set may fall once it has passed. */
export const fastWindowMs = 10_000;

export interface DemandObservation {
  /** Claims made in the last 10 seconds. */
  claimsLastTenSeconds: number;
  /** Claims made in the last minute. */
  claimsLastMinute: number;
  /** The most claims made in any clock minute of the last `warmCapacity.coolDown`. */
  peakClaimsPerMinute: number;
  /** Mean reservation-to-ready of recent workers, in seconds; null when none is known. */
  spawnSeconds: number | null;
  /** Mean time from a recent warm claim to the pool's next reservation, in seconds; null when none is known. */
  reactionSeconds: number | null;
}

export interface WarmCapacityTarget {
  /** Idle workers the pool keeps now. */
  effectiveTarget: number;
  /** The part of the target above the forecast (the burst term). */
  headroom: number;
  /** λ, in claims per second. */
  claimRate: number;
  forecast: number;
  /** L: reaction + spawn, in seconds. */
  leadSeconds: number;
  /**
   * When the pool should look again although nothing woke it: the fast window set λ, so the target
   * may fall as its claims age out (null: the minute windows set it, and the pool's usual turns do).
   */
  recheckInMs: number | null;
  spawnSeconds: number;
  reactionSeconds: number;
}

export function warmCapacityTarget(
  spec: Pick<PoolSpec, 'minIdle' | 'maxWorkers' | 'warmCapacity'>,
  observed: DemandObservation,
): WarmCapacityTarget {
  const spawnSeconds = observed.spawnSeconds ?? defaultSpawnSeconds;
  const reactionSeconds = observed.reactionSeconds ?? 0;
  const leadSeconds = spawnSeconds + reactionSeconds;
  // Stored specs from before warm capacity existed have no warmCapacity: static.
  const wc = spec.warmCapacity ?? { mode: 'static', coolDown: 10 * 60_000, burst: 2 };
  if (wc.mode !== 'demand') {
    return {
      effectiveTarget: spec.minIdle,
      headroom: 0,
      claimRate: 0,
      forecast: 0,
      leadSeconds,
      spawnSeconds,
      reactionSeconds,
      recheckInMs: null,
    };
  }
  const fastRate = observed.claimsLastTenSeconds / (fastWindowMs / 1000);
  const minuteRate = Math.max(observed.claimsLastMinute, observed.peakClaimsPerMinute) / 60;
  const claimRate = Math.max(fastRate, minuteRate);
  const forecast = claimRate * leadSeconds;
  const wanted = Math.ceil(forecast + wc.burst * Math.sqrt(forecast));
  const headroom = wanted - Math.ceil(forecast);
  const maxIdle = Math.min(wc.maxIdle ?? spec.maxWorkers, spec.maxWorkers);
  const effectiveTarget = Math.min(maxIdle, Math.max(spec.minIdle, wanted));
  const recheckInMs = fastRate > minuteRate ? fastWindowMs : null;
  return { effectiveTarget, headroom, claimRate, forecast, leadSeconds, spawnSeconds, reactionSeconds, recheckInMs };
}
