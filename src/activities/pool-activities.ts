// The pool workflow's side effects: read the pool and its workers from the registry, start
// worker workflows within the maxWorkers gate, record the breaker, ask workers to drain.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateStage, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { startWorkerLifecycle } from '../client/worker-workflows';
import { forEachBounded } from './bounded-concurrency';
import { lifecycleSettingsFor } from '../config/pool-spec';
import type { WorkerState } from '../lifecycle/states';
import type { PoolMetrics } from '../metrics/pool-metrics';
import type { PoolStatus, PoolStore } from '../registry/pool-store';
import type { BreakerState } from '../workflows/pool/messages';
import { drainUpdate, workerLifecycleWorkflowId } from '../workflows/worker-lifecycle/messages';

/** The part of the pool a workflow decides with: capacity numbers, breaker settings, counts. */
export interface PoolView {
  exists: boolean;
  status: PoolStatus;
  generation: number;
  minIdle: number;
  maxWorkers: number;
  refillPerMinute: number;
  breaker: { failureThreshold: number; cooldownMs: number; successThreshold: number };
  /** Live workers by state. */
  counts: Partial<Record<WorkerState, number>>;
  live: number;
  starting: string[];
  /** State of each asked worker (absent: no row). */
  asked: Record<string, WorkerState>;
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
      const [record, inventory] = await Promise.all([pools.getPool(pool), pools.inventory(pool, input.ask)]);
      const spec = record?.spec;
      return {
        exists: record !== null,
        status: record?.status ?? 'drained',
        generation: record?.generation ?? 0,
        minIdle: spec?.minIdle ?? 0,
        maxWorkers: spec?.maxWorkers ?? 0,
        refillPerMinute: spec?.refillPerMinute ?? 1,
        breaker: {
          failureThreshold: spec?.breaker.failureThreshold ?? 1,
          cooldownMs: spec?.breaker.cooldown ?? 60_000,
          successThreshold: spec?.breaker.successThreshold ?? 1,
        },
        counts: inventory.counts,
        live: inventory.live,
        starting: inventory.starting,
        asked: inventory.asked,
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
      // A few at a time: a refill of hundreds takes seconds, not minutes, and the registry's
      // pool lock still admits one reservation at a time.
      await forEachBounded(input.workerIds, startConcurrency, async (workerId) => {
        if (stoppedBy) return;
        const slot = await pools.reserveWorkerSlot({
          pool: input.pool,
          workerId,
          image: settings.image,
          origin: 'pool_workflow',
          requireClosedBreaker: false, // the pool workflow is the breaker: it spawns probes itself
        });
        if (slot.outcome === 'at_capacity' || slot.outcome === 'pool_draining' || slot.outcome === 'pool_not_found') {
          stoppedBy = slot.outcome;
          return;
        }
        // `exists`: an earlier attempt of this activity reserved it; make sure its workflow runs.
        await startWorkerLifecycle(temporal(), { pool: input.pool, workerId, settings, taskQueue });
        started.push(workerId);
        Context.current().heartbeat(started.length);
      });
      return { started, stoppedBy };
    },

    async recordPoolBreaker(input: { pool: string; state: BreakerState }): Promise<void> {
      await pools.recordBreakerState(input.pool, input.state);
      deps.metrics?.setBreakerState(input.pool, input.state);
    },

    /**
     * Asks every live worker of the pool to drain. Returns once each has accepted (a claimed
     * worker keeps its tenant until release or its drain timeout; the worker workflow sees to it).
     */
    async drainPoolWorkers(pool: string): Promise<{ asked: number; live: number }> {
      const workers = await pools.liveWorkers(pool);
      let asked = 0;
      await forEachBounded(workers, drainConcurrency, async (worker) => {
        if (worker.state === 'draining') return;
        const handle = temporal().workflow.getHandle(workerLifecycleWorkflowId(pool, worker.id));
        try {
          // Waits for acceptance only. A refusal (already draining, already ended) comes back as a
          // handle with a failed outcome, not a throw: nothing more to ask of that worker.
          await handle.startUpdate(drainUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED });
          asked++;
        } catch (err) {
          // A row without a workflow is the janitor's.
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
        Context.current().heartbeat(asked);
      });
      return { asked, live: workers.length };
    },

    async markPoolDrained(pool: string): Promise<void> {
      await pools.markDrained(pool);
    },
  };
}

export type PoolActivities = ReturnType<typeof createPoolActivities>;
