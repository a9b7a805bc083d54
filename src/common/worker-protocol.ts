// The versions of the worker protocol (docs/worker-protocol.md, decision 0020). A
// worker reports its version on GET /healthz; an endpoint that does not is a `type_mismatch`.
// Workflow-safe (no Node built-ins): the pool spec, the workflow's settings, the activities and
// the API share these names.

/** Unauthenticated: only for pools that opt into it (`workerProtocol`), documented as insecure. */
export const workerProtocolV1 = 'corral.worker/v1';
/** Signed calls and answers (the default). */
export const workerProtocolV2 = 'corral.worker/v2';
export const workerProtocols = [workerProtocolV2, workerProtocolV1] as const;
export type WorkerProtocolName = (typeof workerProtocols)[number];
