-- Up Migration

-- Waiting claims (docs/decisions/0034-waiting-claims.md). A claim that finds no warm worker and no
-- free slot waits, within its caller's timeout, in a per-pool queue held here (so it outlives the
-- corral replica that took it): status `waiting`, a fair rank, and the last time its caller asked.
-- Capacity that appears (a release, a worker joining the pool, a slot freed) goes to the queue in
-- order; newcomers do not jump it. A pool's `onFull: reject` keeps the old answer, `at_capacity`
-- at once. At maxWorkers, waiting claims make room by retiring other tenants' least recently used
-- hot_idle workers. corral_claim keeps its signature: new outcome `waiting` (worker_id: a worker to
-- evict, path: `evicted` | `evicting`, from_state: its tenant, live_workers: the claim's position).
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'granted', 'reclaimed', 'waiting'));
ALTER TABLE claims
  ADD COLUMN wait_rank integer,
  ADD COLUMN waiting_since timestamptz,
  ADD COLUMN polled_at timestamptz;
-- The queue in fair order, per pool: what every claim on a pool with waiters reads.
CREATE INDEX claims_waiting_idx ON claims (pool, wait_rank, waiting_since, request_id) WHERE status = 'waiting';

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
  on_full text;
  must_wait boolean := false;
  ahead integer := 0;
  available integer;
  new_rank integer;
  making_room integer;
  ev workers%ROWTYPE;
  evicted text;
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

  -- A waiting claim keeps its place while its caller keeps asking (a caller gone for 5 s is
  -- skipped by the claims behind it, but finds its place again if it comes back in time).
  IF cl.status = 'waiting' THEN
    UPDATE claims c SET polled_at = now() WHERE c.pool = p_pool AND c.request_id = p_request_id;
  END IF;

  -- The tenant's quota (maxPerTenant or its tenantQuotas entry), checked before anything is taken
  -- or queued: what it holds is its claimed and hot_idle workers and the cold ones being made for
  -- its other pending claims. Taking its own hot_idle worker changes none of that, so a tenant at
  -- its quota is refused only when it has none. The advisory lock serialises one tenant's claims
  -- on one pool between the count and the take (no lock without a quota).
  quota := COALESCE((pl.spec -> 'tenantQuotas' ->> p_tenant)::integer, (pl.spec ->> 'maxPerTenant')::integer);
  IF quota IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('corral_tenant_quota/' || p_pool || '/' || p_tenant, 0));
    SELECT count(*) INTO held FROM workers x
    WHERE x.pool = p_pool AND x.tenant = p_tenant AND x.state IN ('claimed', 'hot_idle');
    held := held + (SELECT count(*) FROM claims c
      WHERE c.pool = p_pool AND c.tenant = p_tenant AND c.status = 'pending' AND c.worker_id IS NOT NULL
        AND c.request_id <> p_request_id);
    IF held >= quota AND NOT EXISTS (
      SELECT 1 FROM workers x
      WHERE x.pool = p_pool AND x.state = 'hot_idle' AND x.tenant = p_tenant AND NOT x.drain_requested
    ) THEN
      DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
      RETURN QUERY SELECT 'quota_exceeded', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, held, quota, NULL::text;
      RETURN;
    END IF;
  END IF;

  -- The queue (docs/decisions/0034-waiting-claims.md): claims waiting on this pool ahead of this
  -- one, in fair order — wait_rank (round-robin across tenants), then age — counting only those
  -- whose callers still ask. Only as many claims as there is capacity for (idle workers, free
  -- slots) go before the rest; the others wait. No queue: nothing is counted (one index probe).
  SELECT count(*) INTO ahead FROM claims c
  WHERE c.pool = p_pool AND c.status = 'waiting' AND c.request_id <> p_request_id
    AND c.polled_at > now() - interval '5 seconds' AND c.pending_until > now()
    AND (cl.status <> 'waiting' OR (c.wait_rank, c.waiting_since, c.request_id) < (cl.wait_rank, cl.waiting_since, cl.request_id));
  IF ahead > 0 THEN
    SELECT count(*) INTO available FROM (
      SELECT 1 FROM workers x WHERE x.pool = p_pool AND x.state = 'idle' AND NOT x.drain_requested LIMIT ahead + 1
    ) idle_workers;
    IF pl.breaker_state = 'closed' THEN
      SELECT count(*) INTO live FROM workers x WHERE x.pool = p_pool AND x.state NOT IN ('retired', 'lost');
      available := available + greatest(0, (pl.spec ->> 'maxWorkers')::integer - live);
    END IF;
    must_wait := ahead >= available;
  END IF;

  IF NOT must_wait THEN
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
    IF live < cap THEN
      INSERT INTO workers (id, pool, image, state, epoch) VALUES (p_new_worker_id, p_pool, pl.spec ->> 'image', 'spawning', 1);
      INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
      VALUES (p_new_worker_id, NULL, 'spawning', NULL, 1, 'create', p_origin);
      UPDATE claims c SET status = 'pending', worker_id = p_new_worker_id, path = 'cold', epoch = NULL, endpoint = NULL,
        pending_until = now() + make_interval(secs => p_pending_ms / 1000.0), updated_at = now()
      WHERE c.pool = p_pool AND c.request_id = p_request_id;
      RETURN QUERY SELECT 'cold', p_new_worker_id, NULL::bigint, NULL::text, 'cold'::text, NULL::text, live + 1, cap, pl.spec ->> 'image';
      RETURN;
    END IF;
    on_full := COALESCE(pl.spec ->> 'onFull', 'wait');
    IF on_full = 'reject' THEN
      DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
      RETURN QUERY SELECT 'at_capacity', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, live, cap, NULL::text;
      RETURN;
    END IF;
  END IF;

  -- Wait. A claim joins the queue once, with its rank fixed: one more than its tenant's last
  -- waiting claim, but never ahead of the queue's head — so with tenant A's 50 claims queued,
  -- tenant B's first claim ranks with A's first and is served next-but-one (round-robin across
  -- tenants, FIFO within one).
  IF cl.status <> 'waiting' THEN
    SELECT greatest(COALESCE(max(c.wait_rank) FILTER (WHERE c.tenant = p_tenant), 0) + 1, COALESCE(min(c.wait_rank), 1))
      INTO new_rank
    FROM claims c
    WHERE c.pool = p_pool AND c.status = 'waiting' AND c.request_id <> p_request_id
      AND c.polled_at > now() - interval '5 seconds' AND c.pending_until > now();
    UPDATE claims c SET status = 'waiting', worker_id = NULL, path = NULL, wait_rank = new_rank, waiting_since = now(),
      polled_at = now(), updated_at = now()
    WHERE c.pool = p_pool AND c.request_id = p_request_id
    RETURNING * INTO cl;
    SELECT count(*) INTO ahead FROM claims c
    WHERE c.pool = p_pool AND c.status = 'waiting' AND c.request_id <> p_request_id
      AND c.polled_at > now() - interval '5 seconds' AND c.pending_until > now()
      AND (c.wait_rank, c.waiting_since, c.request_id) < (cl.wait_rank, cl.waiting_since, cl.request_id);
  END IF;

  -- Room for the queue: at maxWorkers, the least recently used hot_idle worker of another tenant
  -- is retired (never a claimed one) — marked here so no claim takes it and no second claim picks
  -- it; the caller asks its workflow to drain it. Enough room is on its way when as many workers are
  -- leaving as there are waiting claims up to this one. The head also hands back a marked worker
  -- still hot_idle, so a drain request lost with a crashed caller is asked again.
  cap := (pl.spec ->> 'maxWorkers')::integer;
  IF live IS NULL THEN
    SELECT count(*) INTO live FROM workers x WHERE x.pool = p_pool AND x.state NOT IN ('retired', 'lost');
  END IF;
  IF live >= cap AND pl.breaker_state = 'closed' THEN
    -- Under the pool row's lock, so two waiting claims never both count the same room.
    PERFORM 1 FROM pools p WHERE p.name = p_pool FOR UPDATE;
    SELECT count(*) INTO making_room FROM workers x
    WHERE x.pool = p_pool AND (x.state = 'draining' OR (x.drain_requested AND x.state IN ('idle', 'hot_idle')));
    IF making_room <= ahead THEN
      SELECT * INTO ev FROM workers x
      WHERE x.pool = p_pool AND x.state = 'hot_idle' AND x.tenant <> p_tenant AND NOT x.drain_requested
      ORDER BY x.state_since, x.id
      LIMIT 1
      FOR UPDATE SKIP LOCKED;
      IF FOUND THEN
        UPDATE workers x SET drain_requested = true, updated_at = now() WHERE x.id = ev.id;
        evicted := 'evicted';
      END IF;
    ELSIF ahead = 0 THEN
      SELECT * INTO ev FROM workers x
      WHERE x.pool = p_pool AND x.state = 'hot_idle' AND x.drain_requested
      ORDER BY x.state_since, x.id
      LIMIT 1;
      IF FOUND THEN
        evicted := 'evicting';
      END IF;
    END IF;
  END IF;
  RETURN QUERY SELECT 'waiting', ev.id, NULL::bigint, NULL::text, evicted, ev.tenant, ahead + 1, cap, NULL::text;
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

DELETE FROM claims WHERE status = 'waiting';
DROP INDEX claims_waiting_idx;
ALTER TABLE claims DROP COLUMN polled_at, DROP COLUMN waiting_since, DROP COLUMN wait_rank;
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'granted', 'reclaimed'));
