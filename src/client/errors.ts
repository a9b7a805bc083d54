// What the corral API (and so CorralClient) refuses with: one typed code per reason a caller
// handles differently (retry later, fix the request, stop asking this pool), each with its HTTP
// status. The server throws CorralError; the client re-creates it from the `{code, message,
// field?, details?}` body, so both sides share one definition.

export const corralErrorStatus = {
  /** The request itself is wrong; `field` names what. */
  invalid_request: 400,
  /** No bearer token, or not one of the API's tokens. */
  unauthorized: 401,
  pool_not_found: 404,
  /** The worker (or another named resource) does not exist. */
  not_found: 404,
  pool_draining: 409,
  /** The lease is not the worker's current one (released, reclaimed, retired, reaped, or another tenant's). */
  stale_lease: 409,
  /** The lease this request id was granted has ended; `details.lease` is that lease. */
  lease_ended: 410,
  /** The body is larger than the API accepts. */
  payload_too_large: 413,
  /**
   * The tenant holds its quota of the pool's workers (`maxPerTenant` or its `tenantQuotas` entry):
   * release one first. `details`: `{ held, quota }`.
   */
  quota_exceeded: 429,
  /** maxWorkers reached and no warm worker: retry later. */
  at_capacity: 503,
  /** No worker could be made for the claim: the spawn breaker is open, or the spawned worker failed. */
  worker_unavailable: 503,
  /** The claim did not get a worker within its timeout. */
  timeout: 504,
  /** corral itself failed (its registry or Temporal did not answer). */
  internal: 500,
} as const;
export type CorralErrorCode = keyof typeof corralErrorStatus;
export const corralErrorCodes = Object.keys(corralErrorStatus) as CorralErrorCode[];

export class CorralError extends Error {
  override readonly name = 'CorralError';
  constructor(
    readonly code: CorralErrorCode,
    message: string,
    /** For `invalid_request`: the offending field. */
    readonly field?: string,
    /** Structured context, e.g. `{ lease }` for `lease_ended`. */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  get status(): number {
    return corralErrorStatus[this.code];
  }

  toBody(): { code: CorralErrorCode; message: string; field?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.field !== undefined ? { field: this.field } : {}),
      ...(this.details !== undefined ? { details: this.details } : {}),
    };
  }
}

export function isCorralError(err: unknown, code?: CorralErrorCode): err is CorralError {
  return err instanceof CorralError && (code === undefined || err.code === code);
}
