// CorralClient: how a control plane (and the CLI) uses corral. Pools are applied to the registry
// and run by their pool workflow; claims go straight to one worker's workflow each.
//
// A claim's cost spreads across workflows (docs/decisions/0007-claims.md): the registry picks
// and reserves one warm worker per claim in one round trip, and the claim is that worker's own
// `claim` update, so no workflow ever sees more than one claim in flight for itself, and the
// pool workflow sees none. The cold path reserves capacity in the registry (the maxWorkers gate
// the pool shares) and starts a worker workflow bound to the claim.
import { performance } from 'node:perf_hooks';
import {
  Client,
  Connection,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import ms from 'ms';
import { parseDuration } from '../config/duration';
import type pg from 'pg';
import { z } from 'zod';
import { firstIssue } from '../config/first-issue';
import { lifecycleSettingsFor, parsePoolSpec, PoolSpecError } from '../config/pool-spec';
import type { PoolMetrics } from '../metrics/pool-metrics';
import { createRegistryPool } from '../registry/database';
import { WorkerLifecycleStore, type LeaseCheck } from '../registry/lifecycle-store';
import { PoolStore, type PoolRecord } from '../registry/pool-store';
import { corralTaskQueue } from '../workers/task-queues';
import {
  describePoolQuery,
  poolSpecChangedSignal,
  poolWorkflowId,
  type PoolDescription,
  type PoolWorkflowResult,
} from '../workflows/pool/messages';
import {
  abandonClaimSignal,
  claimUpdate,
  lifecycleRejections,
  releaseUpdate,
  workerLifecycleWorkflowId,
  type ReleaseResult,
  type WorkerLease,
} from '../workflows/worker-lifecycle/messages';
import { CorralError } from './errors';
import { newWorkerId, startWorkerLifecycle } from './worker-workflows';

/** A tenant's lease, plus the pool its worker belongs to. */
export interface Lease extends WorkerLease {
  pool: string;
}

export interface ClaimOptions {
  tenant: string;
  /** Idempotency key: every call with it gets the same lease. */
  requestId: string;
  /** How long to wait for a worker (ms or "30s"); default 60 s. */
  timeout?: number | string;
}

export interface ClaimResult extends Lease {
  path: 'warm' | 'cold';
}

const maxTimeoutMs = 10 * 60_000;
const defaultTimeoutMs = 60_000;
/** Warm workers tried per claim before the cold path (each refusal means one moved on meanwhile). */
const maxWarmAttempts = 5;

const claimInput = z.strictObject({
  pool: z.string().min(1, 'must not be empty').max(128),
  tenant: z.string().min(1, 'must not be empty').max(128),
  requestId: z.string().min(1, 'must not be empty').max(128),
  timeout: z
    .union([z.number(), z.string()])
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return defaultTimeoutMs;
      const parsed = typeof value === 'number' ? value : parseDuration(value);
      if (parsed === undefined || !Number.isFinite(parsed) || parsed <= 0 || parsed > maxTimeoutMs) {
        ctx.addIssue({ code: 'custom', message: `must be a duration between 1ms and 10m: ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return parsed;
    }),
});

const leaseInput = z.object({
  workerId: z.string().min(1, 'must not be empty').max(128),
  epoch: z.number().int('must be an integer').positive('must be positive'),
});

function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const { field, message } = firstIssue(result.error);
  throw new CorralError('invalid_request', `${field} ${message}`, field);
}

/** The rejection type behind a failed update, or null when it failed for another reason. */
function rejectionOf(err: unknown): string | null {
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure)
    return err.cause.type ?? null;
  return null;
}

export interface CorralClientOptions {
  temporal: Client;
  db: pg.Pool;
  /** The task queue `corral worker` polls. */
  taskQueue?: string;
  /** Claim latency by path (the warm-capacity miss counter lives in corral worker). */
  metrics?: PoolMetrics;
}

export class CorralClient {
  readonly pools: PoolStore;
  readonly workers: WorkerLifecycleStore;
  private readonly temporal: Client;
  private readonly taskQueue: string;
  private readonly metrics?: PoolMetrics;
  private closeOwned: () => Promise<void> = async () => undefined;

  constructor(opts: CorralClientOptions) {
    this.temporal = opts.temporal;
    this.pools = new PoolStore(opts.db);
    this.workers = new WorkerLifecycleStore(opts.db);
    this.taskQueue = opts.taskQueue ?? corralTaskQueue;
    this.metrics = opts.metrics;
  }

  /** A client that owns its connections (closed by `close()`). */
  static async connect(opts: {
    temporalAddress: string;
    namespace?: string;
    databaseUrl: string;
    taskQueue?: string;
    metrics?: PoolMetrics;
  }): Promise<CorralClient> {
    const db = createRegistryPool({ connectionString: opts.databaseUrl });
    const connection = await Connection.connect({ address: opts.temporalAddress });
    const client = new CorralClient({
      temporal: new Client({ connection, namespace: opts.namespace ?? 'default' }),
      db,
      taskQueue: opts.taskQueue,
      metrics: opts.metrics,
    });
    client.closeOwned = async () => {
      await Promise.allSettled([connection.close(), db.end()]);
    };
    return client;
  }

  async close(): Promise<void> {
    await this.closeOwned();
  }

  // --- pools ---------------------------------------------------------------------------------

  /**
   * Creates or updates a pool and makes sure its workflow runs. Idempotent: the same spec again
   * changes nothing. A changed spec reaches the running pool at once (its next wake re-reads it;
   * the signal is that wake); workers already running keep the settings they were started with.
   */
  async applyPool(input: unknown): Promise<{ pool: PoolRecord; created: boolean; changed: boolean }> {
    let spec;
    try {
      spec = parsePoolSpec(input);
    } catch (err) {
      if (err instanceof PoolSpecError) throw new CorralError('invalid_request', err.message, err.field);
      throw err;
    }
    const applied = await this.pools.applyPool(spec);
    if (applied.pool.status === 'draining') {
      throw new CorralError('pool_draining', `pool ${spec.name} is draining; apply it again once it has drained`);
    }
    await this.temporal.workflow.signalWithStart('poolWorkflow', {
      taskQueue: this.taskQueue,
      workflowId: poolWorkflowId(spec.name),
      args: [{ pool: spec.name }],
      signal: poolSpecChangedSignal,
      signalArgs: [{ generation: applied.pool.generation }],
    });
    return applied;
  }

  async describePool(name: string): Promise<{ pool: PoolRecord; workflow: PoolDescription | null }> {
    const pool = await this.pools.getPool(name);
    if (!pool) throw new CorralError('pool_not_found', `no pool named ${name}`);
    let workflow: PoolDescription | null = null;
    try {
      workflow = await this.temporal.workflow.getHandle(poolWorkflowId(name)).query(describePoolQuery);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    return { pool, workflow };
  }

  /**
   * Stops new claims at once and has the pool workflow drain every worker: idle ones now, claimed
   * ones after release or their drain timeout. Resolves when asked; `waitForDrained` waits for the end.
   */
  async drainPool(name: string): Promise<void> {
    const pool = await this.pools.markDraining(name);
    if (!pool) throw new CorralError('pool_not_found', `no pool named ${name}`);
    if (pool.status === 'drained') return;
    // The registry says draining, so a (re)started pool workflow drains; the signal wakes a running one.
    await this.temporal.workflow.signalWithStart('poolWorkflow', {
      taskQueue: this.taskQueue,
      workflowId: poolWorkflowId(name),
      args: [{ pool: name }],
      signal: poolSpecChangedSignal,
      signalArgs: [{ generation: pool.generation }],
    });
  }

  async waitForDrained(name: string): Promise<PoolWorkflowResult> {
    return (await this.temporal.workflow.getHandle(poolWorkflowId(name)).result()) as PoolWorkflowResult;
  }

  /**
   * Drains the pool (if it is not drained yet), waits for the drain to finish, then forgets it.
   * The name can be applied again afterwards, as a new pool at generation 1.
   */
  async deletePool(name: string): Promise<void> {
    const pool = await this.pools.getPool(name);
    if (!pool) throw new CorralError('pool_not_found', `no pool named ${name}`);
    if (pool.status !== 'drained') {
      await this.drainPool(name);
      await this.waitForDrained(name);
    }
    const outcome = await this.pools.deleteDrainedPool(name);
    if (outcome === 'not_found') throw new CorralError('pool_not_found', `no pool named ${name}`);
    if (outcome === 'not_drained') {
      throw new CorralError('pool_draining', `pool ${name} was applied again while it drained; not deleted`);
    }
  }

  /**
   * Resolves once the pool has at least `count` idle workers (read from the registry every
   * 250 ms); rejects with `timeout` after `timeoutMs`. For demos and operators, not the claim path.
   */
  async waitForIdle(name: string, count: number, opts: { timeoutMs: number }): Promise<void> {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      const pool = await this.pools.getPool(name);
      if (!pool) throw new CorralError('pool_not_found', `no pool named ${name}`);
      const { counts } = await this.pools.inventory(name);
      if ((counts.idle ?? 0) >= count) return;
      if (Date.now() >= deadline) {
        throw new CorralError(
          'timeout',
          `pool ${name} has ${counts.idle ?? 0} idle worker(s), not ${count}, after ${ms(opts.timeoutMs)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  // --- claims --------------------------------------------------------------------------------

  /** A worker for `tenant`, exactly once per `requestId`, with its fencing token. */
  async claim(pool: string, options: ClaimOptions): Promise<ClaimResult> {
    const started = performance.now();
    const { tenant, requestId, timeout: timeoutMs } = parse(claimInput, { pool, ...options });
    const deadline = Date.now() + timeoutMs;
    const begin = await this.beginClaim(pool, requestId, tenant, timeoutMs, deadline);
    if (begin.outcome === 'granted') {
      return { pool, workerId: begin.workerId, epoch: begin.epoch, endpoint: begin.endpoint, tenant, path: begin.path };
    }

    let lease: WorkerLease | null = null;
    let path: 'warm' | 'cold' = 'warm';
    if (begin.outcome === 'reserved') {
      let candidate: { workerId: string } | null = begin;
      for (let attempt = 1; candidate && attempt <= maxWarmAttempts; attempt++) {
        lease = await this.claimOn(pool, candidate.workerId, tenant, requestId, deadline);
        if (lease) break;
        candidate = await this.pools.reserveAnotherWarm({
          pool,
          requestId,
          tenant,
          reserveMs: this.reserveMs(deadline),
          release: candidate.workerId,
        });
      }
    }
    if (!lease) {
      path = 'cold';
      lease = await this.claimCold(pool, tenant, requestId, deadline);
    }
    await this.pools.grantClaim({
      pool,
      requestId,
      workerId: lease.workerId,
      epoch: lease.epoch,
      endpoint: lease.endpoint,
      path,
    });
    this.metrics?.observeClaim(pool, path, (performance.now() - started) / 1000);
    return { ...lease, pool, path };
  }

  /** Gives the worker back; the pool's release policy decides what happens to it. */
  async release(lease: Pick<Lease, 'workerId' | 'epoch'>): Promise<ReleaseResult> {
    const { workerId, epoch } = parse(leaseInput, lease);
    const worker = await this.workers.getWorker(workerId);
    if (!worker || worker.epoch !== epoch || worker.state !== 'claimed') {
      throw new CorralError(
        'stale_lease',
        worker
          ? `worker ${workerId} is ${worker.state} at epoch ${worker.epoch}; the lease at epoch ${epoch} is not current`
          : `worker ${workerId} does not exist`,
      );
    }
    try {
      return await this.temporal.workflow
        .getHandle(workerLifecycleWorkflowId(worker.pool, workerId))
        .executeUpdate(releaseUpdate, { args: [{ workerId, epoch }] });
    } catch (err) {
      const rejection = rejectionOf(err);
      if (err instanceof WorkflowNotFoundError || (rejection && rejection !== lifecycleRejections.invalidRequest)) {
        throw new CorralError(
          'stale_lease',
          `the lease at epoch ${epoch} is no longer current (${rejection ?? 'no workflow'})`,
        );
      }
      throw err;
    }
  }

  /** Anyone may check a lease: valid only while the worker is claimed at exactly that epoch. */
  async checkLease(lease: Pick<Lease, 'workerId' | 'epoch'>): Promise<LeaseCheck> {
    return this.workers.checkLease(parse(leaseInput, lease));
  }

  private reserveMs(deadline: number): number {
    // Long enough for one claim update; short enough that a crashed caller frees the worker soon.
    return Math.max(1_000, Math.min(15_000, deadline - Date.now()));
  }

  private async beginClaim(pool: string, requestId: string, tenant: string, timeoutMs: number, deadline: number) {
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      const begin = await this.pools.beginClaim({
        pool,
        requestId,
        tenant,
        pendingMs: timeoutMs + 5_000,
        reserveMs: this.reserveMs(deadline),
      });
      switch (begin.outcome) {
        case 'pool_not_found':
          throw new CorralError('pool_not_found', `no pool named ${pool}`);
        case 'pool_draining':
          throw new CorralError('pool_draining', `pool ${pool} is draining and takes no claims`);
        case 'tenant_mismatch':
          throw new CorralError('invalid_request', `requestId ${requestId} was used for another tenant`, 'requestId');
        case 'in_progress':
          // Another call with this request id is under way: wait for its lease (bounded by our timeout).
          if (Date.now() + wait >= deadline) {
            throw new CorralError('timeout', `claim ${requestId} is still in progress elsewhere`);
          }
          await new Promise((resolve) => setTimeout(resolve, wait));
          continue;
        default:
          return begin;
      }
    }
  }

  /**
   * The claim update on one worker's workflow. Null when that worker moved on (claimed by
   * someone else, draining, gone): the caller tries another. Throws `timeout` at the deadline.
   */
  private async claimOn(
    pool: string,
    workerId: string,
    tenant: string,
    requestId: string,
    deadline: number,
  ): Promise<WorkerLease | null> {
    const handle = this.temporal.workflow.getHandle(workerLifecycleWorkflowId(pool, workerId));
    try {
      return await this.temporal.connection.withDeadline(deadline, () =>
        // No fixed update id: a retried claim (after a timeout) must reach the workflow again, not be
        // answered with the earlier attempt's outcome. Idempotency is the claims table's and checkClaim's.
        handle.executeUpdate(claimUpdate, { args: [{ tenant, requestId }] }),
      );
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      const rejection = rejectionOf(err);
      if (rejection === lifecycleRejections.invalidRequest) {
        throw new CorralError('invalid_request', (err as WorkflowUpdateFailedError).cause?.message ?? 'invalid claim');
      }
      if (rejection) return null;
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || Date.now() >= deadline) {
        await this.abandon(pool, workerId, requestId);
        throw new CorralError('timeout', `no worker for ${tenant} within the claim timeout`);
      }
      throw err;
    }
  }

  private async claimCold(pool: string, tenant: string, requestId: string, deadline: number): Promise<WorkerLease> {
    const record = await this.pools.getPool(pool);
    if (!record) throw new CorralError('pool_not_found', `no pool named ${pool}`);
    const workerId = newWorkerId();
    const settings = lifecycleSettingsFor(record.spec);
    const slot = await this.pools.reserveWorkerSlot({
      pool,
      workerId,
      image: settings.image,
      origin: 'client',
      requireClosedBreaker: true,
    });
    if (slot.outcome !== 'reserved') {
      await this.pools.dropClaim({ pool, requestId });
      switch (slot.outcome) {
        case 'at_capacity':
          throw new CorralError(
            'at_capacity',
            `pool ${pool} has no warm worker and is at maxWorkers (${slot.maxWorkers})`,
          );
        case 'breaker_open':
          throw new CorralError('worker_unavailable', `pool ${pool} is not spawning: its spawn breaker is open`);
        case 'pool_draining':
          throw new CorralError('pool_draining', `pool ${pool} is draining and takes no claims`);
        default:
          throw new CorralError('pool_not_found', `no pool named ${pool}`);
      }
    }
    await this.pools.noteColdClaim({ pool, requestId, workerId });
    await startWorkerLifecycle(this.temporal, {
      pool,
      workerId,
      settings,
      taskQueue: this.taskQueue,
      boundClaim: { tenant, requestId },
    });
    const lease = await this.claimOn(pool, workerId, tenant, requestId, deadline);
    if (!lease) {
      await this.pools.dropClaim({ pool, requestId });
      throw new CorralError(
        'worker_unavailable',
        `the worker spawned for claim ${requestId} failed before it was ready`,
      );
    }
    return lease;
  }

  /** The caller's timeout passed: free the worker (and the request id) for someone else. */
  private async abandon(pool: string, workerId: string, requestId: string): Promise<void> {
    await this.pools.dropClaim({ pool, requestId, workerId });
    try {
      await this.temporal.workflow
        .getHandle(workerLifecycleWorkflowId(pool, workerId))
        .signal(abandonClaimSignal, { requestId });
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
}
