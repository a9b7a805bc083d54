// The pool's spawn circuit breaker, as pure functions over plain JSON (the pool workflow carries
// it across continue-as-new; unit tests drive it directly).
//
// closed ──N consecutive failures──► open ──cooldown (or a new spec)──► half_open
//    ▲                                 ▲                                   │ exactly one probe at a time
//    └────────── M probe successes ────┼───────────────────────────────────┤
//                                      └─────────── probe failed ──────────┘
import { isCapacityFailure, type SpawnBreaker } from '../../common';

export interface BreakerSettings {
  failureThreshold: number;
  cooldownMs: number;
  successThreshold: number;
}

export function closedBreaker(): SpawnBreaker {
  return {
    state: 'closed',
    consecutiveFailures: 0,
    probeSuccesses: 0,
    openedAt: null,
    probeWorkerId: null,
    openedAtGeneration: null,
  };
}

function open(breaker: SpawnBreaker, now: number, generation: number): SpawnBreaker {
  return {
    ...breaker,
    state: 'open',
    openedAt: now,
    probeWorkerId: null,
    probeSuccesses: 0,
    openedAtGeneration: generation,
  };
}

/** A worker of this pool never became ready. */
export function recordSpawnFailure(
  breaker: SpawnBreaker,
  settings: BreakerSettings,
  workerId: string,
  now: number,
  generation: number,
): SpawnBreaker {
  const consecutiveFailures = breaker.consecutiveFailures + 1;
  if (breaker.state === 'half_open') {
    // Only the probe's verdict counts in half-open (a straggler from before is old news).
    if (breaker.probeWorkerId !== workerId) return { ...breaker, consecutiveFailures };
    return open({ ...breaker, consecutiveFailures }, now, generation);
  }
  if (breaker.state === 'closed' && consecutiveFailures >= settings.failureThreshold) {
    return open({ ...breaker, consecutiveFailures }, now, generation);
  }
  return { ...breaker, consecutiveFailures };
}

/** A worker of this pool became ready. */
export function recordSpawnSuccess(breaker: SpawnBreaker, settings: BreakerSettings, workerId: string): SpawnBreaker {
  if (breaker.state === 'half_open') {
    if (breaker.probeWorkerId !== workerId) return breaker; // a worker from before the breaker opened
    const probeSuccesses = breaker.probeSuccesses + 1;
    if (probeSuccesses >= settings.successThreshold) return closedBreaker();
    return { ...breaker, probeSuccesses, probeWorkerId: null };
  }
  if (breaker.state === 'open') return breaker; // a straggler: the breaker waits for its own probe
  return { ...breaker, consecutiveFailures: 0 };
}

/** Open → half-open once the cooldown has passed, or at once when the spec changed since it opened. */
export function advanceBreaker(
  breaker: SpawnBreaker,
  settings: BreakerSettings,
  now: number,
  generation: number,
): SpawnBreaker {
  if (breaker.state !== 'open') return breaker;
  const cooled = breaker.openedAt !== null && now >= breaker.openedAt + settings.cooldownMs;
  const newSpec = breaker.openedAtGeneration !== null && generation !== breaker.openedAtGeneration;
  return cooled || newSpec ? { ...breaker, state: 'half_open', probeWorkerId: null, probeSuccesses: 0 } : breaker;
}

/** How many spawns the breaker allows now: any (closed), one probe at a time (half-open), none (open). */
export function spawnAllowance(breaker: SpawnBreaker): number {
  if (breaker.state === 'closed') return Number.POSITIVE_INFINITY;
  if (breaker.state === 'half_open') return breaker.probeWorkerId === null ? 1 : 0;
  return 0;
}

/** When an open breaker will go half-open on its own (workflow time), or null. */
export function breakerWakeAt(breaker: SpawnBreaker, settings: BreakerSettings): number | null {
  return breaker.state === 'open' && breaker.openedAt !== null ? breaker.openedAt + settings.cooldownMs : null;
}

/**
 * Whether a spawn failure with this reason says something about the pool's spec or image. A
 * capacity failure (a ResourceQuota refused the pod) does not: an open breaker would refuse cold
 * claims for a quota that frees up on its own, so the breaker does not count it.
 */
export function countsTowardBreaker(reason: string | null | undefined): boolean {
  return !isCapacityFailure(reason);
}

/**
 * The sequence of the next breaker write: workflow time (ms), or one more than the last write
 * when time has not moved past it. Grows across continue-as-new (the last one is carried) and
 * across a new run of the pool workflow (a later run starts at a later time).
 */
export function nextBreakerSequence(last: number | undefined, now: number): number {
  return Math.max(Math.floor(now), (last ?? 0) + 1);
}
