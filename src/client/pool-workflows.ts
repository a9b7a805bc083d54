// Starting (or waking) a pool's workflow: shared by the corral API (every apply, scale and drain)
// and the pool keeper of every `corral worker` (a pool workflow that is not running), so both
// start it the same way.
import {
  failoverBounds,
  poolSpecChangedSignal,
  poolWorkflowId,
  poolWorkflowType,
  type CorralWorkflows,
  type PoolSpecChange,
} from '../common';
import type { Client } from '@temporalio/client';

/**
 * `signalWithStart` of `corral/<pool>/pool`: a running pool workflow is woken (it re-reads the
 * registry), a missing or closed one is started. Answers the run that got the signal. The one
 * place a pool's workflow is started: its arguments and the signal's are checked against the
 * workflow's signature (CorralWorkflows, src/common/workflow-types.ts) and the signal definition.
 */
export async function wakePoolWorkflow(
  temporal: Client,
  input: { pool: string; generation: number; taskQueue: string },
): Promise<{ runId: string }> {
  const handle = await temporal.workflow.signalWithStart<CorralWorkflows['poolWorkflow'], [PoolSpecChange]>(
    poolWorkflowType,
    {
      taskQueue: input.taskQueue,
      workflowId: poolWorkflowId(input.pool),
      args: [{ pool: input.pool }],
      signal: poolSpecChangedSignal,
      signalArgs: [{ generation: input.generation }],
      // A task started on a replica that died is retried elsewhere after this: the failover budget.
      workflowTaskTimeout: failoverBounds.workflowTaskTimeoutMs,
    },
  );
  return { runId: handle.signaledRunId };
}
