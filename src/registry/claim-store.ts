// Claims as the registry decides them (migrations/1732500000000_registry-claims.sql; quotas, waiting
// claims and rolling replacement: 1732800000000_capacity-policy.sql): a warm claim
// is one transaction, a release one, a cold worker's binding one, and the reclaim of grants nobody
// acknowledged one per batch. Inputs are checked by the caller (the corral API's schemas); every
// call is time-bounded by the pool; a database failure is a RegistryUnavailableError.
import type pg from 'pg';
import { performance } from 'node:perf_hooks';
import type { LifecycleOperation, TransitionOrigin, WorkerState } from '../common';
import type { LifecycleMetrics } from '../metrics/lifecycle-metrics';
import { RegistryUnavailableError } from './errors';
import { describeError, toSnapshot, type WorkerSnapshot } from './lifecycle-store';

type Row = Record<string, unknown>;
const textOrNull = (v: unknown) => (v == null ? null : String(v));

/** A lease as a claim row remembers it. */
export interface GrantedLease {
  workerId: string;
  epoch: number;
  endpoint: string;
  path: 'warm' | 'cold';
}

export type ClaimDecision =
  | ({ outcome: 'granted'; fromState: 'idle' | 'hot_idle' } & GrantedLease)
  | ({ outcome: 'repeat' } & GrantedLease)
  | ({ outcome: 'lease_ended'; state: WorkerState | null } & GrantedLease)
  | { outcome: 'in_progress'; workerId: string; state: WorkerState }
  | { outcome: 'tenant_mismatch' }
  | { outcome: 'pool_not_found' | 'pool_draining' }
  | { outcome: 'cold'; workerId: string }
  | { outcome: 'at_capacity'; live: number; maxWorkers: number }
  | { outcome: 'quota_exceeded'; held: number; quota: number }
  /**
   * Queued (decision 0034): ask again until served. `position`: 1 for the head. `eviction`: a
   * hot_idle worker of another tenant the registry marked to make room — ask its workflow to drain it.
   */
  | { outcome: 'waiting'; position: number; eviction: { workerId: string; fresh: boolean } | null }
  | { outcome: 'breaker_open' };

export type BindColdClaimResult =
  | { outcome: 'bound'; worker: WorkerSnapshot }
  | { outcome: 'not_bound'; worker: WorkerSnapshot }
  | { outcome: 'fence_miss_epoch' | 'fence_miss_state'; actual: { epoch: number; state: WorkerState } }
  | { outcome: 'row_missing' };

export type ReleaseDecision =
  | { outcome: 'released'; worker: WorkerSnapshot }
  | { outcome: 'already_released'; state: WorkerState; epoch: number; pool: string }
  | { outcome: 'wrong_tenant' | 'stale_lease'; state: WorkerState; epoch: number; pool: string }
  | { outcome: 'row_missing' };

/** Where a pending (cold) claim stands, read while its caller waits. */
export type PendingClaimStatus =
  | ({ status: 'granted' } & GrantedLease)
  | { status: 'pending'; workerState: WorkerState | null }
  | { status: 'gone' };

export class ClaimStore {
  /** `metrics`: the claim path's transitions count in corral_worker_lifecycle_transitions_total like any other. */
  constructor(
    private readonly db: pg.Pool,
    private readonly metrics?: LifecycleMetrics,
  ) {}

  private counted(operation: LifecycleOperation, origin: TransitionOrigin, image: string | null, started: number) {
    this.metrics?.recordTransition({
      operation,
      outcome: 'transitioned',
      image,
      origin,
      durationSeconds: (performance.now() - started) / 1000,
    });
  }

