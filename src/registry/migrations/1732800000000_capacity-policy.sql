-- Up Migration

-- Capacity policy (issue 20): tenant quotas (docs/decisions/0033-tenant-quotas.md), waiting
-- claims and eviction for room (0034-waiting-claims.md), demand-driven warm capacity
-- (0035-demand-driven-warm-capacity.md) and rolling replacement (0036-rolling-replacement.md).
-- corral_claim and corral_release keep their signatures; corral_claim gains two outcomes,
-- `quota_exceeded` (live_workers = what the tenant holds, max_workers = its quota) and `waiting`
-- (worker_id: a worker to evict, path: `evicted` | `evicting`, from_state: its tenant,
-- live_workers: the claim's position).

-- Rolling replacement: a pool's template generation moves only when what its workers run (the pod
-- template; its hash is computed from the parsed spec by the API) changes, not its sizes. Each
-- worker row records the template generation of the spec its workflow was started with (written
-- once, by whoever starts it, with the spec it used; NULL: not recorded, taken as current). Live
-- rows from before take generation 1, as their pool.
-- Demand-driven warm capacity: the target a pool's last turn computed, for every replica's gauges.
ALTER TABLE pools
  ADD COLUMN template_hash text,
  ADD COLUMN template_generation integer NOT NULL DEFAULT 1,
  ADD COLUMN warm_target integer,
  ADD COLUMN warm_headroom integer;
ALTER TABLE workers ADD COLUMN generation integer;
UPDATE workers SET generation = 1 WHERE state NOT IN ('retired', 'lost');

-- Waiting claims: status `waiting`, a fair rank, and the last time the caller asked. The queue in
-- fair order, per pool, is what every claim on a pool with waiters reads.
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'granted', 'reclaimed', 'waiting'));
ALTER TABLE claims
  ADD COLUMN wait_rank integer,
  ADD COLUMN waiting_since timestamptz,
  ADD COLUMN polled_at timestamptz;
