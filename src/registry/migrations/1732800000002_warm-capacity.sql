-- Up Migration

-- Demand-driven warm capacity (docs/decisions/0035-demand-driven-warm-capacity.md). The pool's
-- readPool counts the claims made on a pool in the last minute and the last cool-down window
-- (an index range per pool, not a scan of every pool's claims) and records the target it
-- computed on the pool row, where every replica's scrape reads it
-- (corral_warm_capacity_effective_target, corral_warm_capacity_headroom).
CREATE INDEX claims_pool_created_idx ON claims (pool, created_at);
ALTER TABLE pools ADD COLUMN warm_target integer, ADD COLUMN warm_headroom integer;

-- Down Migration

ALTER TABLE pools DROP COLUMN warm_headroom, DROP COLUMN warm_target;
DROP INDEX claims_pool_created_idx;
