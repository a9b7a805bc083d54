// The version of the worker protocol (DESIGN, "Worker protocol") this corral speaks. A worker
// reports it on GET /healthz; an endpoint that does not is a `type_mismatch`.
export const workerProtocolVersion = 'corral.worker/v1';