CREATE INDEX claims_waiting_idx ON claims (pool, wait_rank, waiting_since, request_id) WHERE status = 'waiting';
-- Demand: claims made on a pool in the last minutes (an index range per pool).
CREATE INDEX claims_pool_created_idx ON claims (pool, created_at);
-- Quotas: what a tenant holds, one index probe per claim on a pool with a quota.
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
  held integer := 0;
  at_quota boolean := false;
  got boolean := false;
  must_wait boolean := false;
  ahead integer := 0;
  available integer;
  making_room integer;
  incoming integer;
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

  -- A waiting claim keeps its place while its caller keeps asking: asked again within 5 s of its
  -- last ask (and before its deadline), it keeps its rank and its deadline moves on; asked later, it
  -- joins again at the back (so a claim parked long ago cannot jump the queue).
  IF cl.status = 'waiting' THEN
    IF cl.polled_at > now() - interval '5 seconds' AND cl.pending_until > now() THEN
      UPDATE claims c SET polled_at = now(),
        pending_until = greatest(c.pending_until, now() + make_interval(secs => p_pending_ms / 1000.0))
      WHERE c.pool = p_pool AND c.request_id = p_request_id RETURNING * INTO cl;
    ELSE
      UPDATE claims c SET status = 'pending', wait_rank = NULL, waiting_since = NULL, polled_at = NULL,
        pending_until = now() + make_interval(secs => p_pending_ms / 1000.0), updated_at = now()
      WHERE c.pool = p_pool AND c.request_id = p_request_id RETURNING * INTO cl;
    END IF;
  END IF;

  -- The tenant's quota (decision 0033: maxPerTenant, or its tenantQuotas entry). What it holds: its
  -- claimed workers, its hot_idle ones not being evicted, and the live cold workers being made for
  -- its other pending claims. At its quota only its own hot_idle worker can be had (taking it
  -- changes nothing the quota counts). The advisory lock serialises one tenant's claims on one pool
  -- between the count and the take (no lock without a quota).
  quota := COALESCE((pl.spec -> 'tenantQuotas' ->> p_tenant)::integer, (pl.spec ->> 'maxPerTenant')::integer);
  IF quota IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('corral_tenant_quota/' || p_pool || '/' || p_tenant, 0));
    SELECT count(*) INTO held FROM workers x
    WHERE x.pool = p_pool AND x.tenant = p_tenant
      AND (x.state = 'claimed' OR (x.state = 'hot_idle' AND NOT x.drain_requested));
    held := held + (SELECT count(*) FROM claims c JOIN workers x ON x.id = c.worker_id
      WHERE c.pool = p_pool AND c.tenant = p_tenant AND c.status = 'pending' AND c.request_id <> p_request_id
        AND c.pending_until > now() AND x.state NOT IN ('retired', 'lost'));
    at_quota := held >= quota;
  END IF;

  -- Warm, the tenant's own: its hot_idle worker of the current pod template (decision 0036), taken
  -- before the queue is consulted — no other tenant could have it but by evicting it.
  SELECT * INTO w FROM workers x
  WHERE x.pool = p_pool AND x.state = 'hot_idle' AND x.tenant = p_tenant AND NOT x.drain_requested
    AND (x.generation IS NULL OR x.generation >= pl.template_generation)
  ORDER BY x.state_since, x.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED;
  got := FOUND;
  IF NOT got AND at_quota THEN
    DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
    RETURN QUERY SELECT 'quota_exceeded', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, held, quota, NULL::text;
    RETURN;
  END IF;

  IF NOT got THEN
    -- The queue (decision 0034): claims waiting on this pool ahead of this one, in fair order —
    -- wait_rank (round-robin across tenants), then age — counting only those whose callers still
    -- ask. Only as many claims as there is capacity for (idle workers, free slots) go before the
    -- rest; the others wait. No queue: nothing is counted but one index probe.
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
      -- Warm: the longest idle (an index-ordered probe; SKIP LOCKED: concurrent claims take different rows).
      SELECT * INTO w FROM workers x
      WHERE x.pool = p_pool AND x.state = 'idle' AND NOT x.drain_requested
      ORDER BY x.state_since, x.id
      LIMIT 1
      FOR UPDATE SKIP LOCKED;
      got := FOUND;
    END IF;
  END IF;

  IF got THEN
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

  IF NOT must_wait THEN
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
    IF COALESCE(pl.spec ->> 'onFull', 'wait') = 'reject' THEN
      DELETE FROM claims c WHERE c.pool = p_pool AND c.request_id = p_request_id;
      RETURN QUERY SELECT 'at_capacity', NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, live, cap, NULL::text;
      RETURN;
    END IF;
  END IF;

  -- Wait. A claim joins the queue with its rank fixed: one more than its tenant's last waiting
  -- claim, but never ahead of the queue's head — so with tenant A's 50 claims queued, tenant B's
  -- first claim ranks with A's first and is served next-but-one (round-robin across tenants, FIFO
  -- within one). A claim whose hand-over failed after it was served (reopened, still asked for)
  -- keeps the rank it had.
  IF cl.status <> 'waiting' THEN
    IF cl.wait_rank IS NULL OR cl.polled_at IS NULL OR cl.polled_at <= now() - interval '5 seconds' THEN
      SELECT greatest(COALESCE(max(c.wait_rank) FILTER (WHERE c.tenant = p_tenant), 0) + 1, COALESCE(min(c.wait_rank), 1)),
             now()
        INTO cl.wait_rank, cl.waiting_since
      FROM claims c
      WHERE c.pool = p_pool AND c.status = 'waiting' AND c.request_id <> p_request_id
        AND c.polled_at > now() - interval '5 seconds' AND c.pending_until > now();
    END IF;
    UPDATE claims c SET status = 'waiting', worker_id = NULL, path = NULL, wait_rank = cl.wait_rank,
      waiting_since = cl.waiting_since, polled_at = now(), updated_at = now()
    WHERE c.pool = p_pool AND c.request_id = p_request_id
    RETURNING * INTO cl;
    SELECT count(*) INTO ahead FROM claims c
    WHERE c.pool = p_pool AND c.status = 'waiting' AND c.request_id <> p_request_id
      AND c.polled_at > now() - interval '5 seconds' AND c.pending_until > now()
      AND (c.wait_rank, c.waiting_since, c.request_id) < (cl.wait_rank, cl.waiting_since, cl.request_id);
  END IF;

  -- Room for the queue (decision 0034): at maxWorkers, the least recently used hot_idle worker of
  -- another tenant is retired (never a claimed one) — marked here so no claim takes it and no
  -- second claim picks it; the caller asks its workflow to drain it. Only while what is on its way
  -- to the queue — workers leaving, idle workers, workers starting that no claim is bound to —
  -- does not cover the waiting claims up to and including this one; counted again under the pool
  -- row's lock before anything is marked. The head also hands back a marked worker still hot_idle,
  -- so a drain request lost with a crashed caller is asked again.
  cap := (pl.spec ->> 'maxWorkers')::integer;
  SELECT count(*) INTO live FROM workers x WHERE x.pool = p_pool AND x.state NOT IN ('retired', 'lost');
  IF live >= cap AND pl.breaker_state = 'closed' THEN
    FOR attempt IN 1..2 LOOP
      IF attempt = 2 THEN
        PERFORM 1 FROM pools p WHERE p.name = p_pool FOR UPDATE;
      END IF;
      SELECT count(*) FILTER (WHERE x.state = 'draining' OR (x.drain_requested AND x.state IN ('idle', 'hot_idle'))),
             count(*) FILTER (WHERE NOT x.drain_requested AND (x.state = 'idle' OR (x.state IN ('spawning', 'activating')
               AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.worker_id = x.id AND c.status = 'pending'))))
        INTO making_room, incoming
      FROM workers x WHERE x.pool = p_pool AND x.state NOT IN ('retired', 'lost');
      EXIT WHEN making_room + incoming > ahead;
      IF attempt = 2 THEN
        SELECT * INTO ev FROM workers x
        WHERE x.pool = p_pool AND x.state = 'hot_idle' AND x.tenant <> p_tenant AND NOT x.drain_requested
        ORDER BY x.state_since, x.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
          UPDATE workers x SET drain_requested = true, updated_at = now() WHERE x.id = ev.id;
          evicted := 'evicted';
        END IF;
      END IF;
    END LOOP;
    IF evicted IS NULL AND ahead = 0 THEN
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

