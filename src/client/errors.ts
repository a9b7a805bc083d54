// What a CorralClient call can refuse with: one typed code per reason a caller handles
// differently (retry later, fix the request, stop asking this pool).

export const corralErrorCodes = [
  'pool_not_found',
  'pool_draining',
  /** maxWorkers reached and no warm worker: retry later. */
  'at_capacity',
  /** The claim did not get a worker within its timeout. */
  'timeout',
  /** The request itself is wrong; `field` names what. */
  'invalid_request',
  /** The lease is not the worker's current one (released, reclaimed, retired or reaped). */
  'stale_lease',
  /** No worker could be made for the claim: the spawn breaker is open, or the spawned worker failed. */
  'worker_unavailable',
] as const;
export type CorralErrorCode = (typeof corralErrorCodes)[number];

export class CorralError extends Error {
  override readonly name = 'CorralError';
  constructor(
    readonly code: CorralErrorCode,
    message: string,
    /** For `invalid_request`: the offending field. */
    readonly field?: string,
  ) {
    super(message);
  }
}

export function isCorralError(err: unknown, code?: CorralErrorCode): err is CorralError {
  return err instanceof CorralError && (code === undefined || err.code === code);
}
