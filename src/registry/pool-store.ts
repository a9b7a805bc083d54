// The pools and claims side of the registry: applied specs, pool status, the breaker state the
// cold path reads, warm-worker reservations, claim idempotency and the maxWorkers gate. Every
// decision that must be atomic is one SQL function (migrations/1732400000000_pools-and-claims.sql).
import type pg from 'pg';
import { podTemplateHash, type PoolSpec } from '../config/pool-spec';
import { workerProtocolV2, type TransitionOrigin, type WorkerState, type BreakerState } from '../common';
import { RegistryUnavailableError } from './errors';
import type { DemandObservation } from '../config/warm-capacity';
import { liveRowPredicate } from './lifecycle-store';

/** Who reserves a pool's refills: the first transition of the workers warm capacity's reaction time counts. */
const poolSpawnOrigin: TransitionOrigin = 'pool_workflow';

export const poolStatuses = ['active', 'draining', 'drained'] as const;
export type PoolStatus = (typeof poolStatuses)[number];

export interface PoolRecord {
  name: string;
  spec: PoolSpec;
  generation: number;
  /** Changes of what the workers run (the pod template), not of the pool's sizes (decision 0036). */
  templateGeneration: number;
  status: PoolStatus;
  breakerState: BreakerState;
  createdAt: Date;
  updatedAt: Date;
}

export interface PoolInventory {
  /** Live (non-terminal) workers by state; idle and hot_idle ones already asked to drain count as draining. */
  counts: Partial<Record<WorkerState, number>>;
  live: number;
  /** State of each asked-about worker (absent: no row). */
  asked: Record<string, WorkerState>;
  /** Idle workers of an older template generation than the one given (0 without one). */
  staleIdle: number;
  /** Failure reason of each asked-about worker that has one (e.g. a lost spawn's). */
  askedReasons: Record<string, string>;
}

export type ReserveSlotResult =
  | { outcome: 'reserved' | 'exists' | 'pool_not_found' | 'pool_draining' | 'breaker_open' }
  | { outcome: 'at_capacity'; live: number; maxWorkers: number };

type Row = Record<string, unknown>;

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

function toPool(row: Row): PoolRecord {
  return {
    name: String(row.name),
    spec: row.spec as PoolSpec,
    generation: Number(row.generation),
    templateGeneration: Number(row.template_generation ?? 1),
    status: row.status as PoolStatus,
    breakerState: row.breaker_state as BreakerState,
    createdAt: new Date(row.created_at as string),
    updatedAt: new Date(row.updated_at as string),
  };
}

export class PoolStore {
  constructor(private readonly db: pg.Pool) {}

  /**
   * Creates or updates a pool. Idempotent: the same spec again changes nothing (same
   * generation). A drained pool applied again becomes active; a draining one, or one whose worker
   * protocol would change before it has drained, is left as it is (the caller sees the stored row).
   */
  async applyPool(spec: PoolSpec): Promise<{ pool: PoolRecord; created: boolean; changed: boolean }> {
    // jsonb equality ignores key order, so "the same spec" compares equal however it was written.
    // `before` must not lock: a row the upsert already changed in this statement is invisible to FOR UPDATE.
    const json = JSON.stringify(spec);
    const rows = await this.query(
      `WITH before AS (SELECT generation, status FROM pools WHERE name = $1),
       upserted AS (
         INSERT INTO pools (name, spec, template_hash) VALUES ($1, $2::jsonb, $4)
         ON CONFLICT (name) DO UPDATE SET
           spec = EXCLUDED.spec,
           generation = CASE WHEN pools.spec = EXCLUDED.spec THEN pools.generation ELSE pools.generation + 1 END,
           -- What the workers run (decision 0036): a pool from before the hash existed keeps its generation.
           template_generation = CASE WHEN pools.template_hash IS NULL OR pools.template_hash = EXCLUDED.template_hash
             THEN pools.template_generation ELSE pools.template_generation + 1 END,
           template_hash = EXCLUDED.template_hash,
           status = CASE WHEN pools.status = 'drained' THEN 'active' ELSE pools.status END,
           breaker_state = CASE WHEN pools.status = 'drained' THEN 'closed' ELSE pools.breaker_state END,
           updated_at = CASE WHEN pools.spec = EXCLUDED.spec AND pools.status <> 'drained' THEN pools.updated_at ELSE now() END
         WHERE pools.status <> 'draining'
           -- A pool's worker protocol is fixed while it has workers (their keys and images speak it).
           AND (pools.status = 'drained'
                OR coalesce(pools.spec->>'workerProtocol', $3) = EXCLUDED.spec->>'workerProtocol')
         RETURNING *
       )
       SELECT u.*, (SELECT generation FROM before) AS generation_before, (SELECT status FROM before) AS status_before
       FROM upserted u
       UNION ALL
       SELECT p.*, p.generation, p.status FROM pools p WHERE p.name = $1 AND NOT EXISTS (SELECT 1 FROM upserted)`,
      [spec.name, json, workerProtocolV2, podTemplateHash(spec)],
    );
    const row = rows[0];
    const pool = toPool(row);
    const created = row.generation_before == null;
    const changed = created || Number(row.generation_before) !== pool.generation || row.status_before === 'drained';
    return { pool, created, changed };
  }

