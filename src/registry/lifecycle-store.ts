// The typed lifecycle store: the only code that writes the `workers` registry. Every write is
// one compare-and-set round trip (a SQL function, see migrations/) whose answer says exactly
// what happened; inputs are validated before any SQL; every call is time-bounded by the pool.
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import {
  bumpsEpoch,
  type LifecycleOperation,
  type TransitionOrigin,
  canTransition,
  terminalStates,
  type WorkerState,
} from '../common';
import type { LifecycleMetrics, TransitionOutcome } from '../metrics/lifecycle-metrics';
import { RegistryUnavailableError, TransitionNotAllowedError } from './errors';

export { RegistryUnavailableError };
import {
  createWorkerInput,
  leaseSchema,
  listWorkersInput,
  parseInput,
  transitionInput,
  workerIdSchema,
  type patchSchema,
} from './validation';
import { z } from 'zod';

export interface WorkerSnapshot {
  id: string;
  pool: string;
  image: string;
  state: WorkerState;
  epoch: number;
  tenant: string | null;
  podName: string | null;
  endpoint: string | null;
  spawnAttempt: number;
  failureReason: string | null;
  credentialVersion: number;
  credentialExpiresAt: Date | null;
  claimRequestId: string | null;
  stateSince: Date;
  createdAt: Date;
  updatedAt: Date;
}

/** A tenant's fencing token: valid while the worker is `claimed` at exactly this epoch. */
export interface Lease {
  workerId: string;
  epoch: number;
}

/** What a transition expects to find: the epoch it holds and the state(s) it may come from. */
export interface TransitionExpectation {
  epoch: number;
  states: WorkerState[];
}

export type WorkerPatch = z.input<typeof patchSchema>;

export interface TransitionRequest {
  workerId: string;
  expected: TransitionExpectation;
  to: WorkerState;
  patch?: WorkerPatch;
  operation: LifecycleOperation;
  origin: TransitionOrigin;
}

export type TransitionResult =
  | { outcome: 'transitioned'; worker: WorkerSnapshot }
  | { outcome: 'fence_miss_epoch' | 'fence_miss_state'; actual: { epoch: number; state: WorkerState } }
  | { outcome: 'row_missing' }
  | { outcome: 'store_error'; message: string };

export type LeaseCheck =
  | { status: 'valid'; worker: WorkerSnapshot }
  | { status: 'stale_lease'; actualEpoch: number; state: WorkerState }
  | { status: 'not_claimed'; state: WorkerState }
  | { status: 'row_missing' };

export interface TransitionRecord {
  workerId: string;
  fromState: WorkerState | null;
  toState: WorkerState;
  epochBefore: number | null;
  epochAfter: number;
  operation: LifecycleOperation;
  origin: TransitionOrigin;
  tenant: string | null;
  failureReason: string | null;
  at: Date;
}

/** Expectation from a snapshot the caller read: exactly that epoch and state. */
export function expectSnapshot(worker: Pick<WorkerSnapshot, 'epoch' | 'state'>): TransitionExpectation {
  return { epoch: worker.epoch, states: [worker.state] };
}

/** Expectation from a tenant's lease: that epoch, and the worker still claimed. */
export function expectLease(lease: Lease): TransitionExpectation {
  return { epoch: lease.epoch, states: ['claimed'] };
}

const workerColumns = `id, pool, image, state, epoch, tenant, pod_name, endpoint, spawn_attempt, failure_reason,
  credential_version, credential_expires_at, claim_request_id, state_since, created_at, updated_at`;

/**
 * The live-row predicate, spelled exactly as the partial indexes' (migrations/1732600000000_fleet-scale.sql):
 * Postgres uses a partial index only when the query's WHERE clause implies its predicate, so every
 * hot-path query over live workers includes this text (or a single live state such as `state = 'idle'`).
 */
export const liveRowPredicate = `state NOT IN ('retired', 'lost')`;

