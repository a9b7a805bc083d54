// Demand-driven warm capacity (docs/decisions/0035-demand-driven-warm-capacity.md): how many idle
// workers a pool keeps, from what the registry observed. Pure: the pool's readPool activity feeds
// it the registry's numbers on every pool turn, and the result is what the pool refills to.
//
// The estimator, in full:
//   λ_now    = claims in the last minute / 60 s
//   λ_peak   = the most claims in any clock minute of the last `coolDown` / 60 s
//   λ        = max(λ_now, λ_peak)     — up within a minute of a burst, held until it leaves coolDown
//   T        = median spawn-to-ready time of the pool's recent workers (10 s before any is known)
//   forecast = λ × T                  — claims expected while one replacement spawns (Poisson mean)
//   headroom = ceil(burst × √forecast) when λ > 0, else 0
//   target   = clamp(ceil(forecast) + headroom, minIdle, maxIdle)
// Static pools keep minIdle (target = minIdle, headroom 0).
import type { PoolSpec } from './pool-spec';

/** Spawn-to-ready assumed before the pool has a ready worker to measure. */
export const defaultSpawnSeconds = 10;

export interface DemandObservation {
  /** Claims made in the last minute. */
  claimsLastMinute: number;
  /** The most claims made in any clock minute of the last `warmCapacity.coolDown`. */
  peakClaimsPerMinute: number;
  /** Median spawn-to-ready of recent workers, in seconds; null when none is known. */
  spawnSeconds: number | null;
}

export interface WarmCapacityTarget {
  /** Idle workers the pool keeps now. */
  effectiveTarget: number;
  /** The part of the target above the forecast (the burst term). */
  headroom: number;
  /** λ, in claims per second. */
  claimRate: number;
  forecast: number;
  spawnSeconds: number;
}

export function warmCapacityTarget(
  spec: Pick<PoolSpec, 'minIdle' | 'maxWorkers' | 'warmCapacity'>,
  observed: DemandObservation,
): WarmCapacityTarget {
  const spawnSeconds = observed.spawnSeconds ?? defaultSpawnSeconds;
  // Stored specs from before warm capacity existed have no warmCapacity: static.
  const wc = spec.warmCapacity ?? { mode: 'static', coolDown: 10 * 60_000, burst: 2 };
  if (wc.mode !== 'demand') {
    return { effectiveTarget: spec.minIdle, headroom: 0, claimRate: 0, forecast: 0, spawnSeconds };
  }
  const claimRate = Math.max(observed.claimsLastMinute, observed.peakClaimsPerMinute) / 60;
  const forecast = claimRate * spawnSeconds;
  const headroom = claimRate > 0 ? Math.ceil(wc.burst * Math.sqrt(forecast)) : 0;
  const maxIdle = Math.min(wc.maxIdle ?? spec.maxWorkers, spec.maxWorkers);
  const effectiveTarget = Math.min(maxIdle, Math.max(spec.minIdle, Math.ceil(forecast) + headroom));
  return { effectiveTarget, headroom, claimRate, forecast, spawnSeconds };
}
