// The bench's baseline: a warm claim as ONE SQL statement, what the removed corral_claim_idle
// did (and nothing more: no claim row, no hand-over, no notification). A repeated request id
// answers the worker it holds; otherwise the tenant's own hot_idle worker, then the longest idle
// one, is locked (SKIP LOCKED: concurrent claimers take different rows without waiting), moved
// to claimed at epoch + 1 for the tenant and request id, and the audit row is appended, all in
// one statement (data-modifying CTEs), so one round trip and one implicit transaction.
// A concurrent twin of the same request id fails on workers_live_claim_request_idx (the bench
// never sends one).
import type pg from 'pg';

export type RawClaimResult =
  | { outcome: 'claimed' | 'already_claimed'; workerId: string; epoch: number; endpoint: string | null }
  | { outcome: 'none_idle' };

const claimSql = `
WITH existing AS (
  SELECT w.id, w.state, w.epoch FROM workers w
  WHERE w.pool = $1 AND w.claim_request_id = $3 AND w.state = 'claimed'
), hot AS (
  SELECT w.id, w.state, w.epoch FROM workers w
  WHERE NOT EXISTS (SELECT 1 FROM existing)
    AND w.pool = $1 AND w.state = 'hot_idle' AND w.tenant = $2 AND NOT w.drain_requested
  ORDER BY w.state_since, w.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED
), idle AS (
  SELECT w.id, w.state, w.epoch FROM workers w
  WHERE NOT EXISTS (SELECT 1 FROM existing) AND NOT EXISTS (SELECT 1 FROM hot)
    AND w.pool = $1 AND w.state = 'idle' AND NOT w.drain_requested
  ORDER BY w.state_since, w.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED
), picked AS (
  SELECT * FROM hot UNION ALL SELECT * FROM idle
), claimed AS (
  UPDATE workers w SET state = 'claimed', epoch = w.epoch + 1, tenant = $2, claim_request_id = $3,
    state_since = now(), updated_at = now()
  FROM picked p
  WHERE w.id = p.id
  RETURNING w.id, w.epoch, w.endpoint, p.state AS from_state, p.epoch AS epoch_before
), audit AS (
  INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant)
  SELECT c.id, c.from_state, 'claimed', c.epoch_before, c.epoch, 'claim', $4, $2 FROM claimed c
)
SELECT 'claimed' AS outcome, c.id, c.epoch, c.endpoint FROM claimed c
UNION ALL
SELECT 'already_claimed', e.id, e.epoch, w.endpoint FROM existing e JOIN workers w ON w.id = e.id`;

export async function rawSqlClaim(
  db: pg.Pool,
  input: { pool: string; tenant: string; requestId: string; origin: string },
): Promise<RawClaimResult> {
  const { rows } = await db.query(claimSql, [input.pool, input.tenant, input.requestId, input.origin]);
  const row = rows[0] as { outcome: string; id: string; epoch: string | number; endpoint: string | null } | undefined;
  if (!row) return { outcome: 'none_idle' };
  return {
    outcome: row.outcome === 'already_claimed' ? 'already_claimed' : 'claimed',
    workerId: row.id,
    epoch: Number(row.epoch),
    endpoint: row.endpoint,
  };
}