  async claim(input: {
    pool: string;
    requestId: string;
    tenant: string;
    /** The id a cold-path worker gets if no warm worker is free. */
    newWorkerId: string;
    /** How long a pending claim belongs to its caller before a repeat may take it over. */
    pendingMs: number;
    /** How long a grant may stay unacknowledged before it is reclaimed. */
    ackMs: number;
    origin: TransitionOrigin;
  }): Promise<ClaimDecision> {
    const started = performance.now();
    const [row] = await this.query(`SELECT * FROM corral_claim($1, $2, $3, $4, $5, $6, $7)`, [
      input.pool,
      input.requestId,
      input.tenant,
      input.newWorkerId,
      Math.ceil(input.pendingMs),
      Math.ceil(input.ackMs),
      input.origin,
    ]);
    const lease = (): GrantedLease => ({
      workerId: String(row.worker_id),
      epoch: Number(row.epoch),
      endpoint: String(row.endpoint ?? ''),
      path: row.path === 'cold' ? 'cold' : 'warm',
    });
    switch (row.outcome) {
      case 'granted':
        this.counted('claim', input.origin, textOrNull(row.image), started);
        return { outcome: 'granted', fromState: row.from_state === 'hot_idle' ? 'hot_idle' : 'idle', ...lease() };
      case 'repeat':
        return { outcome: 'repeat', ...lease() };
      case 'lease_ended':
        return { outcome: 'lease_ended', state: (row.from_state as WorkerState | null) ?? null, ...lease() };
      case 'in_progress':
        return { outcome: 'in_progress', workerId: String(row.worker_id), state: row.from_state as WorkerState };
      case 'cold':
        this.counted('create', input.origin, textOrNull(row.image), started);
        return { outcome: 'cold', workerId: String(row.worker_id) };
      case 'at_capacity':
        return { outcome: 'at_capacity', live: Number(row.live_workers), maxWorkers: Number(row.max_workers) };
      case 'quota_exceeded':
        return { outcome: 'quota_exceeded', held: Number(row.live_workers), quota: Number(row.max_workers) };
      case 'waiting':
        return {
          outcome: 'waiting',
          position: Number(row.live_workers),
          eviction: row.worker_id == null ? null : { workerId: String(row.worker_id), fresh: row.path === 'evicted' },
        };
      case 'tenant_mismatch':
      case 'pool_not_found':
      case 'pool_draining':
      case 'breaker_open':
        return { outcome: row.outcome };
      default:
        throw new RegistryUnavailableError(`corral_claim answered ${String(row.outcome)}`);
    }
  }

  /** A waiting claim whose caller gave up (its timeout): it leaves the queue. Only while still waiting. */
  async abandonWait(input: { pool: string; requestId: string }): Promise<void> {
    await this.query(`DELETE FROM claims WHERE pool = $1 AND request_id = $2 AND status = 'waiting'`, [
      input.pool,
      input.requestId,
    ]);
  }

  /** The answer to a grant reached its caller: it is never reclaimed. Many at once (batched). */
  async acknowledge(claims: { pool: string; requestId: string }[]): Promise<void> {
    if (claims.length === 0) return;
    await this.query(
      `UPDATE claims c SET acknowledged_at = now()
       FROM unnest($1::text[], $2::text[]) AS a(pool, request_id)
       WHERE c.pool = a.pool AND c.request_id = a.request_id AND c.status = 'granted' AND c.acknowledged_at IS NULL`,
      [claims.map((c) => c.pool), claims.map((c) => c.requestId)],
    );
  }

  /**
   * A hand-over failed (the worker would not take the lease): the claim waits again, with no
   * worker, so the next corral_claim of its request id picks another. Only if it still holds
   * exactly that lease.
   */
  async reopenClaim(input: { pool: string; requestId: string; workerId: string; epoch: number }): Promise<void> {
    await this.query(
      `UPDATE claims SET status = 'pending', worker_id = NULL, epoch = NULL, endpoint = NULL, path = NULL,
         granted_at = NULL, ack_by = NULL, updated_at = now()
       WHERE pool = $1 AND request_id = $2 AND worker_id = $3 AND epoch = $4 AND status = 'granted'`,
      [input.pool, input.requestId, input.workerId, input.epoch],
    );
  }

