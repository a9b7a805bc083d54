-- Up Migration

-- Claims decided by the registry (docs/decisions/0012-registry-claims-and-the-corral-api.md): a
-- warm claim is ONE transaction of corral_claim(); the worker's workflow is told afterwards.
-- Reservations (a worker picked for a workflow update) and the raw claim function go.
DROP FUNCTION corral_begin_claim(text, text, text, integer, integer);
DROP FUNCTION corral_reserve_warm(text, text, text, integer);
DROP FUNCTION corral_claim_idle(text, text, text, text);
ALTER TABLE workers DROP COLUMN reserved_by, DROP COLUMN reserved_until;

-- A drain asked of one worker (its workflow sets it): claims skip it, its release goes to draining.
ALTER TABLE workers ADD COLUMN drain_requested boolean NOT NULL DEFAULT false;

-- A claim row is `pending` while a cold worker is being made for it, `granted` once it holds a
-- lease {worker_id, epoch}, `reclaimed` once an unacknowledged grant was taken back. A grant is
-- acknowledged when its answer reached the caller; one that is not by ack_by is reclaimed.
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'granted', 'reclaimed'));
ALTER TABLE claims
  ADD COLUMN granted_at timestamptz,
  ADD COLUMN ack_by timestamptz,
  ADD COLUMN acknowledged_at timestamptz;
CREATE INDEX claims_unacknowledged_idx ON claims (ack_by) WHERE status = 'granted' AND acknowledged_at IS NULL;
CREATE INDEX claims_pending_worker_idx ON claims (worker_id) WHERE status = 'pending';

