// corral's workflows as a contract: each one's type name (what Temporal registers and starts) and
// signature (its input and result). Starters outside src/workflows start them by these names with
// arguments the compiler checks against these signatures (src/client/*-workflows.ts,
// src/client/janitor-schedule.ts), without importing workflow code. The bundle
// (src/workflows/index.ts) exports exactly these names with these signatures:
// test/unit/workflow-contracts.test.ts checks both.
import type { JanitorInput, JanitorRunReport } from './janitor-messages';
import type { PoolWorkflowInput, PoolWorkflowResult } from './pool-messages';
import type { WorkerLifecycleInput, WorkerLifecycleResult } from './worker-lifecycle-messages';

// Properties, not methods: their parameters are checked strictly (no method bivariance).
export interface CorralWorkflows {
  /** One per worker, `corral/<pool>/worker/<workerId>`: its timers and side effects. */
  workerLifecycleWorkflow: (input: WorkerLifecycleInput) => Promise<WorkerLifecycleResult>;
  /** One per pool, `corral/<pool>/pool`: capacity, breaker, drain. */
  poolWorkflow: (input: PoolWorkflowInput) => Promise<PoolWorkflowResult>;
  /** One run per janitor pass, started by the `corral/janitor` Schedule. */
  janitorWorkflow: (input?: JanitorInput) => Promise<JanitorRunReport>;
}
export type CorralWorkflowType = keyof CorralWorkflows;

export const workerLifecycleWorkflowType = 'workerLifecycleWorkflow' satisfies CorralWorkflowType;
export const poolWorkflowType = 'poolWorkflow' satisfies CorralWorkflowType;
export const janitorWorkflowType = 'janitorWorkflow' satisfies CorralWorkflowType;
export const corralWorkflowTypes = [
  workerLifecycleWorkflowType,
  poolWorkflowType,
  janitorWorkflowType,
] as const satisfies readonly CorralWorkflowType[];