  async getPool(name: string): Promise<PoolRecord | null> {
    const rows = await this.query(`SELECT * FROM pools WHERE name = $1`, [name]);
    return rows[0] ? toPool(rows[0]) : null;
  }

  async listPools(): Promise<PoolRecord[]> {
    return (await this.query(`SELECT * FROM pools ORDER BY name`, [])).map(toPool);
  }

  /** Stops new claims at once (the pool workflow then drains the workers). Idempotent. */
  async markDraining(name: string): Promise<PoolRecord | null> {
    const rows = await this.query(
      `UPDATE pools SET status = CASE WHEN status = 'drained' THEN status ELSE 'draining' END, updated_at = now()
       WHERE name = $1 RETURNING *`,
      [name],
    );
    return rows[0] ? toPool(rows[0]) : null;
  }

  /** The pool workflow's last word on a drain: only a draining pool becomes drained. */
  async markDrained(name: string): Promise<void> {
    await this.query(
      `UPDATE pools SET status = 'drained', updated_at = now() WHERE name = $1 AND status = 'draining'`,
      [name],
    );
  }

  /**
   * Forgets a drained pool: its row and its claims (a drained pool answers no claim, so no lease
   * is lost). Worker rows and their audit trail stay for `corral history`. Refuses anything not
   * drained, so a running pool can never lose its row under its workflow.
   */
  async deleteDrainedPool(name: string): Promise<'deleted' | 'not_found' | 'not_drained'> {
    const rows = await this.query(
      `WITH doomed AS (DELETE FROM pools WHERE name = $1 AND status = 'drained' RETURNING name),
            forgotten AS (DELETE FROM claims WHERE pool IN (SELECT name FROM doomed))
       SELECT (SELECT count(*) FROM doomed)::int AS deleted,
              (SELECT count(*) FROM pools WHERE name = $1)::int AS present`,
      [name],
    );
    if (Number(rows[0]?.deleted) > 0) return 'deleted';
    return Number(rows[0]?.present) > 0 ? 'not_drained' : 'not_found';
  }

  /**
   * Records the pool workflow's breaker. With a `sequence` the write is fenced: applied only when
   * it is greater than the stored one (a stale statement — an older attempt, an older run — is
   * refused, whatever state it carries), and the sequence advances even when the state is the
   * same, so every re-assertion fences everything older. Without one (pool runs from before the
   * fence) the state is written as before. Answers whether the write was applied.
   */
  async recordBreakerState(name: string, state: BreakerState, sequence?: number): Promise<{ applied: boolean }> {
    if (sequence === undefined) {
      await this.query(
        `UPDATE pools SET breaker_state = $2, updated_at = now() WHERE name = $1 AND breaker_state <> $2`,
        [name, state],
      );
      return { applied: true };
    }
    const rows = await this.query(
      `UPDATE pools SET breaker_state = $2, breaker_sequence = $3,
              updated_at = CASE WHEN breaker_state <> $2 THEN now() ELSE updated_at END
        WHERE name = $1 AND breaker_sequence < $3
        RETURNING name`,
      [name, state, sequence],
    );
    return { applied: rows.length > 0 };
  }

  /** The breaker as stored, with the sequence of the write that set it (tests, diagnostics). */
  async breakerRecord(name: string): Promise<{ state: BreakerState; sequence: number } | null> {
    const rows = await this.query(`SELECT breaker_state, breaker_sequence FROM pools WHERE name = $1`, [name]);
    return rows[0]
      ? { state: rows[0].breaker_state as BreakerState, sequence: Number(rows[0].breaker_sequence) }
      : null;
  }

  /** The janitor completed a pass now (database time). */
  async recordJanitorPass(): Promise<void> {
    await this.query(
      `INSERT INTO corral_janitor_passes (singleton, completed_at) VALUES (true, now())
       ON CONFLICT (singleton) DO UPDATE SET completed_at = EXCLUDED.completed_at`,
      [],
    );
  }

