// The pool workflow's contract: input, carried state, messages. Exported as constants so the
// workflow, the worker workflows that notify it, CorralClient and the tests share them.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { WorkerState } from './states';

export const breakerStates = ['closed', 'open', 'half_open'] as const;
export type BreakerState = (typeof breakerStates)[number];

/** The spawn circuit breaker, as plain JSON (it crosses continue-as-new). */
export interface SpawnBreaker {
  state: BreakerState;
  consecutiveFailures: number;
  /** Successful probes since the breaker went half-open. */
  probeSuccesses: number;
  /** Workflow time (ms) the breaker last opened. */
  openedAt: number | null;
  /** The one worker spawned as the half-open probe, while its outcome is unknown. */
  probeWorkerId: string | null;
  /** Spec generation the breaker opened under: a new spec earns a probe at once. */
  openedAtGeneration: number | null;
}

export interface PoolCarriedState {
  breaker: SpawnBreaker;
  /** Workers this pool started that have not reported an outcome yet. */
  pendingSpawns: string[];
  /** Workflow times (ms) of spawns in the last minute: the refill rate's window. */
  recentSpawnTimes: number[];
  drainRequested: boolean;
  /** The latest workers whose spawn verdict was counted (bounded). */
  accounted: string[];
  generation: number;
  totals: PoolTotals;
  /**
   * The sequence of the last breaker write (absent in runs from before the fence). Each write
   * takes max(workflow time, last + 1), so it grows across continue-as-new and across a new run.
   */
  breakerSequence?: number;
  /** Consecutive turns that ended in an activity failure (the backoff's exponent). */
  failureStreak?: number;
}

export interface PoolTotals {
  spawnsStarted: number;
  spawnsSucceeded: number;
  spawnsFailed: number;
  probes: number;
  breakerOpened: number;
  /** Spawn failures for lack of capacity (quota): not counted by the breaker. */
  spawnsRefusedByCapacity?: number;
  /** Activities that failed past their retries: the turn backed off and the pool went on. */
  activityFailures?: number;
  /** Drain requests a worker workflow did not accept in time (asked again on the next turn). */
  drainRequestsUnanswered?: number;
  /** Demand mode: idle workers beyond the target the pool retired (decision 0035). */
  idleRetired?: number;
  /** Rolling replacement: idle workers of an older pod template the pool retired (decision 0036). */
  idleReplaced?: number;
}

/** The pool's activities, by name: the failures the pool counts and backs off from. */
export const poolActivityNames = [
  'readPool',
  'recordPoolBreaker',
  'startPoolWorkers',
  'drainPoolWorkers',
  'markPoolDrained',
  'retireSurplusIdle',
] as const;
export type PoolActivityName = (typeof poolActivityNames)[number];

/** The latest activity failure the pool backed off from (plain JSON, in describe). */
export interface PoolActivityFailure {
  activity: PoolActivityName;
  message: string;
  /** Workflow time (ms) it failed. */
  at: number;
  /** Workflow time (ms) the next turn is due, unless a signal wakes it sooner. */
  retryAt: number;
}

export interface PoolWorkflowInput {
  pool: string;
  /** How often the pool re-reads the registry when nothing wakes it (ms). */
  reconcileIntervalMs?: number;
  /** Tests set this low to exercise run boundaries; production leaves it to the server. */
  continueAsNewAfterEvents?: number;
  carried?: PoolCarriedState;
}

export interface PoolWorkflowResult {
  pool: string;
  status: 'drained';
  totals: PoolTotals;
}

/** What a worker workflow tells its pool; the pool re-reads the registry for the facts. */
export interface WorkerChange {
  workerId: string;
  /** ready: serving for the first time; spawn_failed: never became ready; claimed; ended. */
  event: 'ready' | 'spawn_failed' | 'claimed' | 'ended';
  reason?: string | null;
}

export interface PoolDescription {
  pool: string;
  generation: number;
  draining: boolean;
  breaker: SpawnBreaker;
  pendingSpawns: string[];
  inventory: Partial<Record<WorkerState, number>>;
  totals: PoolTotals;
  /** Consecutive failed turns (0: the last turn went through). Absent in runs from before `corral-resilient-pool`. */
  failureStreak?: number;
  lastFailure?: PoolActivityFailure | null;
}

export const workerChangedSignal = defineSignal<[WorkerChange]>('workerChanged');
/** The spec generation the registry holds (the signal only wakes the pool; it re-reads the registry). */
export interface PoolSpecChange {
  generation: number;
}
/** Sent by applyPool after the registry holds the new spec. */
export const poolSpecChangedSignal = defineSignal<[PoolSpecChange]>('poolSpecChanged');
export const drainPoolUpdate = defineUpdate<PoolDescription, []>('drainPool');
export const describePoolQuery = defineQuery<PoolDescription>('describePool');

export function poolWorkflowId(pool: string): string {
  return `corral/${pool}/pool`;
}
