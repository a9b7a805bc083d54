-- Up Migration

-- Pools: the spec an operator applied, its generation (bumped only when the spec really
-- changes, so applying the same spec twice is a no-op), whether it takes claims, and the spawn
-- breaker state the pool workflow last recorded (the cold path reads it).
CREATE TABLE pools (
  name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
  spec jsonb NOT NULL,
  generation integer NOT NULL DEFAULT 1 CHECK (generation >= 1),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'draining', 'drained')),
  breaker_state text NOT NULL DEFAULT 'closed' CHECK (breaker_state IN ('closed', 'open', 'half_open')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per claim request: while `pending` it stops a second caller with the same request id
-- from starting a second claim; once `granted` it answers every repeat with the same lease.
CREATE TABLE claims (
  pool text NOT NULL,
  request_id text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
  tenant text NOT NULL CHECK (length(tenant) BETWEEN 1 AND 128),
  status text NOT NULL CHECK (status IN ('pending', 'granted')),
  worker_id text,
  epoch bigint,
  endpoint text,
  path text CHECK (path IN ('warm', 'cold')),
  -- A pending claim whose caller died is taken over by a repeat after this.
  pending_until timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pool, request_id)
);

-- A warm worker picked for a claim is reserved for a few seconds, so concurrent claims send
-- their update to different worker workflows. The reservation is not a change of holder (the
-- claim itself is the worker workflow's compare-and-set), so it does not move the epoch.
ALTER TABLE workers ADD COLUMN reserved_by text, ADD COLUMN reserved_until timestamptz;

-- Reserves one warm worker of a pool for a claim: the tenant's own hot_idle worker first, then
-- the longest idle. SKIP LOCKED plus the row update keep two concurrent claims off one worker.
CREATE FUNCTION corral_reserve_warm(p_pool text, p_request_id text, p_tenant text, p_reserve_ms integer)
RETURNS TABLE (worker_id text, from_state text, epoch bigint)
LANGUAGE plpgsql AS $$
DECLARE
  cand workers%ROWTYPE;
BEGIN
  SELECT * INTO cand FROM workers w
  WHERE w.pool = p_pool AND w.state = 'hot_idle' AND w.tenant = p_tenant
    AND (w.reserved_until IS NULL OR w.reserved_until < now())
  ORDER BY w.state_since, w.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    SELECT * INTO cand FROM workers w
    WHERE w.pool = p_pool AND w.state = 'idle'
      AND (w.reserved_until IS NULL OR w.reserved_until < now())
    ORDER BY w.state_since, w.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
  END IF;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  UPDATE workers w SET reserved_by = p_request_id, reserved_until = now() + make_interval(secs => p_reserve_ms / 1000.0)
  WHERE w.id = cand.id;
  UPDATE claims c SET worker_id = cand.id, updated_at = now() WHERE c.pool = p_pool AND c.request_id = p_request_id;
  RETURN QUERY SELECT cand.id, cand.state, cand.epoch;
END;
$$;

-- The first round trip of a claim. Answers a repeat from the claims table, refuses unknown and
-- draining pools, records the request as pending and reserves a warm worker if there is one.
-- Outcomes: granted | in_progress | tenant_mismatch | pool_not_found | pool_draining | reserved | no_warm_worker.
CREATE FUNCTION corral_begin_claim(p_pool text, p_request_id text, p_tenant text, p_pending_ms integer, p_reserve_ms integer)
RETURNS TABLE (outcome text, worker_id text, epoch bigint, endpoint text, path text, from_state text)
LANGUAGE plpgsql AS $$
DECLARE
  pl pools%ROWTYPE;
  cl claims%ROWTYPE;
  live workers%ROWTYPE;
  res record;
BEGIN
  SELECT * INTO pl FROM pools p WHERE p.name = p_pool;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'pool_not_found', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text;
    RETURN;
  END IF;

  SELECT * INTO cl FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id FOR UPDATE;
  IF FOUND THEN
    IF cl.tenant <> p_tenant THEN
      RETURN QUERY SELECT 'tenant_mismatch', NULL::text, NULL::bigint, NULL::text, NULL::text, cl.tenant;
      RETURN;
    END IF;
    IF cl.status = 'granted' THEN
      RETURN QUERY SELECT 'granted', cl.worker_id, cl.epoch, cl.endpoint, cl.path, NULL::text;
      RETURN;
    END IF;
    IF cl.pending_until > now() THEN
      RETURN QUERY SELECT 'in_progress', cl.worker_id, NULL::bigint, NULL::text, cl.path, NULL::text;
      RETURN;
    END IF;
    -- The caller that started this claim went away. If its claim landed, the worker row says so.
    SELECT * INTO live FROM workers w
    WHERE w.pool = p_pool AND w.claim_request_id = p_request_id AND w.state = 'claimed';
    IF FOUND THEN
      UPDATE claims c SET status = 'granted', worker_id = live.id, epoch = live.epoch, endpoint = live.endpoint,
        path = coalesce(c.path, 'warm'), updated_at = now()
      WHERE c.pool = p_pool AND c.request_id = p_request_id;
      RETURN QUERY SELECT 'granted', live.id, live.epoch, live.endpoint, coalesce(cl.path, 'warm'), NULL::text;
      RETURN;
    END IF;
    UPDATE claims c SET pending_until = now() + make_interval(secs => p_pending_ms / 1000.0), updated_at = now()
    WHERE c.pool = p_pool AND c.request_id = p_request_id;
  ELSE
    IF pl.status <> 'active' THEN
      RETURN QUERY SELECT 'pool_draining', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text;
      RETURN;
    END IF;
    INSERT INTO claims (pool, request_id, tenant, status, pending_until)
    VALUES (p_pool, p_request_id, p_tenant, 'pending', now() + make_interval(secs => p_pending_ms / 1000.0))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      -- A concurrent caller with the same request id got there first.
      RETURN QUERY SELECT 'in_progress', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text;
      RETURN;
    END IF;
  END IF;

  IF pl.status <> 'active' THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id AND c.status = 'pending';
    RETURN QUERY SELECT 'pool_draining', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text;
    RETURN;
  END IF;
  SELECT * INTO res FROM corral_reserve_warm(p_pool, p_request_id, p_tenant, p_reserve_ms);
  IF res.worker_id IS NULL THEN
    RETURN QUERY SELECT 'no_warm_worker', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text;
    RETURN;
  END IF;
  RETURN QUERY SELECT 'reserved', res.worker_id, res.epoch, NULL::text, 'warm'::text, res.from_state;
END;
$$;

-- Reserves capacity for one new worker: under the pool row's lock, counts the pool's live
-- workers and inserts the new row (spawning, epoch 1, with its audit row) only below maxWorkers.
-- Both the pool workflow's refills and the claim cold path come through here, so two spawners
-- can never overshoot maxWorkers together.
-- Outcomes: reserved | exists | at_capacity | pool_not_found | pool_draining | breaker_open.
CREATE FUNCTION corral_reserve_worker_slot(
  p_pool text,
  p_worker_id text,
  p_image text,
  p_origin text,
  p_require_closed_breaker boolean
) RETURNS TABLE (outcome text, live_workers integer, max_workers integer)
LANGUAGE plpgsql AS $$
DECLARE
  pl pools%ROWTYPE;
  live integer;
  cap integer;
BEGIN
  SELECT * INTO pl FROM pools p WHERE p.name = p_pool FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'pool_not_found', NULL::integer, NULL::integer;
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM workers w WHERE w.id = p_worker_id) THEN
    RETURN QUERY SELECT 'exists', NULL::integer, NULL::integer;
    RETURN;
  END IF;
  cap := (pl.spec ->> 'maxWorkers')::integer;
  IF pl.status <> 'active' THEN
    RETURN QUERY SELECT 'pool_draining', NULL::integer, cap;
    RETURN;
  END IF;
  IF p_require_closed_breaker AND pl.breaker_state <> 'closed' THEN
    RETURN QUERY SELECT 'breaker_open', NULL::integer, cap;
    RETURN;
  END IF;
  SELECT count(*) INTO live FROM workers w WHERE w.pool = p_pool AND w.state NOT IN ('retired', 'lost');
  IF live >= cap THEN
    RETURN QUERY SELECT 'at_capacity', live, cap;
    RETURN;
  END IF;
  INSERT INTO workers (id, pool, image, state, epoch) VALUES (p_worker_id, p_pool, p_image, 'spawning', 1);
  INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
  VALUES (p_worker_id, NULL, 'spawning', NULL, 1, 'create', p_origin);
  RETURN QUERY SELECT 'reserved', live + 1, cap;
END;
$$;

-- Down Migration

DROP FUNCTION corral_reserve_worker_slot(text, text, text, text, boolean);
DROP FUNCTION corral_begin_claim(text, text, text, integer, integer);
DROP FUNCTION corral_reserve_warm(text, text, text, integer);
ALTER TABLE workers DROP COLUMN reserved_by, DROP COLUMN reserved_until;
DROP TABLE claims;
DROP TABLE pools;
