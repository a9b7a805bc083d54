-- Up Migration

-- Registry at fleet scale (docs/decisions/0015-registry-retention-and-janitor-at-scale.md). Retired
-- and lost rows pile up for the retention period (7 days by default: tens of thousands of rows
-- at a steady churn), while every hot-path query asks about live workers only. The indexes below
-- are partial, so those queries walk live rows and nothing else, and retention walks terminal
-- rows oldest first without touching live ones.
--
-- The predicates are spelled exactly as the queries spell them (`state NOT IN ('retired', 'lost')`,
-- or a state the planner can prove is live, e.g. `state = 'idle'`): a partial index is only used
-- when the query's WHERE clause implies its predicate.

-- Live rows by pool and state, oldest in their state first: the maxWorkers gate's count
-- (corral_reserve_worker_slot, corral_claim's cold path), the warm claim's two probes (the tenant's
-- hot_idle worker, then the longest idle: ORDER BY state_since, id LIMIT 1), the pool workflow's
-- inventory and drain list, the inventory gauges, the janitor's live rows and overdue rows.
CREATE INDEX workers_live_pool_state_idx ON workers (pool, state, state_since, id)
  WHERE state NOT IN ('retired', 'lost');

-- Terminal rows, oldest end first: what retention deletes, in bounded batches.
CREATE INDEX workers_terminal_since_idx ON workers (state_since, id) WHERE state IN ('retired', 'lost');

-- The full (pool, state, state_since) index covered every terminal row too; the live index above
-- serves every query it served, at the size of the live fleet.
DROP INDEX workers_pool_state_idx;

-- Claims by age: retention deletes ended claims older than the period, oldest first.
CREATE INDEX claims_updated_idx ON claims (updated_at);

-- Down Migration

DROP INDEX claims_updated_idx;
CREATE INDEX workers_pool_state_idx ON workers (pool, state, state_since);
DROP INDEX workers_terminal_since_idx;
DROP INDEX workers_live_pool_state_idx;
