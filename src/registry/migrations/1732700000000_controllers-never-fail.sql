-- Up Migration

-- Controllers never fail (docs/decisions/0016-controllers-never-fail.md).
--
-- The pool workflow's breaker writes carry a sequence that only grows (workflow time combined
-- with a carried counter, so it keeps growing across continue-as-new and across a new run): a
-- write is applied only when its sequence is greater than the stored one, so a stale statement
-- (an older activity attempt, an older run) can never leave the breaker `open` behind a newer
-- `closed`.
ALTER TABLE pools ADD COLUMN breaker_sequence bigint NOT NULL DEFAULT 0;

-- When the janitor last completed a pass (its reconciliation), one row: every replica's /metrics
-- reports the seconds since, whichever replica ran the pass.
CREATE TABLE corral_janitor_passes (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  completed_at timestamptz NOT NULL
);

-- Down Migration

DROP TABLE corral_janitor_passes;
ALTER TABLE pools DROP COLUMN breaker_sequence;
