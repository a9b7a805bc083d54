// The janitor's workflow: one pass per run, started by the Temporal Schedule `corral/janitor`
// (src/client/janitor-schedule.ts). The work is two heartbeating activities on the janitor's own
// task queue (a bulkhead: a long pass never takes a slot from spawns or registry work): the
// reconciliation, then retention. The workflow only bounds them, so a run costs a handful of
// history events. docs/decisions/0008-janitor.md, docs/decisions/0015-registry-retention-and-janitor-at-scale.md
import { ActivityFailure, isCancellation, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { JanitorActivities } from '../activities/janitor-activities';
import {
  emptyJanitorReport,
  janitorTaskQueueOf,
  type JanitorActivityName,
  type JanitorFailure,
  type JanitorInput,
  type JanitorReport,
  type JanitorRunReport,
} from '../common';

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

  if (patched('corral-janitor-never-fails')) {
    return await passThatNeverFails(input, reconcileStrandedResources, deleteExpiredRecords);
  }

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

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * A controller never fails (docs/decisions/0016-controllers-never-fail.md): each activity that
 * fails past its retries is counted in `failures`, logged and reported in `divergence`, and the
 * run returns; the schedule's next run tries again. Retention runs whether or not the
 * reconciliation did. Only a cancellation (an operator, the run timeout) ends the run otherwise.
 */
async function passThatNeverFails(
  input: JanitorInput,
  reconcile: JanitorActivities['reconcileStrandedResources'],
  retain: JanitorActivities['deleteExpiredRecords'],
): Promise<JanitorRunReport> {
  const startedAt = Date.now();
  const failures: JanitorFailure[] = [];
  const attempt = async <T>(activity: JanitorActivityName, call: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await call();
    } catch (err) {
      if (isCancellation(err)) throw err;
      const failure = { activity, message: failureMessage(err) };
      failures.push(failure);
      log.warn('janitor activity failed; the next scheduled run tries again', { ...failure });
      return undefined;
    }
  };
  const report = (await attempt('reconcileStrandedResources', () => reconcile({ graceMs: input.graceMs }))) ?? {
    ...emptyJanitorReport(startedAt),
  };
  const retention = await attempt('deleteExpiredRecords', () => retain({ retentionMs: input.retentionMs }));
  const divergence = [...report.divergence, ...failures.map((f) => `${f.activity} failed: ${f.message}`)];
  // A clean pass reports exactly what it did before this patch: `failures` only when there are some.
  return { ...report, divergence, ...(retention ? { retention } : {}), ...(failures.length > 0 ? { failures } : {}) };
}
