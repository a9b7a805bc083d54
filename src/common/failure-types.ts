// The `type` of every ApplicationFailure that crosses the line between activities (which throw
// them) and the workerLifecycle workflow (which compares them), plus the typed rejections the
// workflow answers its callers with. One definition, so a renamed type cannot make the workflow
// silently stop recognising a fence miss. Plain data: workflow code imports it (no Node, no I/O,
// no activity implementations here).

/** What the registry activities throw. */
export const registryFailureTypes = {
  fenceMiss: 'FenceMiss',
  rowMissing: 'WorkerRowMissing',
  /** The database did not answer; the write may or may not have applied. Retryable. */
  storeError: 'RegistryStoreError',
  invalidInput: 'RegistryInputError',
  transitionNotAllowed: 'TransitionNotAllowedError',
} as const;

/** What the pod runtime and worker-protocol activities throw. */
export const runtimeFailureTypes = {
  invalidInput: 'RuntimeInputError',
  forbidden: 'RuntimeForbidden',
  nameConflict: 'WorkerNameConflict',
  podMissing: 'WorkerPodNotFound',
  /** The worker answers, but not as a corral worker of a protocol version corral speaks. */
  typeMismatch: 'TypeMismatch',
  /** The worker refused the activation (e.g. it has seen a higher epoch). */
  activationRefused: 'ActivationRefused',
  /** The activation did not go through (unreachable, 5xx); another attempt may. */
  activationFailed: 'ActivationFailed',
  /**
   * A ResourceQuota refused the pod (namespace full, or quota usage not calculated yet). Retryable:
   * the workflow records `quota_exceeded` (a capacity reason the spawn breaker does not count).
   */
  quotaExceeded: 'RuntimeQuotaExceeded',
  /**
   * The runtime already holds newer credentials / a higher epoch than the write carried: nothing
   * was written. Non-retryable (the sender is behind); details `{stored, attempted}` ({epoch, version}).
   */
  staleWrite: 'RuntimeStaleWrite',
  /** The runtime did not answer within the call's bound (kubernetes API 429/5xx/timeouts). Retryable. */
  unavailable: 'RuntimeUnavailable',
} as const;

/** Why a workerLifecycle update was refused: the ApplicationFailure `type` a client sees. */
export const lifecycleRejections = {
  invalidRequest: 'InvalidRequest',
  wrongState: 'WrongState',
  staleLease: 'StaleLease',
  draining: 'Draining',
  /** The worker failed while being handed to the tenant; it is lost and the pool replaces it. */
  workerUnavailable: 'WorkerUnavailable',
} as const;
export type LifecycleRejection = (typeof lifecycleRejections)[keyof typeof lifecycleRejections];