/** A live row of a state with a deadline, past that deadline by more than the margin (see overdueWorkers). */
export interface OverdueWorker {
  worker: WorkerSnapshot;
  /** The pool's deadline for the row's state (spawn, activation or drain), in ms. */
  deadlineMs: number;
  /** How long since the row last changed, in ms (database clock). */
  sinceChangeMs: number;
}

/** What one retention batch deleted. */
export interface RetentionBatch {
  workers: number;
  transitions: number;
  claims: number;
}

const maxIdsPerLookup = 1_000;
const liveRowsInput = z.strictObject({ limit: z.number().int().min(1).max(1_000_000) });
const overdueInput = z.strictObject({
  marginMs: z
    .number()
    .int()
    .min(0)
    .max(365 * 24 * 3_600_000),
  limit: z.number().int().min(1).max(100_000),
});
const retentionBatchInput = z.strictObject({
  retentionMs: z
    .number()
    .int()
    .min(0)
    .max(100 * 365 * 24 * 3_600_000),
  batchSize: z.number().int().min(1).max(10_000),
});

/** The worker columns qualified by a table alias, for joins. */
const columnsOf = (alias: string) =>
  workerColumns
    .split(',')
    .map((column) => `${alias}.${column.trim()}`)
    .join(', ');

type Row = Record<string, unknown>;
const dateOrNull = (v: unknown) => (v == null ? null : new Date(v as string));
const textOrNull = (v: unknown) => (v == null ? null : String(v));

