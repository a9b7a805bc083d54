// The workflow bundle that `corral worker` registers. Workflow implementations are exported
// from here as they are added (workerLifecycle, pool, janitor).
export * from './search-attributes';
