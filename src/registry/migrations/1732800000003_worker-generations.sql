-- Up Migration

-- Rolling replacement (docs/decisions/0036-rolling-replacement.md). A pool's template generation
-- counts changes of what its workers run — the pod template: runtime, image, args, env, port,
-- health path, worker protocol, resources — not of its sizes (minIdle, maxWorkers, …), which
-- replace nobody. Each worker row records the template generation of the spec its workflow was
-- started with (written by whoever starts it, with the spec it used). Idle workers of older
-- generations are replaced by the pool at a bounded surge; a claimed worker of an older generation
-- is retired when it is released (below). Live rows from before take generation 1, as their pool.
CREATE FUNCTION corral_pod_template(p_spec jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT md5(jsonb_build_object(
    'runtime', p_spec -> 'runtime', 'image', p_spec -> 'image', 'args', p_spec -> 'args', 'env', p_spec -> 'env',
    'port', p_spec -> 'port', 'healthPath', p_spec -> 'healthPath', 'workerProtocol', p_spec -> 'workerProtocol',
    'resources', p_spec -> 'resources')::text)
$$;
ALTER TABLE pools ADD COLUMN template_generation integer NOT NULL DEFAULT 1;
ALTER TABLE workers ADD COLUMN generation integer;
UPDATE workers SET generation = 1 WHERE state NOT IN ('retired', 'lost');

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
      -- Rolling replacement: a worker of an older generation of the spec is retired on release.
      WHEN w.generation IS NOT NULL AND w.generation < pl.template_generation THEN 'draining'
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

ALTER TABLE workers DROP COLUMN generation;
ALTER TABLE pools DROP COLUMN template_generation;
DROP FUNCTION corral_pod_template(jsonb);
