// What happens to worker pods: failed spawns, health probes, zombies, activation and drain.
// Label values: failure reasons (src/common/failure-reasons.ts), probe results (below) and the
// pool's configured image (operator-chosen, a bounded set). Never a tenant, a worker id or an
// endpoint. A reason that is not one of the typed constants is counted as `unknown`.
import { Counter, Histogram, type Registry } from 'prom-client';
import { workerFailureReasons, type WorkerFailureReason } from '../common';
import type { HealthProbeResult } from '../runtime/pod-runtime';

export type FailureReasonLabel = WorkerFailureReason | 'unknown';

export function failureReasonLabel(reason: string | null | undefined): FailureReasonLabel {
  return (workerFailureReasons as readonly string[]).includes(reason ?? '')
    ? (reason as WorkerFailureReason)
    : 'unknown';
}

const imageLabel = (image: string | null | undefined) => image || 'unknown';

export interface WorkerMetrics {
  /** A spawn attempt that did not produce a serving worker (respawned or given up), by reason. */
  countSpawnFailure(reason: string | null | undefined, image: string | null | undefined): void;
  countHealthCheck(result: HealthProbeResult, image: string | null | undefined): void;
  /** A worker that was serving (idle, claimed, hot_idle) and was found dead or unresponsive. */
  countZombie(reason: string | null | undefined, image: string | null | undefined): void;
  /** Time in `activating`: from pod ready to the worker holding its identity (idle or claimed). */
  observeActivation(image: string | null | undefined, seconds: number): void;
  /** A worker that would not take its identity, at spawn or at a hand-over. */
  countActivationFailure(image: string | null | undefined): void;
  /** Time in `draining`: from the drain decision to the worker retired, pod deleted. */
  observeDrain(seconds: number): void;
  /** A health watcher's verdict and what became of its signal. */
  countHealthVerdict(reason: string, outcome: HealthVerdictOutcome): void;
}

/** `signalled`: the worker's workflow has it. `workflow_gone`: it had ended. `undelivered`: retries ran out. */
export const healthVerdictOutcomes = ['signalled', 'workflow_gone', 'undelivered'] as const;
export type HealthVerdictOutcome = (typeof healthVerdictOutcomes)[number];

export function createWorkerMetrics(register: Registry): WorkerMetrics {
  const spawnFailures = new Counter({
    name: 'corral_worker_spawn_failures_total',
    help: 'Spawn attempts that ended without a serving worker (respawned or given up), by failure reason and image.',
    labelNames: ['reason', 'image'] as const,
    registers: [register],
  });
  const healthChecks = new Counter({
    name: 'corral_worker_health_checks_total',
    help: 'Health probes corral made of serving workers (process runtime; on Kubernetes the kubelet probes), by result and image.',
    labelNames: ['result', 'image'] as const,
    registers: [register],
  });
  const zombies = new Counter({
    name: 'corral_zombies_detected_total',
    help: 'Serving workers (idle, claimed, hot_idle) found dead or unresponsive and declared lost, by reason and image.',
    labelNames: ['reason', 'image'] as const,
    registers: [register],
  });
  const activation = new Histogram({
    name: 'corral_worker_activation_duration_seconds',
    help: 'Time a worker spent activating: from its pod being ready to its holding its identity (idle or claimed).',
    labelNames: ['image'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [register],
  });
  const activationFailures = new Counter({
    name: 'corral_worker_activation_failures_total',
    help: 'Workers that would not take their identity (refused, failed or did not answer /activate), at spawn or at a hand-over.',
    labelNames: ['image'] as const,
    registers: [register],
  });
  const drain = new Histogram({
    name: 'corral_worker_drain_duration_seconds',
    help: 'Time a worker spent draining: from the drain decision to retired (worker asked to drain, pod and secret deleted).',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [register],
  });
  const verdicts = new Counter({
    name: 'corral_health_verdicts_total',
    help: "Verdicts of this replica's health watcher (pod informer or process prober), by reason and delivery outcome.",
    labelNames: ['reason', 'outcome'] as const,
    registers: [register],
  });
  return {
    countSpawnFailure: (reason, image) =>
      spawnFailures.inc({ reason: failureReasonLabel(reason), image: imageLabel(image) }),
    countHealthCheck: (result, image) => healthChecks.inc({ result, image: imageLabel(image) }),
    countZombie: (reason, image) => zombies.inc({ reason: failureReasonLabel(reason), image: imageLabel(image) }),
    observeActivation: (image, seconds) => activation.observe({ image: imageLabel(image) }, Math.max(0, seconds)),
    countActivationFailure: (image) => activationFailures.inc({ image: imageLabel(image) }),
    observeDrain: (seconds) => drain.observe(Math.max(0, seconds)),
    countHealthVerdict: (reason, outcome) => verdicts.inc({ reason: failureReasonLabel(reason), outcome }),
  };
}
