// The janitor's workflow: one pass per run, started by the Temporal Schedule `corral/janitor`
// (src/client/janitor-schedule.ts). The work is two heartbeating activities on the janitor's own
// task queue (a bulkhead: a long pass never takes a slot from spawns or registry work): the
// reconciliation, then retention. The workflow only bounds them, so a run costs a handful of
// history events. docs/decisions/0008-janitor.md, docs/decisions/0015-registry-retention-and-janitor-at-scale.md
import { isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type {
  JanitorActivities,
  JanitorReport,
  ReconcileInput,
  RetentionInput,
  RetentionReport,
} from '../activities/janitor-activities';
import { janitorTaskQueueOf } from '../lifecycle/task-queues';

export type JanitorInput = ReconcileInput & RetentionInput;

/** A run's report: the reconciliation's, plus what retention deleted (absent in runs from before retention). */
export type JanitorRunReport = JanitorReport & { retention?: RetentionReport };

/** Runs started before the janitor had its own queue replay this: the activity on the workflow's queue. */
const legacyActivities = () =>
  proxyActivities<JanitorActivities>({
    summary: 'reconcile stranded pods, secrets and rows',
    startToCloseTimeout: '5m',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 3 },
  });

export async function janitorWorkflow(input: JanitorInput = {}): Promise<JanitorRunReport> {
  if (!patched('corral-janitor-queue')) {
    return await legacyActivities().reconcileStrandedResources({ graceMs: input.graceMs });
  }
  const common = {
    taskQueue: janitorTaskQueueOf(workflowInfo().taskQueue),
    // No replica polling the janitor's queue (e.g. mid-rollout): the attempt fails instead of
    // waiting out the whole run, and the next scheduled run tries again.
    scheduleToStartTimeout: '1m',
    // The activities heartbeat on a timer, so this notices a dead corral worker, not a slow call.
    heartbeatTimeout: '30s',
  } as const;
  const { reconcileStrandedResources } = proxyActivities<JanitorActivities>({
    ...common,
    summary: 'reconcile stranded pods, secrets and rows',
    // O(live workers) with a fixed number of round trips: seconds at thousands of workers.
    startToCloseTimeout: '5m',
    // A failed read of the inventory or the registry is worth a retry; after three the run fails
    // and the next scheduled run starts from scratch anyway.
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 3 },
  });
  const { deleteExpiredRecords } = proxyActivities<JanitorActivities>({
    ...common,
    summary: 'delete records past the retention period',
    // The pass stops at its own budget (2 min) well inside this; whole batches are never undone.
    startToCloseTimeout: '3m',
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 2 },
  });

  // Retention does not depend on the reconciliation: it runs even when the inventory could not be
  // read (a runtime outage must not let the registry grow without bound). The run still fails
  // afterwards, so the failure shows.
  let report: JanitorReport | undefined;
  let reconcileFailure: unknown;
  try {
    report = await reconcileStrandedResources({ graceMs: input.graceMs });
  } catch (err) {
    if (isCancellation(err)) throw err;
    reconcileFailure = err;
  }
  const retention = await deleteExpiredRecords({ retentionMs: input.retentionMs });
  if (report === undefined) throw reconcileFailure;
  return { ...report, retention };
}
