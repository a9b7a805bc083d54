// The janitor's workflow: one reconciliation pass per run, started by the Temporal Schedule
// `corral/janitor` (src/client/janitor-schedule.ts). All the work is one heartbeating activity;
// the workflow only bounds it, so a run costs a handful of history events.
import { proxyActivities } from '@temporalio/workflow';
import type { JanitorActivities, JanitorReport, ReconcileInput } from '../activities/janitor-activities';

export type JanitorInput = ReconcileInput;

const { reconcileStrandedResources } = proxyActivities<JanitorActivities>({
  summary: 'reconcile stranded pods, secrets and rows',
  // A pass is sequential over every row and pod, each call individually bounded; 5 min is ample
  // for thousands of workers and short enough that the next scheduled run is not held up long.
  startToCloseTimeout: '5m',
  // The activity heartbeats on a timer, so this notices a dead corral worker, not a slow call.
  heartbeatTimeout: '30s',
  // A failed read of the inventory or the registry is worth a retry; after three the run fails
  // and the next scheduled run starts from scratch anyway.
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 3 },
});

export async function janitorWorkflow(input: JanitorInput = {}): Promise<JanitorReport> {
  return await reconcileStrandedResources({ graceMs: input.graceMs });
}