CREATE OR REPLACE FUNCTION corral_release(p_worker_id text, p_epoch bigint, p_tenant text, p_origin text)
RETURNS TABLE (outcome text, state text, epoch bigint, tenant text, endpoint text, pool text, worker jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  w workers%ROWTYPE;
  upd workers%ROWTYPE;
  pl pools%ROWTYPE;
  policy text;
  target text;
  head_tenant text;
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
    -- The queue's head (decision 0034): a hot_idle worker would serve no claim of another tenant,
    -- so with one waiting first the worker is retired and its slot goes to the queue.
    SELECT c.tenant INTO head_tenant FROM claims c
    WHERE c.pool = w.pool AND c.status = 'waiting' AND c.polled_at > now() - interval '5 seconds'
      AND c.pending_until > now()
    ORDER BY c.wait_rank, c.waiting_since, c.request_id
    LIMIT 1;
    target := CASE
      WHEN w.drain_requested OR pl.status IS DISTINCT FROM 'active' THEN 'draining'
      -- Rolling replacement (decision 0036): a worker of an older pod template is retired on release.
      WHEN w.generation < pl.template_generation THEN 'draining'
      WHEN policy = 'hot_idle' AND head_tenant IS NOT NULL AND head_tenant <> w.tenant THEN 'draining'
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

CREATE OR REPLACE FUNCTION corral_release(p_worker_id text, p_epoch bigint, p_tenant text, p_origin text)
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

DROP INDEX workers_tenant_held_idx;
DROP INDEX claims_pool_created_idx;
DELETE FROM claims WHERE status = 'waiting';
DROP INDEX claims_waiting_idx;
ALTER TABLE claims DROP COLUMN polled_at, DROP COLUMN waiting_since, DROP COLUMN wait_rank;
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'granted', 'reclaimed'));
ALTER TABLE workers DROP COLUMN generation;
ALTER TABLE pools DROP COLUMN warm_headroom, DROP COLUMN warm_target, DROP COLUMN template_generation, DROP COLUMN template_hash;
