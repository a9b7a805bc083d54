-- Up Migration

-- Tenant quotas (docs/decisions/0033-tenant-quotas.md). A pool's spec may cap what one tenant
-- holds: `maxPerTenant`, with per-tenant `tenantQuotas` overrides (0 bars a tenant). corral_claim
-- refuses a claim over quota at once with `quota_exceeded` (live_workers = what the tenant holds,
-- max_workers = its quota), before it takes an idle worker or reserves a cold slot; a claim that
-- takes the tenant's own hot_idle worker changes nothing the quota counts, so it is never refused.
-- Only the function body changes (same signature), so callers see one new outcome.

-- What a tenant holds, counted on every claim of a pool with a quota: one index probe.
CREATE INDEX workers_tenant_held_idx ON workers (pool, tenant) WHERE state IN ('claimed', 'hot_idle');

CREATE OR REPLACE FUNCTION corral_claim(
  p_pool text,
  p_request_id text,
  p_tenant text,
  p_new_worker_id text,
  p_pending_ms integer,
  p_ack_ms integer,
  p_origin text
) RETURNS TABLE (outcome text, worker_id text, epoch bigint, endpoint text, path text, from_state text,
                 live_workers integer, max_workers integer, image text)
LANGUAGE plpgsql AS $$
DECLARE
  pl pools%ROWTYPE;
  cl claims%ROWTYPE;
  w workers%ROWTYPE;
  upd workers%ROWTYPE;
  live integer;
  cap integer;
  quota integer;
  held integer;
