// The workflow bundle that `corral worker` registers. Workflow implementations are exported
// from here as they are added (workerLifecycle, pool, janitor).
export { workerLifecycleWorkflow } from './worker-lifecycle/worker-lifecycle';
export { poolWorkflow } from './pool/pool';
export { janitorWorkflow } from './janitor';