  async pendingClaimStatus(input: { pool: string; requestId: string }): Promise<PendingClaimStatus> {
    const [row] = await this.query(
      `SELECT c.status, c.worker_id, c.epoch, c.endpoint, c.path, w.state AS worker_state
       FROM claims c LEFT JOIN workers w ON w.id = c.worker_id
       WHERE c.pool = $1 AND c.request_id = $2`,
      [input.pool, input.requestId],
    );
    if (!row) return { status: 'gone' };
    if (row.status === 'granted') {
      return {
        status: 'granted',
        workerId: String(row.worker_id),
        epoch: Number(row.epoch),
        endpoint: String(row.endpoint ?? ''),
        path: row.path === 'warm' ? 'warm' : 'cold',
      };
    }
    if (row.status === 'pending') return { status: 'pending', workerState: (row.worker_state as WorkerState) ?? null };
    return { status: 'gone' };
  }

  async bindColdClaim(input: {
    workerId: string;
    pool: string;
    requestId: string;
    epoch: number;
    ackMs: number;
  }): Promise<BindColdClaimResult> {
    const started = performance.now();
    const [row] = await this.query(`SELECT * FROM corral_bind_cold_claim($1, $2, $3, $4, $5)`, [
      input.workerId,
      input.pool,
      input.requestId,
      input.epoch,
      Math.ceil(input.ackMs),
    ]);
    switch (row.outcome) {
      case 'bound': {
        const worker = toSnapshot(row.worker as Row);
        this.counted('claim', 'lifecycle_workflow', worker.image, started);
        return { outcome: 'bound', worker };
      }
      case 'not_bound': {
        const worker = toSnapshot(row.worker as Row);
        this.counted(worker.state === 'idle' ? 'ready' : 'drain', 'lifecycle_workflow', worker.image, started);
        return { outcome: 'not_bound', worker };
      }
      case 'fence_miss_epoch':
      case 'fence_miss_state':
        return {
          outcome: row.outcome,
          actual: { epoch: Number(row.actual_epoch), state: row.actual_state as WorkerState },
        };
      default:
        return { outcome: 'row_missing' };
    }
  }

  async release(input: {
    workerId: string;
    epoch: number;
    tenant: string | null;
    origin: TransitionOrigin;
  }): Promise<ReleaseDecision> {
    const started = performance.now();
    const [row] = await this.query(`SELECT * FROM corral_release($1, $2, $3, $4)`, [
      input.workerId,
      input.epoch,
      input.tenant,
      input.origin,
    ]);
    switch (row.outcome) {
      case 'released': {
        const worker = toSnapshot(row.worker as Row);
        this.counted('release', input.origin, worker.image, started);
        return { outcome: 'released', worker };
      }
      case 'already_released':
      case 'wrong_tenant':
      case 'stale_lease':
        return {
          outcome: row.outcome,
          state: row.state as WorkerState,
          epoch: Number(row.epoch),
          pool: String(row.pool),
        };
      default:
        return { outcome: 'row_missing' };
    }
  }

  /** Grants unacknowledged past their ack_by, taken back; the workers they held, as they are now. */
  async reclaimUnacknowledged(
    limit: number,
  ): Promise<{ pool: string; requestId: string; tenant: string | null; worker: WorkerSnapshot }[]> {
    const started = performance.now();
    const rows = await this.query(`SELECT * FROM corral_reclaim_unacknowledged($1)`, [limit]);
    return rows.map((row) => {
      const worker = toSnapshot(row.worker as Row);
      this.counted('release', 'reclaimer', worker.image, started);
      return { pool: String(row.pool), requestId: String(row.request_id), tenant: textOrNull(row.tenant), worker };
    });
  }

  /** A drain asked of one worker: no claim takes it from now on, and its release goes to draining. */
  async markDrainRequested(workerId: string): Promise<WorkerSnapshot | null> {
    const [row] = await this.query(
      `UPDATE workers SET drain_requested = true, updated_at = now() WHERE id = $1
       RETURNING id, pool, image, state, epoch, tenant, pod_name, endpoint, spawn_attempt, failure_reason,
         credential_version, credential_expires_at, claim_request_id, state_since, created_at, updated_at`,
      [workerId],
    );
    return row ? toSnapshot(row) : null;
  }

  private async query(sql: string, params: unknown[]): Promise<Row[]> {
    try {
      return (await this.db.query(sql, params)).rows as Row[];
    } catch (err) {
      throw new RegistryUnavailableError(describeError(err));
    }
  }
}
