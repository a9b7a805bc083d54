// How long each PodRuntime call can take at most, with the default settings, so that the
// activities wrapping them are given timeouts above these (an activity that times out before its
// runtime call has given up is retried while the first attempt still writes). Workflow-safe:
// plain numbers, no Node imports. Derivation: docs/decisions/0017-runtime-reasons-and-cancellation.md
//
// Every Kubernetes request is bounded by `apiTimeoutMs` and retried at most `attempts` times on a
// transient answer (429, 5xx, connection error, timeout) with a doubling backoff from `backoffMs`.
// A runtime method makes several such requests (read, compare, write, re-read on a conflict), so
// each method also runs under its own budget: when the budget ends the method stops with a
// retryable "unavailable" error, whatever it was doing. The budget is the worst case.

/** The Kubernetes runtime's per-request settings (KubernetesPodRuntime's defaults). */
export const kubernetesApiDefaults = {
  apiTimeoutMs: 10_000,
  attempts: 3,
  backoffMs: 200,
} as const;

// One request with its retries is attempts × timeout + the backoffs between them: with the
// defaults 3 × 10 s + 0.2 s + 0.4 s = 30.6 s.

/**
 * The budget of each Kubernetes runtime method (its worst case: every request it makes draws on
 * it). A create is a secret create and a pod create (each with a read on adoption); a credential
 * write is read + conditional patch of the secret, then of the pod's epoch annotation (a conflict
 * re-reads); a delete is read + delete of the pod, then of the secret.
 */
export const kubernetesMethodBudgetsMs = {
  create: 45_000,
  writeCredentials: 30_000,
  delete: 30_000,
  listManaged: 60_000,
} as const;

/**
 * After the caller aborts a create that may already have written, the runtime deletes what the
 * aborted write made (under the delete budget) before it rejects: the activity's cancellation can
 * take this long to settle.
 */
export const kubernetesCreateWorstCaseMs = kubernetesMethodBudgetsMs.create + kubernetesMethodBudgetsMs.delete;

/**
 * The process runtime: local files and signals. A delete is SIGTERM, up to `stopGraceMs` (5 s by
 * default) for the worker to go, SIGKILL and up to 2 s for it to be gone; a create that is aborted
 * after it spawned stops its child the same way; a credential write waits at most
 * `credentialLockWaitMs` for another writer of the same worker.
 */
export const processRuntimeBoundsMs = {
  stopGrace: 5_000,
  killWait: 2_000,
  credentialLockWait: 2_000,
  /** create: spawn + record writes (milliseconds) + an abort's cleanup (a delete). */
  create: 7_500,
  delete: 7_500,
  writeCredentials: 2_500,
} as const;

/**
 * What an activity wrapping a runtime call should allow at least (startToClose), whichever runtime
 * runs it: the larger of the two runtimes' worst cases. Add the activity's own margin on top.
 */
export const runtimeCallWorstCaseMs = {
  create: Math.max(kubernetesCreateWorstCaseMs, processRuntimeBoundsMs.create),
  writeCredentials: Math.max(kubernetesMethodBudgetsMs.writeCredentials, processRuntimeBoundsMs.writeCredentials),
  delete: Math.max(kubernetesMethodBudgetsMs.delete, processRuntimeBoundsMs.delete),
  listManaged: kubernetesMethodBudgetsMs.listManaged,
} as const;
