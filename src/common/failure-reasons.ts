// Why a worker failed to become (or stay) a healthy worker. These strings are stable: they are
// stored in the registry's failure_reason column and used as metric label values, so rename
// one only with a migration. Shared by runtimes (which detect them) and workflows (which decide
// whether to respawn), hence no I/O here.

export const podFailureReasons = [
  'image_pull_backoff',
  'invalid_image',
  'config_error',
  'pod_not_scheduled',
  'pod_evicted',
  'pod_crashed',
  'pod_oom_killed',
  'pod_vanished',
  'deadline_exceeded',
  'runtime_unreachable',
  'type_mismatch',
  'quota_exceeded',
  'spawn_timeout',
] as const;
export type PodFailureReason = (typeof podFailureReasons)[number];

/**
 * Why the lifecycle workflow gave a worker up: every pod reason, plus what corral itself
 * observed of a running worker: it would not take its identity (`activation_failed`: answered
 * as a corral worker but refused or failed `/activate` until the deadline), or it stopped
 * answering its health probe while its pod looked fine (`health_check_failed`).
 */
export const workerFailureReasons = [...podFailureReasons, 'activation_failed', 'health_check_failed'] as const;
export type WorkerFailureReason = (typeof workerFailureReasons)[number];

/** Reasons a fresh spawn cannot fix: the same spec would fail the same way, so escalate at once. */
export const nonRetryableFailureReasons: readonly WorkerFailureReason[] = [
  'invalid_image',
  'config_error',
  'type_mismatch',
];

/**
 * Reasons that say the namespace or cluster is full (a ResourceQuota refused the pod), not that
 * the spec or the image is bad: retried like any transient failure, and never counted by the
 * pool's spawn breaker (an open breaker would refuse cold claims for a quota that frees up).
 */
export const capacityFailureReasons: readonly WorkerFailureReason[] = ['quota_exceeded'];

export function isCapacityFailure(reason: WorkerFailureReason | string | null | undefined): boolean {
  return (capacityFailureReasons as readonly (string | null | undefined)[]).includes(reason);
}

export function isRetryableFailure(reason: WorkerFailureReason): boolean {
  return !nonRetryableFailureReasons.includes(reason);
}

export function isPodFailureReason(value: string): value is PodFailureReason {
  return (podFailureReasons as readonly string[]).includes(value);
}

export function isWorkerFailureReason(value: unknown): value is WorkerFailureReason {
  return typeof value === 'string' && (workerFailureReasons as readonly string[]).includes(value);
}
