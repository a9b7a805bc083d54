-- Up Migration

-- Which corral worker replicas are alive, so health watching can be sharded across them
-- (docs/decisions/0013-fleet-scale.md): each replica upserts its row every few seconds, and a
-- worker is watched by the first two live replicas in its rendezvous order. No leader, no lock:
-- a replica that stops beating drops out of everyone's view within the liveness window.
CREATE TABLE corral_replicas (
  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
  started_at timestamptz NOT NULL DEFAULT now(),
  seen_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration

DROP TABLE corral_replicas;