BEGIN
  SELECT * INTO pl FROM pools p WHERE p.name = p_pool;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'pool_not_found', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::text;
    RETURN;
  END IF;

  -- The claim row serialises every call with this request id: the first inserts it, a
  -- concurrent twin waits on the insert and then finds it.
  SELECT * INTO cl FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id FOR UPDATE;
  IF NOT FOUND THEN
    IF pl.status <> 'active' THEN
      RETURN QUERY SELECT 'pool_draining', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::text;
      RETURN;
    END IF;
    INSERT INTO claims (pool, request_id, tenant, status, pending_until)
    VALUES (p_pool, p_request_id, p_tenant, 'pending', now() + make_interval(secs => p_pending_ms / 1000.0))
    ON CONFLICT DO NOTHING
    RETURNING * INTO cl;
    IF NOT FOUND THEN
      SELECT * INTO cl FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id FOR UPDATE;
    END IF;
  END IF;

  IF cl.tenant <> p_tenant THEN
    RETURN QUERY SELECT 'tenant_mismatch', NULL::text, NULL::bigint, NULL::text, NULL::text, cl.tenant, NULL::integer, NULL::integer, NULL::text;
    RETURN;
  END IF;
  IF cl.status IN ('granted', 'reclaimed') THEN
    SELECT * INTO w FROM workers x WHERE x.id = cl.worker_id;
    IF FOUND AND w.epoch = cl.epoch AND w.state = 'claimed' THEN
      RETURN QUERY SELECT 'repeat', cl.worker_id, cl.epoch, cl.endpoint, cl.path, NULL::text, NULL::integer, NULL::integer, NULL::text;
    ELSE
      RETURN QUERY SELECT 'lease_ended', cl.worker_id, cl.epoch, cl.endpoint, cl.path, w.state, NULL::integer, NULL::integer, NULL::text;
    END IF;
    RETURN;
  END IF;
  -- Pending: a cold worker is being made for it, unless that worker already ended.
  IF cl.worker_id IS NOT NULL THEN
    SELECT * INTO w FROM workers x WHERE x.id = cl.worker_id;
    IF FOUND AND w.state NOT IN ('retired', 'lost') THEN
      RETURN QUERY SELECT 'in_progress', cl.worker_id, NULL::bigint, NULL::text, 'cold'::text, w.state, NULL::integer, NULL::integer, NULL::text;
      RETURN;
    END IF;
  END IF;
  IF pl.status <> 'active' THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'pool_draining', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::text;
    RETURN;
  END IF;

  -- Warm: the tenant's own hot_idle worker first, then the longest idle. Two index-ordered probes
  -- on (pool, state, state_since) keep the cost flat however many workers are idle.
  SELECT * INTO w FROM workers x
  WHERE x.pool = p_pool AND x.state = 'hot_idle' AND x.tenant = p_tenant AND NOT x.drain_requested
  ORDER BY x.state_since, x.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    -- Not the tenant's own hot_idle worker: one more for this tenant, so its quota decides first
    -- (maxPerTenant, or its tenantQuotas override). What it holds: claimed and hot_idle workers,
    -- and cold workers being made for its other pending claims. The advisory lock serialises one
    -- tenant's claims on one pool between the count and the take (no lock without a quota).
    quota := COALESCE((pl.spec -> 'tenantQuotas' ->> p_tenant)::integer, (pl.spec ->> 'maxPerTenant')::integer);
    IF quota IS NOT NULL THEN
      PERFORM pg_advisory_xact_lock(hashtextextended('corral_tenant_quota/' || p_pool || '/' || p_tenant, 0));
      SELECT count(*) INTO held FROM workers x
      WHERE x.pool = p_pool AND x.tenant = p_tenant AND x.state IN ('claimed', 'hot_idle');
      held := held + (SELECT count(*) FROM claims c
        WHERE c.pool = p_pool AND c.tenant = p_tenant AND c.status = 'pending' AND c.worker_id IS NOT NULL
          AND c.request_id <> p_request_id);
      IF held >= quota THEN
        DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
        RETURN QUERY SELECT 'quota_exceeded', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, held, quota, NULL::text;
        RETURN;
      END IF;
    END IF;
    SELECT * INTO w FROM workers x
    WHERE x.pool = p_pool AND x.state = 'idle' AND NOT x.drain_requested
    ORDER BY x.state_since, x.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
  END IF;
  IF FOUND THEN
    UPDATE workers x SET state = 'claimed', epoch = x.epoch + 1, tenant = p_tenant, claim_request_id = p_request_id,
      state_since = now(), updated_at = now()
    WHERE x.id = w.id
    RETURNING * INTO upd;
    INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant)
    VALUES (upd.id, w.state, 'claimed', w.epoch, upd.epoch, 'claim', p_origin, p_tenant);
    UPDATE claims c SET status = 'granted', worker_id = upd.id, epoch = upd.epoch, endpoint = upd.endpoint, path = 'warm',
      granted_at = now(), ack_by = now() + make_interval(secs => p_ack_ms / 1000.0), acknowledged_at = NULL,
      updated_at = now()
    WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'granted', upd.id, upd.epoch, upd.endpoint, 'warm'::text, w.state, NULL::integer, NULL::integer, upd.image;
    RETURN;
  END IF;

  -- Cold: a slot under the pool row's lock (the gate refills share), refused while the breaker is not closed.
  SELECT * INTO pl FROM pools p WHERE p.name = p_pool FOR UPDATE;
  cap := (pl.spec ->> 'maxWorkers')::integer;
  IF pl.breaker_state <> 'closed' THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'breaker_open', NULL::text, NULL::bigint, NULL::text, NULL::text, pl.breaker_state, NULL::integer, cap, NULL::text;
    RETURN;
  END IF;
  SELECT count(*) INTO live FROM workers x WHERE x.pool = p_pool AND x.state NOT IN ('retired', 'lost');
  IF live >= cap THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'at_capacity', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, live, cap, NULL::text;
    RETURN;
  END IF;
  INSERT INTO workers (id, pool, image, state, epoch) VALUES (p_new_worker_id, p_pool, pl.spec ->> 'image', 'spawning', 1);
  INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
  VALUES (p_new_worker_id, NULL, 'spawning', NULL, 1, 'create', p_origin);
  UPDATE claims c SET worker_id = p_new_worker_id, path = 'cold', epoch = NULL, endpoint = NULL,
    pending_until = now() + make_interval(secs => p_pending_ms / 1000.0), updated_at = now()
  WHERE c.pool = p_pool AND c.request_id = p_request_id;
  RETURN QUERY SELECT 'cold', p_new_worker_id, NULL::bigint, NULL::text, 'cold'::text, NULL::text, live + 1, cap, pl.spec ->> 'image';
END;
$$;

-- Down Migration

CREATE OR REPLACE FUNCTION corral_claim(
  p_pool text,
  p_request_id text,
  p_tenant text,
  p_new_worker_id text,
  p_pending_ms integer,
  p_ack_ms integer,
  p_origin text
) RETURNS TABLE (outcome text, worker_id text, epoch bigint, endpoint text, path text, from_state text,
                 live_workers integer, max_workers integer, image text)
LANGUAGE plpgsql AS $$
DECLARE
  pl pools%ROWTYPE;
  cl claims%ROWTYPE;
  w workers%ROWTYPE;
  upd workers%ROWTYPE;
  live integer;
  cap integer;
