// poolWorkflow (`corral/<pool>/pool`): a pool's capacity. Keeps `minIdle` idle workers, never
// more than `maxWorkers` (the registry's gate, shared with the claim cold path), refills at the
// spec's rate, owns the spawn circuit breaker, and drains every worker when asked.
//
// It holds no worker state of its own that could go stale: every wake re-reads the registry
// (counts by state), so a restart, a continue-as-new or a lost signal never loses the pool's
// view (the failure mode of controllers that keep scaling state in memory). What it carries is
// only what the registry cannot tell: the breaker, the spawns awaiting a verdict, the refill
// window and whether a drain was asked for.
//
// Claims never pass through here. Worker workflows signal it when something changed (ready,
// spawn failed, claimed, ended); signals carry no limit on in-flight count and only wake it.
//
// It never fails (`corral-resilient-pool`, docs/decisions/0016-controllers-never-fail.md): an
// activity that fails past its retries is counted, logged, and the turn backs off (1 s doubling
// to 5 min, cut short by any signal); the run ends only drained or by continue-as-new.
import {
  ActivityFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import {
  failoverBounds,
  describePoolQuery,
  drainPoolUpdate,
  poolSpecChangedSignal,
  workerChangedSignal,
  type PoolActivityFailure,
  type PoolActivityName,
  type PoolCarriedState,
  type PoolDescription,
  type PoolWorkflowInput,
  type PoolWorkflowResult,
  type WorkerChange,
} from '../../common';
import type { PoolActivities, PoolView } from '../../activities/pool-activities';
import {
  advanceBreaker,
  breakerWakeAt,
  closedBreaker,
  countsTowardBreaker,
  nextBreakerSequence,
  recordSpawnFailure,
  recordSpawnSuccess,
  spawnAllowance,
} from './spawn-breaker';

/** Runs from before `corral-resilient-pool` replay with these. */
const legacyQuickly = proxyLocalActivities<PoolActivities>({
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '10m',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
});
const legacySlowly = proxyActivities<PoolActivities>({
  startToCloseTimeout: '2m',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

/**
 * Errors no retry can fix (a corral worker built without a Temporal client, a programming error):
 * they fail the attempt at once; the turn backs off and the next one tries again from scratch.
 */
const deterministicErrorTypes = ['ConfigError', 'TypeError', 'ReferenceError', 'SyntaxError', 'RangeError'];

/**
 * Registry reads and the breaker write: retried for as long as the registry is down (no
 * schedule-to-close deadline), a backoff above 10 s slept on a workflow timer rather than inside a
 * workflow task.
 */
const resilientQuickly = proxyLocalActivities<PoolActivities>({
  startToCloseTimeout: '10s',
  localRetryThreshold: '10s',
  retry: {
    initialInterval: '200ms',
    backoffCoefficient: 2,
    maximumInterval: '1m',
    nonRetryableErrorTypes: deterministicErrorTypes,
  },
});

/**
 * Refills and drains. `scheduleToStart` is the bulkhead (no replica polling the queue fails the
 * attempt instead of eating the turn); the activities heartbeat every second, so a corral worker
 * killed mid-activity is noticed within 5 s and the attempt runs again elsewhere. After the
 * attempts the pool backs off and retries on a later turn.
 */
const resilientSlowly = proxyActivities<PoolActivities>({
  startToCloseTimeout: '2m',
  scheduleToStartTimeout: '1m',
  heartbeatTimeout: failoverBounds.activityHeartbeatTimeoutMs,
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 5,
    nonRetryableErrorTypes: deterministicErrorTypes,
  },
});

/** A failed turn's backoff: doubling from 1 s to this cap, cut short by any signal. */
export const poolBackoff = { initialMs: 1_000, maximumMs: 5 * 60_000 } as const;

/** An activity's failure, tagged with the activity so the pool can count and report it. */
class PoolTurnFailure extends Error {
  constructor(
    readonly activity: PoolActivityName,
    readonly failure: unknown,
  ) {
    super(`${activity} failed: ${causeMessage(failure)}`);
    this.name = 'PoolTurnFailure';
  }
}

function causeMessage(err: unknown): string {
  // An ActivityFailure's own message is generic; the cause says what went wrong.
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

const minute = 60_000;
/** Spawn verdicts remembered so a late signal is not counted twice (a signal lags seconds at most). */
const accountedMemory = 500;
/**
 * The safety-net re-read when nothing woke the pool: worker signals (ready, failed, claimed,
 * ended) wake it for every change, so this only catches a lost signal. Each tick costs 6
 * history events (timer, workflow task, one marker): 180 per idle pool-hour.
 */
const defaultReconcileIntervalMs = 2 * minute;
const defaultContinueAsNewAfterEvents = 2_000;
/** While draining, how often the pool re-checks what is left (worker ends also wake it). */
const drainPollMs = 5_000;

/** Worker ids are random but recorded (uuid4 is deterministic in workflows); short for pod names. */
function newWorkerId(): string {
  return `w${uuid4().replace(/-/g, '').slice(0, 12)}`;
}

export async function poolWorkflow(input: PoolWorkflowInput): Promise<PoolWorkflowResult> {
  const { pool } = input;
  // Decided once, before the first command: a run either is resilient throughout or not at all.
  const resilient = patched('corral-resilient-pool');
  // Demand-driven warm capacity (docs/decisions/0035-demand-driven-warm-capacity.md): the pool
  // retires idle workers beyond its target. Runs from before keep only refilling.
  const scalesDown = patched('corral-demand-capacity');
  // Rolling replacement (docs/decisions/0036-rolling-replacement.md): idle workers of an older pod
  // template are replaced at a bounded surge. Runs from before leave them until they end.
  const rolls = patched('corral-rolling-replacement');
  const quickly = resilient ? resilientQuickly : legacyQuickly;
  const slowly = resilient ? resilientSlowly : legacySlowly;
  const reconcileIntervalMs = input.reconcileIntervalMs ?? defaultReconcileIntervalMs;
  const s: PoolCarriedState = input.carried ?? {
    breaker: closedBreaker(),
    pendingSpawns: [],
    recentSpawnTimes: [],
    drainRequested: false,
    accounted: [],
    generation: 0,
    totals: { spawnsStarted: 0, spawnsSucceeded: 0, spawnsFailed: 0, probes: 0, breakerOpened: 0 },
  };
  let view: PoolView | null = null;
  /** Worker events since the last turn, in arrival order. */
  const changes: WorkerChange[] = [];
  let wakeups = 0;
  let lastFailure: PoolActivityFailure | null = null;

  const describe = (): PoolDescription => ({
    pool,
    generation: s.generation,
    draining: s.drainRequested,
    breaker: s.breaker,
    pendingSpawns: s.pendingSpawns,
    inventory: view?.counts ?? {},
    totals: s.totals,
    ...(resilient ? { failureStreak: s.failureStreak ?? 0, lastFailure } : {}),
  });

  /** Runs one activity; a failure (not a cancellation) comes out tagged with the activity's name. */
  async function step<T>(activity: PoolActivityName, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!resilient || isCancellation(err)) throw err;
      throw new PoolTurnFailure(activity, err);
    }
  }

  setHandler(describePoolQuery, describe);
  setHandler(workerChangedSignal, (change) => {
    changes.push(change);
    wakeups++;
  });
  setHandler(poolSpecChangedSignal, () => void wakeups++);
  setHandler(drainPoolUpdate, () => {
    s.drainRequested = true;
    wakeups++;
    return describe();
  });

  const breakerSettings = () => view?.breaker ?? { failureThreshold: 5, cooldownMs: minute, successThreshold: 1 };

  /**
   * Each spawn's verdict counts once, whichever tells first: the worker's signal, or the registry
   * showing that a spawn this pool is waiting on has left spawning/activating. Every outcome
   * counts, cold-path spawns too (they reach the pool only by signal).
   */
  function recordOutcome(workerId: string, ok: boolean, reason: string | null, now: number): void {
    if (s.accounted.includes(workerId)) return;
    s.accounted = [...s.accounted, workerId].slice(-accountedMemory);
    if (ok) {
      s.totals.spawnsSucceeded++;
      s.breaker = recordSpawnSuccess(s.breaker, breakerSettings(), workerId);
      return;
    }
    s.totals.spawnsFailed++;
    if (resilient && !countsTowardBreaker(reason)) {
      // The cluster is full, not the spec wrong: refills go on at their rate, cold claims stay open.
      s.totals.spawnsRefusedByCapacity = (s.totals.spawnsRefusedByCapacity ?? 0) + 1;
      if (s.breaker.probeWorkerId === workerId) s.breaker = { ...s.breaker, probeWorkerId: null };
      return;
    }
    const wasOpen = s.breaker.state === 'open';
    s.breaker = recordSpawnFailure(s.breaker, breakerSettings(), workerId, now, s.generation);
    if (!wasOpen && s.breaker.state === 'open') {
      s.totals.breakerOpened++;
      log.warn('spawn breaker opened', { pool, reason, failures: s.breaker.consecutiveFailures });
    }
  }

  function absorbVerdicts(current: PoolView, now: number): void {
    for (const change of changes.splice(0)) {
      if (change.event === 'ready') recordOutcome(change.workerId, true, null, now);
      else if (change.event === 'spawn_failed') recordOutcome(change.workerId, false, change.reason ?? null, now);
    }
    // A spawn stops being pending only when the same registry snapshot that gives the counts
    // shows it has left spawning/activating: a signal that outran the snapshot must not leave a
    // worker counted neither as pending nor as idle (that would spawn one too many).
    for (const id of [...s.pendingSpawns]) {
      const state = current.asked[id];
      if (state === 'spawning' || state === 'activating') continue;
      if (state === 'idle' || state === 'claimed' || state === 'hot_idle') recordOutcome(id, true, null, now);
      else if (state === 'lost')
        recordOutcome(id, false, (resilient ? current.askedReasons?.[id] : null) ?? 'lost', now);
      s.pendingSpawns = s.pendingSpawns.filter((pending) => pending !== id);
    }
  }

  let recordedBreaker: string | null = input.carried ? s.breaker.state : null;
  async function recordBreaker(now: number): Promise<void> {
    if (resilient) {
      // Re-asserted on every turn, fenced by a sequence that only grows: whatever a stale
      // statement left in the registry, this turn's write replaces it (and the stale one,
      // should it land later, is refused).
      const sequence = nextBreakerSequence(s.breakerSequence, now);
      s.breakerSequence = sequence;
      await step('recordPoolBreaker', () => quickly.recordPoolBreaker({ pool, state: s.breaker.state, sequence }));
      return;
    }
    if (recordedBreaker === s.breaker.state) return;
    await quickly.recordPoolBreaker({ pool, state: s.breaker.state });
    recordedBreaker = s.breaker.state;
  }

  /** Spawns allowed by the refill rate now, and when the next one frees up. */
  function refillBudget(now: number, perMinute: number): { budget: number; nextAt: number | null } {
    s.recentSpawnTimes = s.recentSpawnTimes.filter((t) => t > now - minute);
    const budget = Math.max(0, perMinute - s.recentSpawnTimes.length);
    return { budget, nextAt: budget === 0 ? (s.recentSpawnTimes[0] ?? now) + minute : null };
  }

  async function refill(current: PoolView, now: number): Promise<number | null> {
    const idle = current.counts.idle ?? 0;
    let need = current.minIdle - idle - s.pendingSpawns.length;
    const stale = rolls ? (current.staleIdle ?? 0) : 0;
    if (stale > 0) {
      // New ones first: spawn until the target is met by current-template workers, with at most
      // maxSurge idle workers above the target meanwhile.
      const surge = current.maxSurge ?? 1;
      const fresh = idle - stale;
      need = Math.max(need, Math.min(current.minIdle - fresh, current.minIdle + surge - idle) - s.pendingSpawns.length);
    }
    if (need <= 0) return null;
    const room = current.maxWorkers - current.live;
    const { budget, nextAt } = refillBudget(now, current.refillPerMinute);
    const count = Math.min(need, room, budget, spawnAllowance(s.breaker));
    if (count <= 0) return nextAt;
    const ids = Array.from({ length: count }, newWorkerId);
    const probe = s.breaker.state === 'half_open';
    if (probe) s.breaker = { ...s.breaker, probeWorkerId: ids[0] };
    const { started, stoppedBy } = await step('startPoolWorkers', () =>
      slowly.startPoolWorkers({ pool, workerIds: ids }),
    ).catch((err: unknown) => {
      // The probe was never confirmed started: the next turn may probe again.
      if (probe) s.breaker = { ...s.breaker, probeWorkerId: null };
      throw err;
    });
    if (probe) s.totals.probes += started.length;
    s.pendingSpawns.push(...started);
    s.totals.spawnsStarted += started.length;
    for (let i = 0; i < started.length; i++) s.recentSpawnTimes.push(now);
    if (stoppedBy) log.info('refill stopped early', { pool, stoppedBy, started: started.length });
    return null;
  }

  /**
   * Demand mode: idle workers beyond the target are retired (the registry marks them first, so no
   * claim takes one), the longest idle first — only once no spawn of this pool is pending, so a
   * refill and a retirement never chase each other within one turn.
   */
  async function retireSurplus(current: PoolView): Promise<void> {
    const surplus = current.surplusIdle ?? 0;
    if (scalesDown && surplus > 0 && s.pendingSpawns.length === 0) {
      // (Older templates go first: the registry orders by generation, then time idle.)
      const { marked } = await step('retireSurplusIdle', () =>
        slowly.retireSurplusIdle({ pool, count: surplus, keepIdle: current.minIdle }),
      );
      s.totals.idleRetired = (s.totals.idleRetired ?? 0) + marked;
      return;
    }
    await replaceStale(current);
  }

  /**
   * Rolling replacement: idle workers of an older pod template are retired once the idle count
   * is above the floor — the target while there is room to surge (new ones arrive first), or the
   * target less maxSurge at maxWorkers (room has to be made first). Claimed workers of an older
   * template are retired when released (the registry's release decides that).
   */
  async function replaceStale(current: PoolView): Promise<void> {
    const stale = current.staleIdle ?? 0;
    if (!rolls || stale <= 0) return;
    const idle = current.counts.idle ?? 0;
    const surge = current.maxSurge ?? 1;
    const floor = current.minIdle - (current.live >= current.maxWorkers ? surge : 0);
    const count = Math.min(stale, surge, idle - floor);
    if (count <= 0) return;
    const { marked } = await step('retireSurplusIdle', () =>
      slowly.retireSurplusIdle({ pool, count, belowGeneration: current.templateGeneration, keepIdle: floor }),
    );
    s.totals.idleReplaced = (s.totals.idleReplaced ?? 0) + marked;
  }

  function shouldContinueAsNew(): boolean {
    const info = workflowInfo();
    // Well before the server's suggestion (~4K events): a busy pool's history stays small enough
    // to replay quickly when a corral worker loses its cache (bench/claims saw 10-30 s tasks at 4K).
    const threshold = input.continueAsNewAfterEvents ?? defaultContinueAsNewAfterEvents;
    return info.continueAsNewSuggested || info.historyLength >= threshold;
  }

  /** Records a failed turn: counted, logged, and when the next turn is due. */
  function backOff(failure: PoolTurnFailure, now: number): number {
    const streak = (s.failureStreak ?? 0) + 1;
    s.failureStreak = streak;
    s.totals.activityFailures = (s.totals.activityFailures ?? 0) + 1;
    const delayMs = Math.min(poolBackoff.maximumMs, poolBackoff.initialMs * 2 ** Math.min(streak - 1, 20));
    lastFailure = {
      activity: failure.activity,
      message: causeMessage(failure.failure),
      at: now,
      retryAt: now + delayMs,
    };
    log.warn('pool turn failed; backing off', { pool, ...lastFailure, streak });
    return now + delayMs;
  }

  /** One reconcile turn: read, account, record the breaker, then refill or drain. */
  async function turn(now: number): Promise<{ wakeAt: number | null; drained: boolean }> {
    view = await step('readPool', () => quickly.readPool({ pool, ask: s.pendingSpawns }));
    absorbVerdicts(view, now);
    if (s.breaker.probeWorkerId && !s.pendingSpawns.includes(s.breaker.probeWorkerId)) {
      // The probe ended without a verdict we heard: let the next turn probe again.
      s.breaker = { ...s.breaker, probeWorkerId: null };
    }
    if (view.generation !== s.generation && view.exists) s.generation = view.generation;
    s.breaker = advanceBreaker(s.breaker, view.breaker, now, s.generation);
    await recordBreaker(now);

    const draining = s.drainRequested || view.status !== 'active';
    if (!draining) {
      const wakeAt = await refill(view, now);
      await retireSurplus(view);
      return { wakeAt, drained: false };
    }
    s.drainRequested = true;
    if (view.live === 0) {
      await step('markPoolDrained', () => quickly.markPoolDrained(pool));
      return { wakeAt: null, drained: true };
    }
    const drain = await step('drainPoolWorkers', () => slowly.drainPoolWorkers(pool));
    if (drain.unanswered) {
      s.totals.drainRequestsUnanswered = (s.totals.drainRequestsUnanswered ?? 0) + drain.unanswered;
    }
    return { wakeAt: now + drainPollMs, drained: false };
  }

  for (;;) {
    const seen = wakeups;
    const now = Date.now();
    let wakeAt: number | null;
    try {
      const outcome = await turn(now);
      if (outcome.drained) {
        await condition(allHandlersFinished);
        return { pool, status: 'drained', totals: s.totals };
      }
      wakeAt = outcome.wakeAt;
      if (resilient) s.failureStreak = 0;
    } catch (err) {
      if (!(err instanceof PoolTurnFailure)) throw err;
      wakeAt = backOff(err, now);
    }

    if (shouldContinueAsNew()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof poolWorkflow>({ ...input, carried: s });
    }
    const lastView = view as PoolView | null; // assigned inside turn(); null until a read succeeded
    const candidates = [
      now + reconcileIntervalMs,
      wakeAt,
      lastView ? breakerWakeAt(s.breaker, lastView.breaker) : null,
      // Demand mode: a target the 10-second window set may fall once it has passed. (Read from the
      // activity's answer, so a replayed turn waits the same; answers from before carry none.)
      lastView?.targetRecheckInMs ? now + lastView.targetRecheckInMs : null,
    ].filter((t): t is number => t !== null);
    const sleepMs = Math.max(1, Math.min(...candidates) - Date.now());
    await condition(() => wakeups !== seen, sleepMs);
  }
}
