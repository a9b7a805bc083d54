-- Up Migration

-- The worker registry: what everything outside Temporal trusts about a worker. Every change is a
-- compare-and-set on (epoch, state) made by corral_transition() or corral_claim_idle(), which
-- also append the audit row in the same statement.
CREATE TABLE workers (
  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
  pool text NOT NULL CHECK (length(pool) BETWEEN 1 AND 128),
  image text NOT NULL CHECK (length(image) BETWEEN 1 AND 512),
  state text NOT NULL CHECK (state IN ('spawning', 'activating', 'idle', 'claimed', 'hot_idle', 'draining', 'retired', 'lost')),
  epoch bigint NOT NULL CHECK (epoch >= 1),
  tenant text,
  pod_name text,
  endpoint text,
  spawn_attempt integer NOT NULL DEFAULT 1 CHECK (spawn_attempt >= 1),
  failure_reason text,
  credential_version integer NOT NULL DEFAULT 0 CHECK (credential_version >= 0),
  credential_expires_at timestamptz,
  claim_request_id text,
  state_since timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workers_pool_state_idx ON workers (pool, state, state_since);
-- One live claim per request id and pool: the same request can never hold two workers.
CREATE UNIQUE INDEX workers_live_claim_request_idx ON workers (pool, claim_request_id) WHERE state = 'claimed';

CREATE TABLE worker_transitions (
  id bigserial PRIMARY KEY,
  worker_id text NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
  from_state text,
  to_state text NOT NULL,
  epoch_before bigint,
  epoch_after bigint NOT NULL,
  operation text NOT NULL,
  origin text NOT NULL,
  tenant text,
  failure_reason text,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX worker_transitions_worker_idx ON worker_transitions (worker_id, id);

-- One round trip, one outcome: locks the row, tells a missing row, a stale epoch and a wrong
-- state apart, and on success updates the row and appends the audit row atomically.
-- p_patch keys that are present overwrite the column (a JSON null clears it).
CREATE FUNCTION corral_transition(
  p_id text,
  p_expected_epoch bigint,
  p_expected_states text[],
  p_to text,
  p_bump_epoch boolean,
  p_patch jsonb,
  p_operation text,
  p_origin text
) RETURNS TABLE (outcome text, actual_state text, actual_epoch bigint, image text, worker jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  cur workers%ROWTYPE;
  upd workers%ROWTYPE;
BEGIN
  SELECT * INTO cur FROM workers w WHERE w.id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'row_missing'::text, NULL::text, NULL::bigint, NULL::text, NULL::jsonb;
    RETURN;
  END IF;
  IF cur.epoch <> p_expected_epoch THEN
    RETURN QUERY SELECT 'fence_miss_epoch'::text, cur.state, cur.epoch, cur.image, NULL::jsonb;
    RETURN;
  END IF;
  IF NOT (cur.state = ANY (p_expected_states)) THEN
    RETURN QUERY SELECT 'fence_miss_state'::text, cur.state, cur.epoch, cur.image, NULL::jsonb;
    RETURN;
  END IF;

  UPDATE workers w SET
    state = p_to,
    epoch = CASE WHEN p_bump_epoch THEN w.epoch + 1 ELSE w.epoch END,
    tenant = CASE WHEN p_patch ? 'tenant' THEN p_patch ->> 'tenant' ELSE w.tenant END,
    pod_name = CASE WHEN p_patch ? 'podName' THEN p_patch ->> 'podName' ELSE w.pod_name END,
    endpoint = CASE WHEN p_patch ? 'endpoint' THEN p_patch ->> 'endpoint' ELSE w.endpoint END,
    spawn_attempt = CASE WHEN p_patch ? 'spawnAttempt' THEN (p_patch ->> 'spawnAttempt')::integer ELSE w.spawn_attempt END,
    failure_reason = CASE WHEN p_patch ? 'failureReason' THEN p_patch ->> 'failureReason' ELSE w.failure_reason END,
    credential_version = CASE WHEN p_patch ? 'credentialVersion' THEN (p_patch ->> 'credentialVersion')::integer ELSE w.credential_version END,
    credential_expires_at = CASE WHEN p_patch ? 'credentialExpiresAt' THEN (p_patch ->> 'credentialExpiresAt')::timestamptz ELSE w.credential_expires_at END,
    claim_request_id = CASE WHEN p_patch ? 'claimRequestId' THEN p_patch ->> 'claimRequestId' ELSE w.claim_request_id END,
    state_since = CASE WHEN w.state <> p_to THEN now() ELSE w.state_since END,
    updated_at = now()
  WHERE w.id = p_id
  RETURNING * INTO upd;

  INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant, failure_reason)
  VALUES (p_id, cur.state, upd.state, cur.epoch, upd.epoch, p_operation, p_origin, upd.tenant, upd.failure_reason);

  RETURN QUERY SELECT 'transitioned'::text, upd.state, upd.epoch, upd.image, to_jsonb(upd);
END;
$$;

-- Claims one warm worker of a pool for a tenant: the tenant's own hot_idle worker first, then
-- the longest-idle one. SKIP LOCKED lets concurrent claimers take different rows without
-- waiting; the partial unique index makes a repeated request id return its existing worker.
CREATE FUNCTION corral_claim_idle(
  p_pool text,
  p_tenant text,
  p_request_id text,
  p_origin text
) RETURNS TABLE (outcome text, from_state text, worker jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  cur workers%ROWTYPE;
  upd workers%ROWTYPE;
BEGIN
  SELECT * INTO cur FROM workers w
  WHERE w.pool = p_pool AND w.claim_request_id = p_request_id AND w.state = 'claimed';
  IF FOUND THEN
    RETURN QUERY SELECT 'already_claimed'::text, NULL::text, to_jsonb(cur);
    RETURN;
  END IF;

  -- Two index-ordered probes (pool, state, state_since) rather than one sorted scan of every
  -- warm worker of the pool: the cost stays flat however many workers are idle.
  SELECT * INTO cur FROM workers w
  WHERE w.pool = p_pool AND w.state = 'hot_idle' AND w.tenant = p_tenant
  ORDER BY w.state_since, w.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    SELECT * INTO cur FROM workers w
    WHERE w.pool = p_pool AND w.state = 'idle'
    ORDER BY w.state_since, w.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
  END IF;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'none_idle'::text, NULL::text, NULL::jsonb;
    RETURN;
  END IF;

  BEGIN
    UPDATE workers w SET
      state = 'claimed',
      epoch = w.epoch + 1,
      tenant = p_tenant,
      claim_request_id = p_request_id,
      state_since = now(),
      updated_at = now()
    WHERE w.id = cur.id
    RETURNING * INTO upd;
  EXCEPTION WHEN unique_violation THEN
    -- A concurrent call with the same request id won; answer with its worker.
    SELECT * INTO upd FROM workers w
    WHERE w.pool = p_pool AND w.claim_request_id = p_request_id AND w.state = 'claimed';
    RETURN QUERY SELECT 'already_claimed'::text, NULL::text, to_jsonb(upd);
    RETURN;
  END;

  INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant)
  VALUES (upd.id, cur.state, 'claimed', cur.epoch, upd.epoch, 'claim', p_origin, p_tenant);

  RETURN QUERY SELECT 'claimed'::text, cur.state, to_jsonb(upd);
END;
$$;

-- Down Migration

DROP FUNCTION corral_claim_idle(text, text, text, text);
DROP FUNCTION corral_transition(text, bigint, text[], text, boolean, jsonb, text, text);
DROP TABLE worker_transitions;
DROP TABLE workers;
