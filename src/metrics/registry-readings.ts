// Read-only registry queries behind metrics and readiness: what a scrape reports (live workers by
// pool/image/state, each pool's breaker) and the timestamps a duration is derived from. Each one
// is a single bounded statement with its own short client-side timeout, so a slow registry makes
// a scrape or a probe answer without those numbers, never hang.
import type pg from 'pg';
import type { WorkerState, BreakerState } from '../common';
import { liveRowPredicate } from '../registry/lifecycle-store';
import { withTimeout } from './bounded';

export interface LiveWorkerCount {
  pool: string;
  image: string;
  /** null: the pool exists (with this configured image) but the row carries no count. */
  state: WorkerState | null;
  count: number;
}

/** At most this many (pool, image, state) rows per scrape: a cardinality bound, not a real limit. */
export const maxInventoryRows = 10_000;

export class RegistryReadings {
  constructor(
    private readonly db: pg.Pool,
    private readonly timeoutMs = 2_000,
  ) {}

  private async rows(text: string, values: unknown[], timeoutMs = this.timeoutMs): Promise<Record<string, unknown>[]> {
    // query_timeout bounds the wait client side (the pool's statement_timeout bounds the server).
    const config = { text, values, query_timeout: timeoutMs } as pg.QueryConfig;
    return (await this.db.query(config)).rows as Record<string, unknown>[];
  }

  /** Each active pool's warm-capacity target and headroom as its last pool turn recorded them (decision 0035). */
  async warmCapacityTargets(): Promise<{ pool: string; effectiveTarget: number; headroom: number }[]> {
    const rows = await this.rows(
      `SELECT name, warm_target, warm_headroom FROM pools WHERE status = 'active' AND warm_target IS NOT NULL`,
      [],
    );
    return rows.map((r) => ({
      pool: String(r.name),
      effectiveTarget: Number(r.warm_target),
      headroom: Number(r.warm_headroom ?? 0),
    }));
  }

  /** Claims waiting per pool whose callers still ask (decision 0034): the queue-depth gauge. */
  async claimQueueDepths(): Promise<{ pool: string; waiting: number }[]> {
    const rows = await this.rows(
      `SELECT pool, count(*)::int AS waiting FROM claims
        WHERE status = 'waiting' AND polled_at > now() - interval '5 seconds' AND pending_until > now()
        GROUP BY pool`,
      [],
    );
    return rows.map((r) => ({ pool: String(r.pool), waiting: Number(r.waiting) }));
  }

  /** Whether the registry answers a trivial statement within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<boolean> {
    try {
      // Bounded twice: the query itself, and the wait for a pool connection before it.
      await withTimeout(this.rows('SELECT 1 AS ok', [], timeoutMs), timeoutMs, 'registry ping');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Live (non-terminal) workers by pool, image and state, plus one `state: null` row per pool
   * that is not drained with the image its spec names, so a pool with no worker in some state
   * still reports 0 there. Reads the live partial index (the predicate is spelled as the index's):
   * cost follows live workers, not the retired and lost rows kept for the retention period.
   */
  async liveWorkerCounts(): Promise<LiveWorkerCount[]> {
    const rows = await this.rows(
      `SELECT w.pool, w.image, w.state, count(*)::int AS n
         FROM workers w
        WHERE w.${liveRowPredicate} AND EXISTS (SELECT 1 FROM pools p WHERE p.name = w.pool)
        GROUP BY w.pool, w.image, w.state
       UNION ALL
       SELECT p.name, p.spec ->> 'image', NULL, 0 FROM pools p WHERE p.status <> 'drained'
       LIMIT $1`,
      [maxInventoryRows],
    );
    return rows.map((r) => ({
      pool: String(r.pool),
      image: r.image == null ? 'unknown' : String(r.image),
      state: (r.state as WorkerState | null) ?? null,
      count: Number(r.n),
    }));
  }

  /** Every pool's spawn breaker as the pool workflow last recorded it. */
  async breakerStates(): Promise<{ pool: string; state: BreakerState }[]> {
    const rows = await this.rows(`SELECT name, breaker_state FROM pools ORDER BY name LIMIT $1`, [maxInventoryRows]);
    return rows.map((r) => ({ pool: String(r.name), state: r.breaker_state as BreakerState }));
  }

  /** Seconds since the janitor last completed a pass (database time), or null if it never has. */
  async secondsSinceJanitorPass(): Promise<number | null> {
    const rows = await this.rows(
      `SELECT extract(epoch FROM (now() - completed_at))::float8 AS seconds FROM corral_janitor_passes LIMIT 1`,
      [],
    );
    return rows[0] ? Math.max(0, Number(rows[0].seconds)) : null;
  }

  /**
   * Seconds from the worker's latest entry into `state` (its audit trail) to `until`; null when
   * the trail has no such entry. Both ends are database time.
   */
  async secondsInState(workerId: string, state: WorkerState, until: Date): Promise<number | null> {
    const rows = await this.rows(
      `SELECT extract(epoch FROM ($3::timestamptz - at))::float8 AS seconds
         FROM worker_transitions
        WHERE worker_id = $1 AND to_state = $2 AND from_state IS DISTINCT FROM $2
        ORDER BY id DESC
        LIMIT 1`,
      [workerId, state, until.toISOString()],
    );
    return rows[0] ? Number(rows[0].seconds) : null;
  }
}