BEGIN
  SELECT * INTO pl FROM pools p WHERE p.name = p_pool;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'pool_not_found', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::text;
    RETURN;
  END IF;

  -- The claim row serialises every call with this request id: the first inserts it, a
  -- concurrent twin waits on the insert and then finds it.
  SELECT * INTO cl FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id FOR UPDATE;
  IF NOT FOUND THEN
    IF pl.status <> 'active' THEN
      RETURN QUERY SELECT 'pool_draining', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::text;
      RETURN;
    END IF;
    INSERT INTO claims (pool, request_id, tenant, status, pending_until)
    VALUES (p_pool, p_request_id, p_tenant, 'pending', now() + make_interval(secs => p_pending_ms / 1000.0))
    ON CONFLICT DO NOTHING
    RETURNING * INTO cl;
    IF NOT FOUND THEN
      SELECT * INTO cl FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id FOR UPDATE;
    END IF;
  END IF;

  IF cl.tenant <> p_tenant THEN
    RETURN QUERY SELECT 'tenant_mismatch', NULL::text, NULL::bigint, NULL::text, NULL::text, cl.tenant, NULL::integer, NULL::integer, NULL::text;
    RETURN;
  END IF;
  IF cl.status IN ('granted', 'reclaimed') THEN
    SELECT * INTO w FROM workers x WHERE x.id = cl.worker_id;
    IF FOUND AND w.epoch = cl.epoch AND w.state = 'claimed' THEN
      RETURN QUERY SELECT 'repeat', cl.worker_id, cl.epoch, cl.endpoint, cl.path, NULL::text, NULL::integer, NULL::integer, NULL::text;
    ELSE
      RETURN QUERY SELECT 'lease_ended', cl.worker_id, cl.epoch, cl.endpoint, cl.path, w.state, NULL::integer, NULL::integer, NULL::text;
    END IF;
    RETURN;
  END IF;
  -- Pending: a cold worker is being made for it, unless that worker already ended.
  IF cl.worker_id IS NOT NULL THEN
    SELECT * INTO w FROM workers x WHERE x.id = cl.worker_id;
    IF FOUND AND w.state NOT IN ('retired', 'lost') THEN
      RETURN QUERY SELECT 'in_progress', cl.worker_id, NULL::bigint, NULL::text, 'cold'::text, w.state, NULL::integer, NULL::integer, NULL::text;
      RETURN;
    END IF;
  END IF;
  IF pl.status <> 'active' THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'pool_draining', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::text;
    RETURN;
  END IF;

  -- Warm: the tenant's own hot_idle worker first, then the longest idle. Two index-ordered probes
  -- on (pool, state, state_since) keep the cost flat however many workers are idle.
  SELECT * INTO w FROM workers x
  WHERE x.pool = p_pool AND x.state = 'hot_idle' AND x.tenant = p_tenant AND NOT x.drain_requested
  ORDER BY x.state_since, x.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    SELECT * INTO w FROM workers x
    WHERE x.pool = p_pool AND x.state = 'idle' AND NOT x.drain_requested
    ORDER BY x.state_since, x.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
  END IF;
  IF FOUND THEN
    UPDATE workers x SET state = 'claimed', epoch = x.epoch + 1, tenant = p_tenant, claim_request_id = p_request_id,
      state_since = now(), updated_at = now()
    WHERE x.id = w.id
    RETURNING * INTO upd;
    INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant)
    VALUES (upd.id, w.state, 'claimed', w.epoch, upd.epoch, 'claim', p_origin, p_tenant);
    UPDATE claims c SET status = 'granted', worker_id = upd.id, epoch = upd.epoch, endpoint = upd.endpoint, path = 'warm',
      granted_at = now(), ack_by = now() + make_interval(secs => p_ack_ms / 1000.0), acknowledged_at = NULL,
      updated_at = now()
    WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'granted', upd.id, upd.epoch, upd.endpoint, 'warm'::text, w.state, NULL::integer, NULL::integer, upd.image;
    RETURN;
  END IF;

  -- Cold: a slot under the pool row's lock (the gate refills share), refused while the breaker is not closed.
  SELECT * INTO pl FROM pools p WHERE p.name = p_pool FOR UPDATE;
  cap := (pl.spec ->> 'maxWorkers')::integer;
  IF pl.breaker_state <> 'closed' THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'breaker_open', NULL::text, NULL::bigint, NULL::text, NULL::text, pl.breaker_state, NULL::integer, cap, NULL::text;
    RETURN;
  END IF;
  SELECT count(*) INTO live FROM workers x WHERE x.pool = p_pool AND x.state NOT IN ('retired', 'lost');
  IF live >= cap THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'at_capacity', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, live, cap, NULL::text;
    RETURN;
  END IF;
  INSERT INTO workers (id, pool, image, state, epoch) VALUES (p_new_worker_id, p_pool, pl.spec ->> 'image', 'spawning', 1);
  INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
  VALUES (p_new_worker_id, NULL, 'spawning', NULL, 1, 'create', p_origin);
  UPDATE claims c SET worker_id = p_new_worker_id, path = 'cold', epoch = NULL, endpoint = NULL,
    pending_until = now() + make_interval(secs => p_pending_ms / 1000.0), updated_at = now()
  WHERE c.pool = p_pool AND c.request_id = p_request_id;
  RETURN QUERY SELECT 'cold', p_new_worker_id, NULL::bigint, NULL::text, 'cold'::text, NULL::text, live + 1, cap, pl.spec ->> 'image';
END;
$$;

DROP INDEX workers_tenant_held_idx;
