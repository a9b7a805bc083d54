// Starting a worker's lifecycle workflow: shared by the pool's refill activity and the claim
// cold path, so both name, place and configure workers the same way.
import crypto from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import {
  failoverBounds,
  workerLifecycleWorkflowId,
  workerLifecycleWorkflowType,
  type BoundClaim,
  type CorralWorkflows,
  type WorkerLifecycleSettings,
} from '../common';

/** `w` + 12 hex: short enough for `<pool>-<id>-<attempt>` to stay a DNS label (pool ≤ 20). */
export function newWorkerId(): string {
  return `w${crypto.randomBytes(6).toString('hex')}`;
}

/**
 * Starts the workflow; an already-running one with this id is fine (a retried start). The one
 * place a worker's workflow is started: its arguments are checked against the workflow's
 * signature (CorralWorkflows, src/common/workflow-types.ts).
 */
export async function startWorkerLifecycle(
  temporal: Client,
  input: {
    pool: string;
    workerId: string;
    settings: WorkerLifecycleSettings;
    taskQueue: string;
    boundClaim?: BoundClaim | null;
  },
): Promise<void> {
  try {
    await temporal.workflow.start<CorralWorkflows['workerLifecycleWorkflow']>(workerLifecycleWorkflowType, {
      taskQueue: input.taskQueue,
      workflowId: workerLifecycleWorkflowId(input.pool, input.workerId),
      args: [
        { workerId: input.workerId, pool: input.pool, settings: input.settings, boundClaim: input.boundClaim ?? null },
      ],
      // A worker's id is never reused, not even after its workflow ended: its row is its history.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      // A task started on a replica that died is retried elsewhere after this (default 10 s):
      // part of the failover budget; continue-as-new keeps it.
      workflowTaskTimeout: failoverBounds.workflowTaskTimeoutMs,
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}
