// The janitor's report before anything was seen or done: where a pass starts filling it in, and
// what a run whose reconciliation failed reports. Workflow-safe (the janitor workflow uses it too).
import type { JanitorReport } from '../activities/janitor-activities';

export function emptyJanitorReport(startedAt: number): JanitorReport {
  return {
    checkedAt: new Date(startedAt).toISOString(),
    pods: 0,
    rows: 0,
    workflowLookup: 'visibility',
    actions: [],
    omittedActions: 0,
    wedged: [],
    divergence: [],
    durationMs: 0,
  };
}