-- A warm claim, whole: answers a repeated request id (its lease while valid, `lease_ended`
-- after), picks the tenant's own hot_idle worker or the longest-idle one (SKIP LOCKED: concurrent
-- claims take different rows without waiting), moves it to claimed with epoch + 1 and records
-- the grant — all or nothing. No warm worker: the cold path's slot is reserved in the same
-- transaction (the pool row's lock, the breaker, maxWorkers), and the claim waits `pending`,
-- bound to the new worker row, for that worker's workflow to bind it (corral_bind_cold_claim).
-- Outcomes: granted | repeat | lease_ended | in_progress | tenant_mismatch | pool_not_found |
-- pool_draining | cold | at_capacity | breaker_open.
CREATE FUNCTION corral_claim(
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

-- A cold worker's workflow, once its worker is activated: hands it to the claim it was made for
-- if that claim still waits for it (claimed at epoch + 1, grant recorded, to be acknowledged by
-- ack_by), otherwise the worker joins the pool (idle, or draining if a drain was asked).
-- Outcomes: bound | not_bound | row_missing | fence_miss_epoch | fence_miss_state.
CREATE FUNCTION corral_bind_cold_claim(
  p_worker_id text,
  p_pool text,
  p_request_id text,
  p_expected_epoch bigint,
  p_ack_ms integer
) RETURNS TABLE (outcome text, actual_state text, actual_epoch bigint, worker jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  w workers%ROWTYPE;
  cl claims%ROWTYPE;
  upd workers%ROWTYPE;
  target text;
BEGIN
  SELECT * INTO w FROM workers x WHERE x.id = p_worker_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'row_missing'::text, NULL::text, NULL::bigint, NULL::jsonb;
    RETURN;
  END IF;
  IF w.epoch <> p_expected_epoch THEN
    RETURN QUERY SELECT 'fence_miss_epoch'::text, w.state, w.epoch, NULL::jsonb;
    RETURN;
  END IF;
  IF w.state <> 'activating' THEN
    RETURN QUERY SELECT 'fence_miss_state'::text, w.state, w.epoch, NULL::jsonb;
    RETURN;
  END IF;
  SELECT * INTO cl FROM claims c
  WHERE c.pool = p_pool AND c.request_id = p_request_id AND c.status = 'pending' AND c.worker_id = p_worker_id
  FOR UPDATE;
  IF FOUND AND NOT w.drain_requested THEN
    UPDATE workers x SET state = 'claimed', epoch = x.epoch + 1, tenant = cl.tenant, claim_request_id = p_request_id,
      state_since = now(), updated_at = now()
    WHERE x.id = p_worker_id RETURNING * INTO upd;
    INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant)
    VALUES (p_worker_id, 'activating', 'claimed', w.epoch, upd.epoch, 'claim', 'lifecycle_workflow', cl.tenant);
    UPDATE claims c SET status = 'granted', epoch = upd.epoch, endpoint = upd.endpoint, granted_at = now(),
      ack_by = now() + make_interval(secs => p_ack_ms / 1000.0), updated_at = now()
    WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'bound'::text, upd.state, upd.epoch, to_jsonb(upd);
    RETURN;
  END IF;
  DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id AND c.status = 'pending'
    AND c.worker_id = p_worker_id;
  target := CASE WHEN w.drain_requested THEN 'draining' ELSE 'idle' END;
  UPDATE workers x SET state = target, state_since = now(), updated_at = now()
  WHERE x.id = p_worker_id RETURNING * INTO upd;
  INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
  VALUES (p_worker_id, 'activating', target, w.epoch, upd.epoch, CASE WHEN target = 'idle' THEN 'ready' ELSE 'drain' END,
    'lifecycle_workflow');
  RETURN QUERY SELECT 'not_bound'::text, upd.state, upd.epoch, to_jsonb(upd);
END;
$$;

-- A release of the lease {worker, epoch}: claimed → the pool's release policy (hot_idle keeps
-- the tenant; recycle → idle, unbound; retire → draining; a drained or draining pool, or a drain
-- asked of the worker → draining), epoch + 1. A repeat of a release that already happened answers
-- what the first one did (from the audit trail), so a retried release is not a stale lease.
-- Outcomes: released | already_released | wrong_tenant | stale_lease | row_missing.
CREATE FUNCTION corral_release(p_worker_id text, p_epoch bigint, p_tenant text, p_origin text)
RETURNS TABLE (outcome text, state text, epoch bigint, tenant text, endpoint text, pool text, worker jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  w workers%ROWTYPE;
  upd workers%ROWTYPE;
  pl pools%ROWTYPE;
  policy text;
  target text;
  done record;
BEGIN
  SELECT * INTO w FROM workers x WHERE x.id = p_worker_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'row_missing'::text, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::jsonb;
    RETURN;
  END IF;
  IF w.epoch = p_epoch AND w.state = 'claimed' THEN
    IF p_tenant IS NOT NULL AND w.tenant IS DISTINCT FROM p_tenant THEN
      RETURN QUERY SELECT 'wrong_tenant'::text, w.state, w.epoch, NULL::text, NULL::text, w.pool, NULL::jsonb;
      RETURN;
    END IF;
    SELECT * INTO pl FROM pools p WHERE p.name = w.pool;
    policy := coalesce(pl.spec ->> 'releasePolicy', 'retire');
    target := CASE
      WHEN w.drain_requested OR pl.status IS DISTINCT FROM 'active' THEN 'draining'
      WHEN policy = 'hot_idle' THEN 'hot_idle'
      WHEN policy = 'recycle' THEN 'idle'
      ELSE 'draining' END;
    UPDATE workers x SET state = target, epoch = x.epoch + 1,
      tenant = CASE WHEN target = 'idle' THEN NULL ELSE x.tenant END,
      claim_request_id = NULL, state_since = now(), updated_at = now()
    WHERE x.id = p_worker_id RETURNING * INTO upd;
    INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant)
    VALUES (p_worker_id, 'claimed', target, w.epoch, upd.epoch, 'release', p_origin, w.tenant);
    RETURN QUERY SELECT 'released'::text, upd.state, upd.epoch, upd.tenant, upd.endpoint, upd.pool, to_jsonb(upd);
    RETURN;
  END IF;
  SELECT t.to_state, t.epoch_after, t.tenant INTO done FROM worker_transitions t
  WHERE t.worker_id = p_worker_id AND t.epoch_before = p_epoch AND t.from_state = 'claimed' AND t.operation = 'release'
  ORDER BY t.id LIMIT 1;
  IF FOUND AND (p_tenant IS NULL OR done.tenant IS NOT DISTINCT FROM p_tenant) THEN
    RETURN QUERY SELECT 'already_released'::text, done.to_state, done.epoch_after, NULL::text, NULL::text, w.pool, NULL::jsonb;
    RETURN;
  END IF;
  RETURN QUERY SELECT 'stale_lease'::text, w.state, w.epoch, NULL::text, NULL::text, w.pool, NULL::jsonb;
END;
$$;

-- Takes back grants nobody acknowledged by their ack_by (the caller died or gave up after the
-- transaction, or a cold worker was bound after its caller's timeout): a worker still claimed at
-- the granted epoch goes back to idle (draining if its pool or a drain says so) at epoch + 1.
-- Any corral process may run it; SKIP LOCKED keeps two from taking the same claim.
CREATE FUNCTION corral_reclaim_unacknowledged(p_limit integer)
RETURNS TABLE (pool text, request_id text, tenant text, worker jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  cl claims%ROWTYPE;
  w workers%ROWTYPE;
  upd workers%ROWTYPE;
  pool_status text;
  target text;
BEGIN
  FOR cl IN
    SELECT * FROM claims c
    WHERE c.status = 'granted' AND c.acknowledged_at IS NULL AND c.ack_by < now()
    ORDER BY c.ack_by
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  LOOP
    UPDATE claims c SET status = 'reclaimed', updated_at = now() WHERE c.pool = cl.pool AND c.request_id = cl.request_id;
    SELECT * INTO w FROM workers x WHERE x.id = cl.worker_id FOR UPDATE;
    IF FOUND AND w.epoch = cl.epoch AND w.state = 'claimed' THEN
      SELECT p.status INTO pool_status FROM pools p WHERE p.name = w.pool;
      target := CASE WHEN w.drain_requested OR pool_status IS DISTINCT FROM 'active' THEN 'draining' ELSE 'idle' END;
      UPDATE workers x SET state = target, epoch = x.epoch + 1, tenant = NULL, claim_request_id = NULL,
        state_since = now(), updated_at = now()
      WHERE x.id = w.id RETURNING * INTO upd;
      INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant)
      VALUES (w.id, 'claimed', target, w.epoch, upd.epoch, 'release', 'reclaimer', w.tenant);
      RETURN QUERY SELECT cl.pool, cl.request_id, cl.tenant, to_jsonb(upd);
    END IF;
  END LOOP;
END;
$$;

-- Down Migration

DROP FUNCTION corral_reclaim_unacknowledged(integer);
DROP FUNCTION corral_release(text, bigint, text, text);
DROP FUNCTION corral_bind_cold_claim(text, text, text, bigint, integer);
DROP FUNCTION corral_claim(text, text, text, text, integer, integer, text);
DROP INDEX claims_pending_worker_idx;
DROP INDEX claims_unacknowledged_idx;
ALTER TABLE claims DROP COLUMN acknowledged_at, DROP COLUMN ack_by, DROP COLUMN granted_at;
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'granted'));
ALTER TABLE workers DROP COLUMN drain_requested;
ALTER TABLE workers ADD COLUMN reserved_by text, ADD COLUMN reserved_until timestamptz;
