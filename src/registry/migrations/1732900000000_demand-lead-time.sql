-- Up Migration

-- Demand-driven warm capacity measures the replenishment lead time (decision 0035): from a warm
-- claim to the pool's next reservation of a worker, then to that worker ready. Both read a pool's
-- workers by creation time; without this index every pool turn of a demand pool would scan the
-- pool's rows (retired ones included, until retention removes them).
CREATE INDEX workers_pool_created_idx ON workers (pool, created_at);

-- Down Migration

DROP INDEX workers_pool_created_idx;
