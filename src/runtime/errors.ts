// Errors a PodRuntime throws. Failures of the *worker* (crash, OOM, bad image...) are not errors:
// awaitReady returns them as a typed verdict. These are failures of the *call*.

/** Input refused before any API call or file write; `field` names the offending input. */
export class RuntimeInputError extends Error {
  override readonly name = 'RuntimeInputError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid ${field}: ${message}`);
  }
}

/**
 * The runtime's identity lacks a permission. Names the verb and resource so an operator can fix
 * the Role without reading logs; `corral doctor` reports the same gap up front.
 */
export class RuntimeForbiddenError extends Error {
  override readonly name = 'RuntimeForbiddenError';
  constructor(
    readonly verb: string,
    readonly resource: string,
    readonly namespace: string,
    detail: string,
  ) {
    super(
      `forbidden: corral may not ${verb} ${resource} in namespace "${namespace}" (${detail}); run \`corral doctor\``,
    );
  }
}

/** The runtime could not be reached (or kept failing) within the call's bound; safe to retry. */
export class RuntimeUnavailableError extends Error {
  override readonly name = 'RuntimeUnavailableError';
}

/** A resource with the worker's deterministic name exists but is not corral's, so it is not adopted. */
export class WorkerNameConflictError extends Error {
  override readonly name = 'WorkerNameConflictError';
  constructor(
    readonly kind: string,
    readonly resourceName: string,
  ) {
    super(`${kind} ${resourceName} already exists and is not managed by corral for this worker; refusing to adopt it`);
  }
}

/** The worker's pod (process) does not exist, so there is nothing to write to. */
export class WorkerPodNotFoundError extends Error {
  override readonly name = 'WorkerPodNotFoundError';
  constructor(readonly resourceName: string) {
    super(`worker ${resourceName} does not exist in the runtime`);
  }
}

/**
 * A ResourceQuota of the namespace refused the write (the namespace is full, or the quota's usage
 * is not calculated yet). Not a permission problem and not a bad spec: the same create may pass
 * once capacity frees up, so callers retry it and record `quota_exceeded`, never `config_error`.
 */
export class RuntimeQuotaExceededError extends Error {
  override readonly name = 'RuntimeQuotaExceededError';
  constructor(
    readonly resource: string,
    readonly namespace: string,
    detail: string,
  ) {
    super(`a ResourceQuota in namespace "${namespace}" refused to admit ${resource}: ${detail}`);
  }
}

/** The epoch and credential version a write carries, or that the runtime already holds. */
export interface CredentialStamp {
  epoch: number;
  version: number;
}

/**
 * A write that would go backwards: the runtime already holds credentials (or an epoch) newer than
 * the ones offered, so the write is refused and nothing changed. Whoever sent it is behind (a late
 * attempt of an activity that was already retried, a stale replica); a retry cannot help.
 */
export class StaleRuntimeWriteError extends Error {
  override readonly name = 'StaleRuntimeWriteError';
  constructor(
    readonly resourceName: string,
    readonly stored: CredentialStamp,
    readonly attempted: CredentialStamp,
  ) {
    super(
      `refusing to write ${resourceName} backwards: it holds epoch ${stored.epoch} / credential version ${stored.version}, the write carries epoch ${attempted.epoch} / version ${attempted.version}`,
    );
  }
}
