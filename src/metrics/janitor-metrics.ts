// Janitor metrics: what each reconciliation run did about stranded resources. Label values come
// only from the typed constants below, so the series stay a small closed set (3 kinds × 3 outcomes).
import { Counter, type Registry } from 'prom-client';

/** What the janitor reconciles: a pod (with its secret), a secret alone, or a registry row. */
export const strandedResourceKinds = ['pod', 'secret', 'row'] as const;
export type StrandedResourceKind = (typeof strandedResourceKinds)[number];

/**
 * `deleted`: the resource is gone (for a row: retired by a fenced compare-and-set; rows are never
 * deleted, their audit trail stays). `delete_failed`: the attempt failed or its outcome is
 * unknown; the next run looks again. `kept`: divergence seen but deliberately left alone (within
 * the grace period, someone else moved the row first, or its workflow could not be described).
 */
export const reconcileOutcomes = ['deleted', 'delete_failed', 'kept'] as const;
export type ReconcileOutcome = (typeof reconcileOutcomes)[number];

export interface JanitorMetrics {
  recordReconciled(labels: { kind: StrandedResourceKind; outcome: ReconcileOutcome }): void;
}

export function createJanitorMetrics(register: Registry): JanitorMetrics {
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
  return {
    recordReconciled({ kind, outcome }) {
      reconciled.inc({ kind, outcome });
    },
  };
}
