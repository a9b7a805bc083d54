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
] as const;
export type PodFailureReason = (typeof podFailureReasons)[number];

/** Reasons a fresh spawn cannot fix: the same spec would fail the same way, so escalate at once. */
export const nonRetryableFailureReasons: readonly PodFailureReason[] = [
  'invalid_image',
  'config_error',
  'type_mismatch',
];

export function isRetryableFailure(reason: PodFailureReason): boolean {
  return !nonRetryableFailureReasons.includes(reason);
}

export function isPodFailureReason(value: string): value is PodFailureReason {
  return (podFailureReasons as readonly string[]).includes(value);
}