/** Maps a `workers` row, from a plain SELECT (snake_case, bigint as string) or to_jsonb(). */
export function toSnapshot(row: Row): WorkerSnapshot {
  return {
    id: String(row.id),
    pool: String(row.pool),
    image: String(row.image),
    state: row.state as WorkerState,
    epoch: Number(row.epoch),
    tenant: textOrNull(row.tenant),
    podName: textOrNull(row.pod_name),
    endpoint: textOrNull(row.endpoint),
    spawnAttempt: Number(row.spawn_attempt),
    failureReason: textOrNull(row.failure_reason),
    credentialVersion: Number(row.credential_version),
    credentialExpiresAt: dateOrNull(row.credential_expires_at),
    claimRequestId: textOrNull(row.claim_request_id),
    stateSince: new Date(row.state_since as string),
    createdAt: new Date(row.created_at as string),
    updatedAt: new Date(row.updated_at as string),
  };
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

export class WorkerLifecycleStore {
  constructor(
    private readonly db: pg.Pool,
    private readonly metrics?: LifecycleMetrics,
  ) {}

  /**
   * Creates the row in `spawning` at epoch 1, with its audit row. Idempotent: creating an
   * existing id returns the existing row with `created: false` (activity retries are safe).
   */
  async createWorker(input: {
    id: string;
    pool: string;
    image: string;
    podName?: string;
    origin: TransitionOrigin;
  }): Promise<{ created: boolean; worker: WorkerSnapshot }> {
    const { id, pool, image, podName, origin } = parseInput(createWorkerInput, input);
    const started = performance.now();
    // An idempotent re-create changes nothing and is not counted; a failure is a store_error.
    let outcome: TransitionOutcome | null = 'store_error';
    try {
      const { rows } = await this.db.query(
        `WITH inserted AS (
           INSERT INTO workers (id, pool, image, state, epoch, pod_name)
           VALUES ($1, $2, $3, 'spawning', 1, $4)
           ON CONFLICT (id) DO NOTHING
           RETURNING ${workerColumns}
         ), audit AS (
           INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
           SELECT id, NULL, 'spawning', NULL, 1, 'create', $5 FROM inserted
         )
         SELECT true AS created, ${workerColumns} FROM inserted
         UNION ALL
         SELECT false AS created, ${workerColumns} FROM workers WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM inserted)`,
        [id, pool, image, podName ?? null, origin],
      );
      const created = Boolean(rows[0].created);
      outcome = created ? 'transitioned' : null;
      return { created, worker: toSnapshot(rows[0]) };
    } catch (err) {
      throw new RegistryUnavailableError(`createWorker ${id}: ${describeError(err)}`);
    } finally {
      if (outcome) {
        this.metrics?.recordTransition({
          operation: 'create',
          outcome,
          image,
          origin,
          durationSeconds: (performance.now() - started) / 1000,
        });
      }
    }
  }

  /**
   * One compare-and-set: succeeds only if the row still has the expected epoch and one of the
   * expected states. Disallowed moves throw TransitionNotAllowedError before any SQL.
   */
  async transition(request: TransitionRequest): Promise<TransitionResult> {
    const { workerId, expected, to, patch, operation, origin } = parseInput(transitionInput, request);
    for (const from of expected.states) {
      if (!canTransition(from, to)) throw new TransitionNotAllowedError(from, to);
    }
    const started = performance.now();
    let result: TransitionResult;
    let image: string | null = null;
    try {
      const { rows } = await this.db.query('SELECT * FROM corral_transition($1, $2, $3, $4, $5, $6, $7, $8)', [
        workerId,
        expected.epoch,
        expected.states,
        to,
        bumpsEpoch(operation, origin, to),
        JSON.stringify(patch),
        operation,
        origin,
      ]);
      const row = rows[0] as Row;
      image = textOrNull(row.image);
      const outcome = row.outcome as TransitionResult['outcome'];
      if (outcome === 'transitioned') {
        result = { outcome, worker: toSnapshot(row.worker as Row) };
      } else if (outcome === 'fence_miss_epoch' || outcome === 'fence_miss_state') {
        result = { outcome, actual: { epoch: Number(row.actual_epoch), state: row.actual_state as WorkerState } };
      } else {
        result = { outcome: 'row_missing' };
      }
    } catch (err) {
      result = { outcome: 'store_error', message: describeError(err) };
    }
    this.metrics?.recordTransition({
      operation,
      outcome: result.outcome,
      image,
      origin,
      durationSeconds: (performance.now() - started) / 1000,
    });
    return result;
  }

  async getWorker(workerId: string): Promise<WorkerSnapshot | null> {
    const id = parseInput(workerIdSchema, workerId);
    const rows = await this.read(`SELECT ${workerColumns} FROM workers WHERE id = $1`, [id]);
    return rows[0] ? toSnapshot(rows[0]) : null;
  }

  /**
   * Workers, optionally of one pool and some states. Asking for live states only (what the CLI and
   * the API ask by default) reads the live partial index: its cost follows the live fleet, not
   * the retired and lost rows kept for the retention period.
   */
  async listWorkers(filter: { pool?: string; states?: WorkerState[]; limit?: number } = {}): Promise<WorkerSnapshot[]> {
    const { pool, states, limit } = parseInput(listWorkersInput, filter);
    const liveOnly = states !== undefined && states.every((state) => !terminalStates.includes(state));
    const rows = await this.read(
      `SELECT ${workerColumns} FROM workers
       WHERE ${liveOnly ? `${liveRowPredicate} AND` : ''}
         ($1::text IS NULL OR pool = $1) AND ($2::text[] IS NULL OR state = ANY ($2))
       ORDER BY pool, created_at, id
       LIMIT $3`,
      [pool ?? null, states ?? null, limit],
    );
    return rows.map(toSnapshot);
  }

  /** Many rows by id, in as few round trips as the ids allow (absent ids: no row). */
  async getWorkers(workerIds: readonly string[]): Promise<Map<string, WorkerSnapshot>> {
    const ids = [...new Set(workerIds.map((id) => parseInput(workerIdSchema, id)))];
    const found = new Map<string, WorkerSnapshot>();
    for (let i = 0; i < ids.length; i += maxIdsPerLookup) {
      const rows = await this.read(`SELECT ${workerColumns} FROM workers WHERE id = ANY ($1::text[])`, [
        ids.slice(i, i + maxIdsPerLookup),
      ]);
      for (const row of rows) found.set(String(row.id), toSnapshot(row));
    }
    return found;
  }

  /** Every live (non-terminal) row, up to `limit`: one read of the live partial index. */
  async listLiveWorkers(limit: number): Promise<WorkerSnapshot[]> {
    const input = parseInput(liveRowsInput, { limit });
    const rows = await this.read(`SELECT ${workerColumns} FROM workers WHERE ${liveRowPredicate} LIMIT $1`, [
      input.limit,
    ]);
    return rows.map(toSnapshot);
  }

  /**
   * When each worker last moved to a new spawn attempt (its latest `respawn` in the audit trail),
   * for the few workers whose older attempts' pods are still around. Absent: never respawned.
   */
  async respawnedAt(workerIds: readonly string[]): Promise<Map<string, Date>> {
    const ids = [...new Set(workerIds.map((id) => parseInput(workerIdSchema, id)))];
    const found = new Map<string, Date>();
    for (let i = 0; i < ids.length; i += maxIdsPerLookup) {
      const rows = await this.read(
        `SELECT worker_id, max(at) AS at FROM worker_transitions
         WHERE worker_id = ANY ($1::text[]) AND operation = 'respawn'
         GROUP BY worker_id`,
        [ids.slice(i, i + maxIdsPerLookup)],
      );
      for (const row of rows) found.set(String(row.worker_id), new Date(row.at as string));
    }
    return found;
  }

  /**
   * Live rows in `spawning`, `activating` or `draining` that have not changed for longer than their
   * pool's deadline for that state (`deadlines.spawn`, `.activation`, `.drain`; the spec defaults
   * when the pool row is gone) plus `marginMs`. Each spawn attempt and each activation is its own
   * transition, so the row's last change is when the current deadline started. Database clock.
   */
  async overdueWorkers(opts: { marginMs: number; limit: number }): Promise<OverdueWorker[]> {
    const { marginMs, limit } = parseInput(overdueInput, opts);
    const rows = await this.read(
      `SELECT ${columnsOf('w')}, d.deadline_ms,
              (extract(epoch FROM now() - w.updated_at) * 1000)::float8 AS since_change_ms
         FROM workers w
         LEFT JOIN pools p ON p.name = w.pool
         CROSS JOIN LATERAL (
           SELECT CASE w.state
             WHEN 'spawning' THEN coalesce((p.spec -> 'deadlines' ->> 'spawn')::bigint, 120000)
             WHEN 'activating' THEN coalesce((p.spec -> 'deadlines' ->> 'activation')::bigint, 30000)
             ELSE coalesce((p.spec -> 'deadlines' ->> 'drain')::bigint, 600000)
           END AS deadline_ms
         ) d
        WHERE w.state IN ('spawning', 'activating', 'draining')
          AND w.updated_at < now() - make_interval(secs => (d.deadline_ms + $1) / 1000.0)
        ORDER BY w.updated_at
        LIMIT $2`,
      [marginMs, limit],
    );
    return rows.map((row) => ({
      worker: toSnapshot(row),
      deadlineMs: Number(row.deadline_ms),
      sinceChangeMs: Math.round(Number(row.since_change_ms)),
    }));
  }

  /**
   * One retention batch of worker rows: up to `batchSize` workers that have been retired or lost
   * for longer than `retentionMs` (database clock), oldest first, deleted with their audit trail.
   * Live rows are never touched; SKIP LOCKED lets two janitors (or a janitor and a reader that
   * locks) share the work without waiting on each other.
   */
  async deleteExpiredWorkers(opts: { retentionMs: number; batchSize: number }): Promise<RetentionBatch> {
    const { retentionMs, batchSize } = parseInput(retentionBatchInput, opts);
    const rows = await this.read(
      `WITH doomed AS (
         SELECT id FROM workers
          WHERE state IN ('retired', 'lost') AND state_since < now() - make_interval(secs => $1 / 1000.0)
          ORDER BY state_since, id
          LIMIT $2
          FOR UPDATE SKIP LOCKED
       ), trail AS (
         DELETE FROM worker_transitions t USING doomed d WHERE t.worker_id = d.id RETURNING 1
       ), gone AS (
         DELETE FROM workers w USING doomed d WHERE w.id = d.id AND w.state IN ('retired', 'lost') RETURNING 1
       )
       SELECT (SELECT count(*) FROM gone)::int AS workers, (SELECT count(*) FROM trail)::int AS transitions`,
      [retentionMs, batchSize],
    );
    return { workers: Number(rows[0]?.workers ?? 0), transitions: Number(rows[0]?.transitions ?? 0), claims: 0 };
  }

  /**
   * One retention batch of claims: up to `batchSize` claim rows last changed more than
   * `retentionMs` ago whose claim has ended — not a grant whose lease is still held (its worker
   * claimed at that epoch), not a pending claim whose worker is still live. A repeat of a
   * deleted claim's request id is a new claim: request ids are idempotency keys for the
   * retention period.
   */
  async deleteEndedClaims(opts: { retentionMs: number; batchSize: number }): Promise<RetentionBatch> {
    const { retentionMs, batchSize } = parseInput(retentionBatchInput, opts);
    const rows = await this.read(
      `WITH doomed AS (
         SELECT c.pool, c.request_id FROM claims c
          WHERE c.updated_at < now() - make_interval(secs => $1 / 1000.0)
            AND NOT EXISTS (
              SELECT 1 FROM workers w
               WHERE w.id = c.worker_id
                 AND ((c.status = 'granted' AND w.state = 'claimed' AND w.epoch = c.epoch)
                   OR (c.status = 'pending' AND w.${liveRowPredicate})))
          ORDER BY c.updated_at
          LIMIT $2
          FOR UPDATE OF c SKIP LOCKED
       ), gone AS (
         DELETE FROM claims c USING doomed d WHERE c.pool = d.pool AND c.request_id = d.request_id RETURNING 1
       ), abandoned AS (
         -- Waiting claims nobody has asked for in a minute: their callers are gone (decision 0034).
         -- Read through the queue's partial index: only waiting rows.
         DELETE FROM claims c
          WHERE c.status = 'waiting' AND c.polled_at < now() - interval '1 minute'
            AND (c.pool, c.request_id) NOT IN (SELECT d.pool, d.request_id FROM doomed d)
         RETURNING 1
       )
       SELECT (SELECT count(*) FROM gone)::int + (SELECT count(*) FROM abandoned)::int AS claims`,
      [retentionMs, batchSize],
    );
    return { workers: 0, transitions: 0, claims: Number(rows[0]?.claims ?? 0) };
  }

  /** Anyone may check a lease: valid only while the worker is claimed at exactly that epoch. */
  async checkLease(lease: Lease): Promise<LeaseCheck> {
    const { workerId, epoch } = parseInput(leaseSchema, lease);
    const worker = await this.getWorker(workerId);
    if (!worker) return { status: 'row_missing' };
    if (worker.epoch !== epoch) return { status: 'stale_lease', actualEpoch: worker.epoch, state: worker.state };
    if (worker.state !== 'claimed') return { status: 'not_claimed', state: worker.state };
    return { status: 'valid', worker };
  }

  /** The audit trail of one worker, oldest first. */
  async history(workerId: string): Promise<TransitionRecord[]> {
    const id = parseInput(workerIdSchema, workerId);
    const rows = await this.read(
      `SELECT worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant, failure_reason, at
       FROM worker_transitions WHERE worker_id = $1 ORDER BY id`,
      [id],
    );
    return rows.map((r) => ({
      workerId: String(r.worker_id),
      fromState: (r.from_state as WorkerState | null) ?? null,
      toState: r.to_state as WorkerState,
      epochBefore: r.epoch_before == null ? null : Number(r.epoch_before),
      epochAfter: Number(r.epoch_after),
      operation: r.operation as LifecycleOperation,
      origin: r.origin as TransitionOrigin,
      tenant: textOrNull(r.tenant),
      failureReason: textOrNull(r.failure_reason),
      at: r.at as Date,
    }));
  }

  private async read(sql: string, params: unknown[]): Promise<Row[]> {
    try {
      return (await this.db.query(sql, params)).rows as Row[];
    } catch (err) {
      throw new RegistryUnavailableError(describeError(err));
    }
  }
}
