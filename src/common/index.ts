// corral's shared contracts, in the manner of `@temporalio/common`: everything that workflows,
// activities, the registry, the corral API, the client and the CLI must agree on — worker states
// and transitions, failure reasons and failure types, operations, task queues and workflow ids,
// the worker protocol's names, search attributes, and each workflow's input, messages and answers.
// Workflow-safe: no Node built-ins, no I/O; it imports only `@temporalio/workflow` (message
// definitions) and `@temporalio/common` (search attribute keys). Lower layers import contracts
// from here, never from `src/workflows/` (docs/decisions/0028-shared-contracts-module.md).
export * from './failover-bounds';
export * from './failure-reasons';
export * from './failure-types';
export * from './janitor-messages';
export * from './operations';
export * from './pod-names';
export * from './pool-messages';
export * from './runtime-bounds';
export * from './search-attributes';
export * from './states';
export * from './task-queues';
export * from './worker-lifecycle-messages';
export * from './worker-pod';
export * from './worker-protocol';
export * from './workflow-types';