  /**
   * Live workers by state, plus the state of each of `ask` (even when terminal), from ONE query:
   * one snapshot, so a worker moving between two reads can never be counted twice or not at all.
   */
  async inventory(pool: string, ask: string[] = [], currentGeneration?: number): Promise<PoolInventory> {
    // Two arms rather than one OR: the live arm reads the live partial index (not the pool's
    // retired and lost rows), the asked-about arm the primary key. Both arms select the same
    // columns, so a live asked-about worker is one row after the UNION.
    const rows = await this.query(
      `SELECT id, state, failure_reason, generation, drain_requested FROM workers WHERE pool = $1 AND ${liveRowPredicate}
       UNION
       SELECT id, state, failure_reason, generation, drain_requested FROM workers WHERE id = ANY ($2::text[]) AND pool = $1`,
      [pool, ask],
    );
    const counts: PoolInventory['counts'] = {};
    const asked: Record<string, WorkerState> = {};
    const askedReasons: Record<string, string> = {};
    const wanted = new Set(ask);
    let live = 0;
    let staleIdle = 0;
    for (const row of rows) {
      const id = String(row.id);
      const state = row.state as WorkerState;
      if (wanted.has(id)) {
        asked[id] = state;
        if (row.failure_reason != null) askedReasons[id] = String(row.failure_reason);
      }
      if (state === 'retired' || state === 'lost') continue;
      // An idle worker already asked to drain (scale-down, eviction, replacement) is leaving: counted
      // as draining, so no turn retires (or keeps counting on) it twice.
      const counted = row.drain_requested === true && (state === 'idle' || state === 'hot_idle') ? 'draining' : state;
      counts[counted] = (counts[counted] ?? 0) + 1;
      live++;
      if (counted === 'idle' && currentGeneration !== undefined && row.generation != null) {
        if (Number(row.generation) < currentGeneration) staleIdle++;
      }
    }
    return { counts, live, asked, askedReasons, staleIdle };
  }

  /**
   * What demand-driven warm capacity reads (decision 0035), in one statement: claims made in the
   * last 10 seconds and the last minute, the most made in any clock minute of the last
   * `coolDownMs`, and the two parts of the replenishment lead time — the mean reservation-to-ready
   * (creation to leaving activating) of those of the pool's 40 most recently created workers that
   * got ready, however long ago (a quiet pool keeps what it last measured), and the mean time from each of the
   * pool's 50 most recent warm claims (not waited; made within the cool-down window and 10 minutes
   * before it, so the scan for them is bounded) to the pool workflow's next reservation within 10 s
   * (null: none yet).
   */
  async observeDemand(pool: string, coolDownMs: number): Promise<DemandObservation> {
    const rows = await this.query(
      `SELECT
         (SELECT count(*) FROM claims c WHERE c.pool = $1 AND c.created_at > now() - interval '10 seconds')::int AS last_ten_seconds,
         (SELECT count(*) FROM claims c WHERE c.pool = $1 AND c.created_at > now() - interval '1 minute')::int AS last_minute,
         (SELECT coalesce(max(n), 0) FROM (
            SELECT count(*) AS n FROM claims c
             WHERE c.pool = $1 AND c.created_at > now() - make_interval(secs => $2 / 1000.0)
             GROUP BY date_trunc('minute', c.created_at)) per_minute)::int AS peak_minute,
         (SELECT avg(r.seconds) FROM (
            SELECT extract(epoch FROM (
                     SELECT min(t.at) FROM worker_transitions t WHERE t.worker_id = w.id AND t.from_state = 'activating'
                   ) - w.created_at) AS seconds
              FROM workers w
             WHERE w.pool = $1
             ORDER BY w.created_at DESC
             LIMIT 40
          ) r WHERE r.seconds IS NOT NULL) AS spawn_seconds,
         (SELECT avg(extract(epoch FROM next_reservation.created_at - warm.created_at)) FROM (
            SELECT c.created_at FROM claims c
             WHERE c.pool = $1 AND c.path = 'warm' AND c.waiting_since IS NULL
               AND c.created_at > now() - make_interval(secs => $2 / 1000.0) - interval '10 minutes'
             ORDER BY c.created_at DESC
             LIMIT 50
          ) warm
          CROSS JOIN LATERAL (
            SELECT w.created_at FROM workers w
             WHERE w.pool = $1 AND w.created_at >= warm.created_at AND w.created_at < warm.created_at + interval '10 seconds'
               AND (SELECT t.origin FROM worker_transitions t WHERE t.worker_id = w.id ORDER BY t.id LIMIT 1) = $3
             ORDER BY w.created_at
             LIMIT 1
          ) next_reservation) AS reaction_seconds`,
      [pool, coolDownMs, poolSpawnOrigin],
    );
    const row = rows[0] ?? {};
    const seconds = (value: unknown) => (value == null ? null : Number(value));
    return {
      claimsLastTenSeconds: Number(row.last_ten_seconds ?? 0),
      claimsLastMinute: Number(row.last_minute ?? 0),
      peakClaimsPerMinute: Number(row.peak_minute ?? 0),
      spawnSeconds: seconds(row.spawn_seconds),
      reactionSeconds: seconds(row.reaction_seconds),
    };
  }

