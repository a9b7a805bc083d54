// Janitor metrics: what each reconciliation run did about stranded resources, which workers it
// found wedged, what retention deleted and how long a pass took. Label values come only from the
// typed constants below (and pool names, an operator-configured bounded set), so the series stay
// a small closed set.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { throttledLog, withTimeout } from './bounded';
import {
  reconcileOutcomes,
  strandedResourceKinds,
  wedgeableStates,
  type ReconcileOutcome,
  type StrandedResourceKind,
  type WedgeableState,
} from '../common';

/** What retention deletes: worker rows (retired/lost), their audit rows, ended claims. */
export const retainedRecordKinds = ['worker', 'transition', 'claim'] as const;
export type RetainedRecordKind = (typeof retainedRecordKinds)[number];

/** The janitor's two activities, as a label of the pass-duration histogram. */
export const janitorPhases = ['reconcile', 'retention'] as const;
export type JanitorPhase = (typeof janitorPhases)[number];

export interface WedgedCount {
  pool: string;
  state: WedgeableState;
  count: number;
}

export interface JanitorMetrics {
  recordReconciled(labels: { kind: StrandedResourceKind; outcome: ReconcileOutcome }): void;
  /** The wedged workers one pass found: replaces what the previous pass reported. */
  setWedged(counts: WedgedCount[]): void;
  recordRetained(kind: RetainedRecordKind, deleted: number): void;
  observePass(phase: JanitorPhase, seconds: number): void;
}

export interface JanitorMetricsOptions {
  /**
   * The wedged gauge is what the latest pass this process ran found. Passes run on whichever
   * replica polls the janitor's queue, so a replica that has not run one for this long stops
   * reporting (rather than repeat an old answer beside a newer replica's). Default 15 minutes:
   * three schedule intervals.
   */
  wedgedStaleAfterMs?: number;
  /** The clock (tests). */
  now?: () => number;
  /**
   * Where a scrape reads how long ago the janitor last completed a pass (the registry, written by
   * whichever replica ran it), for `corral_janitor_seconds_since_last_pass`. Without it the gauge
   * is not reported.
   */
  lastPass?: JanitorPassSource;
  /** Bound on that read (default 3 s) and where a failed read is logged (throttled). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface JanitorPassSource {
  /** Seconds since the last completed pass, or null if none was ever recorded. */
  secondsSinceJanitorPass(): Promise<number | null>;
}

export function createJanitorMetrics(register: Registry, opts: JanitorMetricsOptions = {}): JanitorMetrics {
  const now = opts.now ?? Date.now;
  const staleAfterMs = opts.wedgedStaleAfterMs ?? 15 * 60_000;
  const reconciled = new Counter({
    name: 'corral_stranded_resources_reconciled_total',
    help: 'Stranded pods, secrets and registry rows found by the janitor, by kind and what was done about them.',
    labelNames: ['kind', 'outcome'] as const,
    registers: [register],
  });
  // Every series exists from the start at 0, so rate() and alerts see the first increment.
  for (const kind of strandedResourceKinds) {
    for (const outcome of reconcileOutcomes) reconciled.inc({ kind, outcome }, 0);
  }

  let wedged: { at: number; counts: WedgedCount[] } | undefined;
  new Gauge({
    name: 'corral_janitor_wedged_workers',
    help:
      'Workers whose lifecycle workflow runs but whose registry row has sat in spawning, activating or draining ' +
      'past its pool deadline plus a margin, as of the latest janitor pass this process ran (aggregate with max).',
    labelNames: ['pool', 'state'] as const,
    registers: [register],
    collect() {
      this.reset();
      if (!wedged || now() - wedged.at > staleAfterMs) return;
      for (const { pool, state, count } of wedged.counts) this.set({ pool, state }, count);
    },
  });

  const retained = new Counter({
    name: 'corral_janitor_retention_deleted_total',
    help: 'Records deleted by the janitor after the retention period: retired/lost workers, their audit rows, ended claims.',
    labelNames: ['kind'] as const,
    registers: [register],
  });
  for (const kind of retainedRecordKinds) retained.inc({ kind }, 0);

  const { lastPass } = opts;
  if (lastPass) {
    const warn = throttledLog(opts.log);
    new Gauge({
      name: 'corral_janitor_seconds_since_last_pass',
      help:
        'Seconds since the janitor last completed a pass (its reconciliation), from the registry: every replica ' +
        'reports the same value. Absent until a first pass, or when the registry does not answer.',
      registers: [register],
      async collect() {
        this.reset();
        try {
          const seconds = await withTimeout(
            lastPass.secondsSinceJanitorPass(),
            opts.timeoutMs ?? 3_000,
            'janitor pass',
          );
          if (seconds !== null) this.set(seconds);
        } catch (err) {
          warn(
            `corral_janitor_seconds_since_last_pass not reported: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
      },
    });
  }

  const passes = new Histogram({
    name: 'corral_janitor_pass_duration_seconds',
    help: 'How long one janitor activity took: reconcile (inventory, registry, Temporal) and retention.',
    labelNames: ['phase'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [register],
  });

  return {
    recordReconciled({ kind, outcome }) {
      reconciled.inc({ kind, outcome });
    },
    setWedged(counts) {
      // Every (pool, state) the pass looked at reports, 0 included, so a cleared wedge reads 0.
      wedged = { at: now(), counts: counts.filter((c) => wedgeableStates.includes(c.state)) };
    },
    recordRetained(kind, deleted) {
      if (deleted > 0) retained.inc({ kind }, deleted);
    },
    observePass(phase, seconds) {
      passes.observe({ phase }, seconds);
    },
  };
}
