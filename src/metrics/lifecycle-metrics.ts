// Registry transition metrics. Label values come from typed constants (operation, origin,
// outcome) or from the pool's configured image; an empty origin or image is `unknown`.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { LifecycleOperation, TransitionOrigin } from '../common';

export const transitionOutcomes = [
  'transitioned',
  'fence_miss_epoch',
  'fence_miss_state',
  'row_missing',
  'store_error',
] as const;
export type TransitionOutcome = (typeof transitionOutcomes)[number];

export interface LifecycleMetrics {
  recordTransition(labels: {
    operation: LifecycleOperation;
    outcome: TransitionOutcome;
    image: string | null | undefined;
    origin: TransitionOrigin | '' | null | undefined;
    durationSeconds: number;
  }): void;
}

export function createLifecycleMetrics(register: Registry): LifecycleMetrics {
  const transitions = new Counter({
    name: 'corral_worker_lifecycle_transitions_total',
    help: 'Registry compare-and-set transitions by operation, outcome, image and origin.',
    labelNames: ['operation', 'outcome', 'image', 'origin'] as const,
    registers: [register],
  });
  const duration = new Histogram({
    name: 'corral_worker_lifecycle_transition_duration_seconds',
    help: 'Round-trip time of a registry transition, by operation.',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [register],
  });
  return {
    recordTransition({ operation, outcome, image, origin, durationSeconds }) {
      transitions.inc({ operation, outcome, image: image || 'unknown', origin: origin || 'unknown' });
      // A clock step backwards must not produce a negative observation.
      duration.observe({ operation }, Math.max(0, durationSeconds));
    },
  };
}