  /** The template generation of the spec a worker's workflow was started with (decision 0036). */
  async recordWorkerGeneration(workerId: string, generation: number): Promise<void> {
    // Written once: a retried start (whose workflow may already run the spec of the first attempt)
    // never relabels it.
    await this.query(`UPDATE workers SET generation = $2 WHERE id = $1 AND generation IS NULL`, [workerId, generation]);
  }

  /** Live workers by template generation and state (`pool describe`). */
  async generationCounts(pool: string): Promise<{ generation: number | null; state: WorkerState; count: number }[]> {
    const rows = await this.query(
      `SELECT generation, state, count(*)::int AS n FROM workers WHERE pool = $1 AND ${liveRowPredicate}
        GROUP BY generation, state ORDER BY generation DESC NULLS LAST, state`,
      [pool],
    );
    return rows.map((r) => ({
      generation: r.generation == null ? null : Number(r.generation),
      state: r.state as WorkerState,
      count: Number(r.n),
    }));
  }

  /** Claims waiting in the pool's queue whose callers still ask (decision 0034). */
  async waitingClaims(pool: string): Promise<number> {
    const rows = await this.query(
      `SELECT count(*)::int AS n FROM claims
        WHERE pool = $1 AND status = 'waiting' AND polled_at > now() - interval '5 seconds' AND pending_until > now()`,
      [pool],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** The pool's current warm-capacity target, for every replica's gauges: written only when it changed. */
  async recordWarmTarget(pool: string, target: { effectiveTarget: number; headroom: number }): Promise<void> {
    await this.query(
      `UPDATE pools SET warm_target = $2, warm_headroom = $3
        WHERE name = $1 AND (warm_target IS DISTINCT FROM $2 OR warm_headroom IS DISTINCT FROM $3)`,
      [pool, target.effectiveTarget, target.headroom],
    );
  }

  /**
   * Scale-down (decision 0035): marks up to `count` of the pool's longest-idle workers as drain
   * requested — only rows still idle, so claims skip them from here on and none is taken from a
   * tenant — and returns their ids for the caller to ask their workflows to drain them.
   */
  async markSurplusIdle(
    pool: string,
    count: number,
    opts: { belowGeneration?: number; keepIdle?: number } = {},
  ): Promise<string[]> {
    // Older template generations first (rolling replacement, decision 0036), then the longest idle;
    // never below `keepIdle` idle workers as they are now (claims may have taken some since the
    // pool's read).
    const rows = await this.query(
      `UPDATE workers w SET drain_requested = true, updated_at = now()
        WHERE w.id IN (
          SELECT x.id FROM workers x
           WHERE x.pool = $1 AND x.state = 'idle' AND NOT x.drain_requested
             AND ($3::integer IS NULL OR x.generation < $3)
           ORDER BY x.generation NULLS FIRST, x.state_since, x.id
           LIMIT least($2, greatest(0, (
             SELECT count(*) FROM workers i WHERE i.pool = $1 AND i.state = 'idle' AND NOT i.drain_requested
           ) - $4))
           FOR UPDATE SKIP LOCKED)
        RETURNING w.id`,
      [pool, count, opts.belowGeneration ?? null, opts.keepIdle ?? 0],
    );
    return rows.map((r) => String(r.id));
  }

  /** Live workers of a pool (for drain): id, state. */
  async liveWorkers(pool: string): Promise<{ id: string; state: WorkerState }[]> {
    const rows = await this.query(`SELECT id, state FROM workers WHERE pool = $1 AND ${liveRowPredicate} ORDER BY id`, [
      pool,
    ]);
    return rows.map((r) => ({ id: String(r.id), state: r.state as WorkerState }));
  }

  /** Capacity for one new worker, checked and taken atomically (see corral_reserve_worker_slot). */
  async reserveWorkerSlot(input: {
    pool: string;
    workerId: string;
    image: string;
    origin: TransitionOrigin;
    requireClosedBreaker: boolean;
  }): Promise<ReserveSlotResult> {
    const rows = await this.query(`SELECT * FROM corral_reserve_worker_slot($1, $2, $3, $4, $5)`, [
      input.pool,
      input.workerId,
      input.image,
      input.origin,
      input.requireClosedBreaker,
    ]);
    const row = rows[0];
    if (row.outcome === 'at_capacity') {
      return { outcome: 'at_capacity', live: Number(row.live_workers), maxWorkers: Number(row.max_workers) };
    }
    return { outcome: row.outcome as Exclude<ReserveSlotResult['outcome'], 'at_capacity'> };
  }

  private async query(sql: string, params: unknown[]): Promise<Row[]> {
    try {
      return (await this.db.query(sql, params)).rows as Row[];
    } catch (err) {
      throw new RegistryUnavailableError(describeError(err));
    }
  }
}
