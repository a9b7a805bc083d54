import type { WorkerState } from '../common';

/** Input that fails validation before any SQL runs. `field` names the offending input. */
export class RegistryInputError extends Error {
  override readonly name = 'RegistryInputError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid ${field}: ${message}`);
  }
}

/** A transition the state machine does not allow, refused before any SQL runs. */
export class TransitionNotAllowedError extends Error {
  override readonly name = 'TransitionNotAllowedError';
  constructor(
    readonly from: WorkerState,
    readonly to: WorkerState,
  ) {
    super(`transition ${from} → ${to} is not allowed`);
  }
}

/** A read (or a create) failed because the database could not be reached or answered with an error. */
export class RegistryUnavailableError extends Error {
  override readonly name = 'RegistryUnavailableError';
}
