// The pool workflow's side effects: read the pool and its workers from the registry, start
// worker workflows within the maxWorkers gate, record the breaker, ask workers to drain.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateStage, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { startWorkerLifecycle } from '../client/worker-workflows';
import { forEachBounded } from './bounded-concurrency';
import { startProgressHeartbeats } from './progress-heartbeats';
import { warmCapacityTarget } from '../config/warm-capacity';
import { lifecycleSettingsFor } from '../config/pool-spec';
import { type WorkerState, type BreakerState, drainUpdate, workerLifecycleWorkflowId } from '../common';
import type { PoolMetrics } from '../metrics/pool-metrics';
import type { PoolStatus, PoolStore } from '../registry/pool-store';

/** The part of the pool a workflow decides with: capacity numbers, breaker settings, counts. */
export interface PoolView {
  exists: boolean;
  status: PoolStatus;
  generation: number;
  /** Idle workers to keep: the spec's minIdle, or the demand-driven target (decision 0035). */
  minIdle: number;
  /** Demand mode: idle workers beyond the target, for the pool to retire (0 in static mode). */
  surplusIdle?: number;
  /** Demand mode: look again after this long although nothing woke the pool — the target may fall by then. */
  targetRecheckInMs?: number | null;
  /** Rolling replacement (decision 0036): the pod template's generation, and idle workers of older ones. */
  templateGeneration?: number;
  staleIdle?: number;
  /** Extra idle workers a rolling replacement may add (or, at maxWorkers, take away) at a time. */
  maxSurge?: number;
  maxWorkers: number;
  refillPerMinute: number;
  breaker: { failureThreshold: number; cooldownMs: number; successThreshold: number };
  /** Live workers by state. */
  counts: Partial<Record<WorkerState, number>>;
  live: number;
  /** State of each asked worker (absent: no row). */
  asked: Record<string, WorkerState>;
  /** Failure reason of each asked worker that has one (a lost spawn's: quota is not the breaker's business). */
  askedReasons: Record<string, string>;
}

export interface DrainPoolWorkersResult {
  /** Workers that accepted the drain request this time. */
  asked: number;
  live: number;
  /**
   * Workers whose workflow did not accept the request within `drainRequestTimeoutMs` (wedged,
   * or Temporal slow) or refused it with an error: left for the pool's next turn, which asks again.
   */
  unanswered: number;
}

export type StartPoolWorkersResult = {
  started: string[];
  /** Why it stopped early, if it did. */
  stoppedBy: 'at_capacity' | 'pool_draining' | 'pool_not_found' | null;
};

/** Workflow starts (with their slot reservations) in flight during one refill. */
const startConcurrency = 8;
/** Drain requests in flight while a pool drains. */
const drainConcurrency = 16;
/**
 * How long one worker workflow may take to accept a drain request. A wedged worker workflow (its
 * replica gone, its history stuck) must not hold the whole pool's drain: it is counted, skipped
 * and asked again on the pool's next turn.
 */
export const drainRequestTimeoutMs = 10_000;
/** How long one worker workflow start may take (a gRPC deadline). */
const startRequestTimeoutMs = 10_000;
/** Between items and on this timer: the pool's activities have a short heartbeat timeout. */
const heartbeatIntervalMs = 1_000;

/** A call to Temporal that did not answer within its bound. */
export class PoolCallTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`${what}: no answer within ${timeoutMs} ms`);
    this.name = 'PoolCallTimeoutError';
  }
}

