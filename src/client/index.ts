// `corral/client`, the entry of the installable package: CorralClient, the errors it throws and the
// types of what it sends and answers. It loads only the HTTP client and its error codes — no
// fastify, pg, Temporal or Kubernetes client — so a control plane can import it cheaply
// (test/e2e/control-plane-example.test.ts checks what importing it loads).
export {
  CorralClient,
  CorralUnreachableError,
  type ClaimOptions,
  type ClaimResult,
  type CorralClientOptions,
  type Lease,
  type LeaseCheck,
  type Pool,
  type PoolDetails,
  type TransitionResponse,
  type Worker,
} from './corral-client';
export { CorralError, corralErrorCodes, corralErrorStatus, isCorralError, type CorralErrorCode } from './errors';
export type { ApplyPoolResponse, DeletePoolResponse, PoolScaleResponse, ReleaseResponse } from '../api/api-schemas';
export type { PoolSpec, PoolSpecInput } from '../config/pool-spec';
export type { PoolDescription, WorkerState } from '../common';
