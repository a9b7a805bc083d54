// The pool keeper: every `corral worker` replica, at start and then every check period (with
// jitter), makes sure each `active` or `draining` pool's workflow is running, and starts the ones
// that are not (terminated by hand, failed by a bug, never started because a replica died between
// the registry write and the start). Replicas need no coordination: a start of a running workflow
// is a no-op `describe` here, and two replicas starting the same stopped one both land on the same
// run (signalWithStart). docs/decisions/0016-controllers-never-fail.md
//
// A check costs one registry read and one `describe` per pool (no history: a running pool
// workflow is not signalled). Every call is bounded; a failure is logged, counted and retried
// next period; nothing here can crash the worker.
import { WorkflowNotFoundError, type Client, type WorkflowExecutionStatusName } from '@temporalio/client';
import { forEachBounded } from '../activities/bounded-concurrency';
import { wakePoolWorkflow } from '../client/pool-workflows';
import { checkPoolCheckIntervalMs } from '../config/pool-keeper';
import type { PoolKeeperMetrics } from '../metrics/pool-metrics';
import type { PoolStore } from '../registry/pool-store';
import { poolWorkflowId } from '../common';

/** Each call of a check (the registry read, a describe, a start) may take this long. */
export const poolKeeperCallTimeoutMs = 10_000;
/** Pools checked at once. */
const checkConcurrency = 8;
/** Each period is the interval times a factor in [1 - jitter, 1 + jitter]: replicas drift apart. */
const jitter = 0.2;

/** Statuses of a workflow that will do nothing more: its pool needs a new run. */
const closedStatuses: readonly (WorkflowExecutionStatusName | 'NOT_FOUND')[] = [
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TERMINATED',
  'CONTINUED_AS_NEW', // the latest run is looked up by id, so this means the chain has no running run
  'TIMED_OUT',
  'NOT_FOUND',
];

/** A call of the keeper that did not answer within its bound. */
export class PoolKeeperTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`${what}: no answer within ${timeoutMs} ms`);
    this.name = 'PoolKeeperTimeoutError';
  }
}

export interface PoolKeeperCheck {
  /** Pools active or draining in the registry. */
  expected: number;
  /** Of those, the ones whose workflow was running, or was started by this check. */
  running: number;
  /** Pools whose workflow this check started again. */
  restarted: string[];
  /** Calls that failed (the pool read counts as one and ends the check). */
  failures: number;
}

export interface PoolKeeperOptions {
  pools: PoolStore;
  temporal: Client;
  /** The base task queue pool workflows run on (as the corral API starts them). */
  taskQueue: string;
  /** The check period (`CORRAL_POOL_CHECK_INTERVAL`), at least 1 s. */
  intervalMs: number;
  metrics?: PoolKeeperMetrics;
  log?: (line: string) => void;
  /** Called after each check (tests, diagnostics). */
  onCheck?: (check: PoolKeeperCheck) => void;
}

export class PoolKeeper {
  private readonly intervalMs: number;
  private readonly log: (line: string) => void;
  private stopping = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: PoolKeeperOptions) {
    this.intervalMs = checkPoolCheckIntervalMs(opts.intervalMs);
    this.log = opts.log ?? (() => undefined);
  }

  /** Checks at once, then every period until `stop()`. */
  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  /** Stops after the check in flight (each of its calls is bounded). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  /** One check: every pool that should have a running workflow gets one. Never throws. */
  async check(): Promise<PoolKeeperCheck> {
    const { pools, temporal, taskQueue, metrics } = this.opts;
    const result: PoolKeeperCheck = { expected: 0, running: 0, restarted: [], failures: 0 };
    let records;
    try {
      records = await bounded('reading the pools', () => pools.listPools());
    } catch (err) {
      result.failures++;
      metrics?.countCheckFailure();
      this.log(`pool keeper: pools not read (retried in ${this.intervalMs} ms): ${message(err)}`);
      return result;
    }
    const expected = records.filter((p) => p.status === 'active' || p.status === 'draining');
    result.expected = expected.length;
    await forEachBounded(expected, checkConcurrency, async (pool) => {
      if (this.stopping.signal.aborted) return;
      const workflowId = poolWorkflowId(pool.name);
      try {
        const status = await bounded(`describing ${workflowId}`, () =>
          temporal.withDeadline(Date.now() + poolKeeperCallTimeoutMs, () => statusOf(temporal, workflowId)),
        );
        if (!closedStatuses.includes(status)) {
          result.running++;
          return;
        }
        const { runId } = await bounded(`starting ${workflowId}`, () =>
          temporal.withDeadline(Date.now() + poolKeeperCallTimeoutMs, () =>
            wakePoolWorkflow(temporal, { pool: pool.name, generation: pool.generation, taskQueue }),
          ),
        );
        result.running++;
        result.restarted.push(pool.name);
        metrics?.countRestart(pool.name);
        this.log(`pool keeper: ${workflowId} was ${status} while the pool is ${pool.status}: started run ${runId}`);
      } catch (err) {
        result.failures++;
        metrics?.countCheckFailure();
        this.log(`pool keeper: ${workflowId} not checked (retried in ${this.intervalMs} ms): ${message(err)}`);
      }
    });
    metrics?.setPoolWorkflows({ expected: result.expected, running: result.running });
    this.opts.onCheck?.(result);
    return result;
  }

  private async run(): Promise<void> {
    const { signal } = this.stopping;
    while (!signal.aborted) {
      try {
        await this.check();
      } catch (err) {
        // check() catches its own failures; this is a last line so the loop never dies.
        this.log(`pool keeper: check failed: ${message(err)}`);
      }
      await pause(this.intervalMs * (1 - jitter + 2 * jitter * Math.random()), signal);
    }
  }
}

async function statusOf(temporal: Client, workflowId: string): Promise<WorkflowExecutionStatusName | 'NOT_FOUND'> {
  try {
    return (await temporal.workflow.getHandle(workflowId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 'NOT_FOUND';
    throw err;
  }
}

/** `call` within `poolKeeperCallTimeoutMs` (a local bound, beside each call's gRPC deadline). */
async function bounded<T>(what: string, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new PoolKeeperTimeoutError(what, poolKeeperCallTimeoutMs)),
      poolKeeperCallTimeoutMs,
    );
  });
  try {
    return await Promise.race([call(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The period between checks; ends early when the keeper stops. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