/** `call` under a gRPC deadline and a local bound (a call stuck before it reaches the wire still ends). */
async function boundedCall<T>(temporal: Client, what: string, ms: number, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PoolCallTimeoutError(what, ms)), ms);
  });
  try {
    return await Promise.race([temporal.withDeadline(Date.now() + ms, call), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The activity's logger, or the console outside an activity (unit tests). */
function log(): Pick<Console, 'warn'> {
  try {
    return Context.current().log;
  } catch {
    return console;
  }
}

export function createPoolActivities(deps: { pools: PoolStore; temporal?: Client; metrics?: PoolMetrics }) {
  const { pools } = deps;
  const temporal = (): Client => {
    if (!deps.temporal) {
      throw ApplicationFailure.create({
        type: 'ConfigError',
        message: 'this corral worker was built without a Temporal client; pool activities need one',
        nonRetryable: true,
      });
    }
    return deps.temporal;
  };

  return {
    /** The pool, its live workers by state, and where each of `ask` (spawns awaiting a verdict) stands. */
    async readPool(input: { pool: string; ask: string[] }): Promise<PoolView> {
      const { pool } = input;
      const record = await pools.getPool(pool);
      const inventory = await pools.inventory(pool, input.ask, record?.templateGeneration);
      const spec = record?.spec;
      let minIdle = spec?.minIdle ?? 0;
      let surplusIdle = 0;
      let targetRecheckInMs: number | null = null;
      if (spec && record?.status === 'active') {
        // What to keep idle (decision 0035): minIdle, or what the observed claim rate asks for.
        const demand = spec.warmCapacity?.mode === 'demand';
        const observed = demand
          ? await pools.observeDemand(pool, spec.warmCapacity.coolDown)
          : {
              claimsLastTenSeconds: 0,
              claimsLastMinute: 0,
              peakClaimsPerMinute: 0,
              spawnSeconds: null,
              reactionSeconds: null,
            };
        const target = warmCapacityTarget(spec, observed);
        await pools.recordWarmTarget(pool, target);
        minIdle = target.effectiveTarget;
        targetRecheckInMs = target.recheckInMs;
        if (demand) surplusIdle = Math.max(0, (inventory.counts.idle ?? 0) - target.effectiveTarget);
      }
      return {
        exists: record !== null,
        status: record?.status ?? 'drained',
        generation: record?.generation ?? 0,
        minIdle,
        surplusIdle,
        targetRecheckInMs,
        templateGeneration: record?.templateGeneration ?? 1,
        staleIdle: inventory.staleIdle,
        maxSurge: spec?.maxSurge ?? 1,
        maxWorkers: spec?.maxWorkers ?? 0,
        refillPerMinute: spec?.refillPerMinute ?? 1,
        breaker: {
          failureThreshold: spec?.breaker.failureThreshold ?? 1,
          cooldownMs: spec?.breaker.cooldown ?? 60_000,
          successThreshold: spec?.breaker.successThreshold ?? 1,
        },
        counts: inventory.counts,
        live: inventory.live,
        asked: inventory.asked,
        askedReasons: inventory.askedReasons,
      };
    },

    /**
     * Starts one worker workflow per id, each behind the registry's maxWorkers gate (the same gate
     * the claim cold path uses). Idempotent per id: a retry finds the row and re-starts nothing twice.
     */
    async startPoolWorkers(input: { pool: string; workerIds: string[] }): Promise<StartPoolWorkersResult> {
      const record = await pools.getPool(input.pool);
      if (!record) return { started: [], stoppedBy: 'pool_not_found' };
      const settings = lifecycleSettingsFor(record.spec);
      const { taskQueue } = Context.current().info;
      const started: string[] = [];
      let stoppedBy: StartPoolWorkersResult['stoppedBy'] = null;
      const heartbeats = startProgressHeartbeats(() => started.length, heartbeatIntervalMs);
      try {
        // A few at a time: a refill of hundreds takes seconds, not minutes, and the registry's
        // pool lock still admits one reservation at a time.
        await forEachBounded(
          input.workerIds,
          startConcurrency,
          async (workerId) => {
            if (stoppedBy) return;
            const slot = await pools.reserveWorkerSlot({
              pool: input.pool,
              workerId,
              image: settings.image,
              origin: 'pool_workflow',
              requireClosedBreaker: false, // the pool workflow is the breaker: it spawns probes itself
            });
            if (
              slot.outcome === 'at_capacity' ||
              slot.outcome === 'pool_draining' ||
              slot.outcome === 'pool_not_found'
            ) {
              stoppedBy = slot.outcome;
              return;
            }
            // `exists`: an earlier attempt of this activity reserved it; make sure its workflow runs.
            await pools.recordWorkerGeneration(workerId, record.templateGeneration);
            const client = temporal();
            await boundedCall(client, `starting worker ${workerId}`, startRequestTimeoutMs, () =>
              startWorkerLifecycle(client, { pool: input.pool, workerId, settings, taskQueue }),
            );
            started.push(workerId);
          },
          () => heartbeats.check(),
        );
      } finally {
        heartbeats.stop();
      }
      return { started, stoppedBy };
    },

    /**
     * Records the breaker. With a `sequence` (pool runs since `corral-resilient-pool`) the write is
     * fenced: the registry refuses one older than what it holds, so a stale attempt cannot leave
     * the breaker `open` behind a newer `closed`. Answers whether it was applied.
     */
    async recordPoolBreaker(input: { pool: string; state: BreakerState; sequence?: number }): Promise<{
      applied: boolean;
    }> {
      const result = await pools.recordBreakerState(input.pool, input.state, input.sequence);
      if (result.applied) deps.metrics?.setBreakerState(input.pool, input.state);
      return result;
    },

    /**
     * Asks every live worker of the pool to drain. Returns once each has accepted (a claimed
     * worker keeps its tenant until release or its drain timeout; the worker workflow sees to it)
     * or did not answer within `drainRequestTimeoutMs`: a wedged worker workflow is counted in
     * `unanswered` and asked again on the pool's next turn, never holding the others' drain.
     */
    async drainPoolWorkers(pool: string): Promise<DrainPoolWorkersResult> {
      const workers = await pools.liveWorkers(pool);
      let asked = 0;
      let unanswered = 0;
      const heartbeats = startProgressHeartbeats(() => ({ asked, unanswered }), heartbeatIntervalMs);
      try {
        await forEachBounded(
          workers,
          drainConcurrency,
          async (worker) => {
            if (worker.state === 'draining') return;
            const client = temporal();
            const workflowId = workerLifecycleWorkflowId(pool, worker.id);
            const handle = client.workflow.getHandle(workflowId);
            try {
              // Waits for acceptance only. A refusal (already draining, already ended) comes back as a
              // handle with a failed outcome, not a throw: nothing more to ask of that worker.
              await boundedCall(client, `asking ${workflowId} to drain`, drainRequestTimeoutMs, () =>
                handle.startUpdate(drainUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED }),
              );
              asked++;
            } catch (err) {
              // A row without a workflow is the janitor's.
              if (err instanceof WorkflowNotFoundError) return;
              unanswered++;
              log().warn('drain request not accepted; asked again on the next turn', {
                pool,
                workerId: worker.id,
                error: err instanceof Error ? err.message : String(err),
              });
            }
          },
          () => heartbeats.check(),
        );
      } finally {
        heartbeats.stop();
      }
      return { asked, live: workers.length, unanswered };
    },

    /**
     * Demand-driven scale-down (decision 0035): up to `count` of the longest-idle workers are
     * marked in the registry (claims skip them from then on) and their workflows asked to drain
     * them, each bounded like a pool drain's request. Returns how many were marked.
     */
    async retireSurplusIdle(input: {
      pool: string;
      count: number;
      /** Only workers of an older template generation than this (rolling replacement). */
      belowGeneration?: number;
      /** Never fewer idle workers than this, counted when marking (the pool's floor). */
      keepIdle?: number;
    }): Promise<{ marked: number; unanswered: number }> {
      const ids = await pools.markSurplusIdle(input.pool, input.count, {
        belowGeneration: input.belowGeneration,
        keepIdle: input.keepIdle,
      });
      let unanswered = 0;
      await forEachBounded(ids, drainConcurrency, async (workerId) => {
        const client = temporal();
        const handle = client.workflow.getHandle(workerLifecycleWorkflowId(input.pool, workerId));
        try {
          await boundedCall(client, `asking ${workerId} to drain`, drainRequestTimeoutMs, () =>
            handle.startUpdate(drainUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED }),
          );
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return;
          // Marked, so no claim takes it; its idle TTL or the pool's drain retires it if this is never answered.
          unanswered++;
          log().warn('surplus idle worker did not accept its drain', {
            pool: input.pool,
            workerId,
            error: err instanceof Error ? err.message : String(err),
          });
        }
      });
      return { marked: ids.length, unanswered };
    },

    async markPoolDrained(pool: string): Promise<void> {
      await pools.markDrained(pool);
    },
  };
}

export type PoolActivities = ReturnType<typeof createPoolActivities>;
