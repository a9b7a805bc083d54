// The janitor workflow's contract: its input, its report (what a pass found and did, and what
// retention deleted), the label values its metrics use, and the report a pass starts from.
// Workflow-safe (the janitor workflow, its activities, the metrics and the tests share it).
// docs/decisions/0008-janitor.md, docs/decisions/0015-registry-retention-and-janitor-at-scale.md

/** What the janitor reconciles: a pod (with its secret), a secret alone, or a registry row. */
export const strandedResourceKinds = ['pod', 'secret', 'row'] as const;
export type StrandedResourceKind = (typeof strandedResourceKinds)[number];

/**
 * `deleted`: the resource is gone (for a row: retired by a fenced compare-and-set; the row itself
 * stays for the retention period). `delete_failed`: the attempt failed or its outcome is unknown;
 * the next run looks again. `kept`: divergence seen but deliberately left alone (within the grace
 * period, someone else moved the row first, or its workflow could not be described).
 */
export const reconcileOutcomes = ['deleted', 'delete_failed', 'kept'] as const;
export type ReconcileOutcome = (typeof reconcileOutcomes)[number];

/**
 * States a worker should leave within a pool deadline (spawn, activation, drain). A row whose
 * workflow runs but that has sat in one of them past the deadline plus a margin is wedged.
 */
export const wedgeableStates = ['spawning', 'activating', 'draining'] as const;
export type WedgeableState = (typeof wedgeableStates)[number];

/** Why the janitor acted on (or deliberately left) something. Stable strings: they are in reports and logs. */
export const janitorReasons = [
  /** A pod or secret whose worker has no registry row. */
  'no_row',
  /** A pod or secret of a worker whose row is `retired` or `lost`. */
  'terminal_row',
  /** A pod or secret of an earlier spawn attempt of a live worker, superseded longer than the grace ago. */
  'older_attempt',
  /** A non-terminal row whose lifecycle workflow is not running; also that row's pods and secrets. */
  'workflow_not_running',
  /** As above, but the row changed within the grace period: its workflow may be about to start. */
  'within_grace',
  /** The row moved between the janitor's read and its compare-and-set: someone else owns it. */
  'fence_miss',
  /** The janitor could not tell who owns it (describe failed, or an odd status): never act on a guess. */
  'status_unknown',
  /** A runtime entry whose name is not a corral pod name (`<pool>-<workerId>-<attempt>`). */
  'unidentified',
] as const;
export type JanitorReason = (typeof janitorReasons)[number];

/** One thing the janitor found, and what it did. Plain JSON; never carries credentials. */
export interface JanitorAction {
  kind: StrandedResourceKind;
  /** The pod name (kind pod/secret) or the worker id (kind row). */
  name: string;
  workerId: string;
  pool: string;
  reason: JanitorReason;
  outcome: ReconcileOutcome;
  /** Rows: the lifecycle workflow's status as seen (`NOT_FOUND`, `TERMINATED`…). */
  workflowStatus?: string;
  /** Rows retired by this run: the epoch after the compare-and-set. */
  epoch?: number;
  /** Why a delete failed or a row was kept (an error message or the row's actual state). */
  detail?: string;
}

/** A worker whose workflow runs, but whose row has sat in a deadline state past the deadline plus the margin. */
export interface WedgedWorker {
  workerId: string;
  pool: string;
  state: WedgeableState;
  /** Seconds since the row last changed. */
  sinceChangeSeconds: number;
  /** The pool's deadline for that state, in seconds. */
  deadlineSeconds: number;
}

export interface JanitorReport {
  /** When the run started (ISO 8601). */
  checkedAt: string;
  /** Entries in the runtime inventory (pods and/or secrets, one per pod name). */
  pods: number;
  /** Live registry rows examined. */
  rows: number;
  /**
   * How the lifecycle workflows were looked up: `visibility`, one listing of the running ones (and a
   * describe only of the rows missing from it); `describe`, every live row described because the
   * listing failed (bounded concurrency).
   */
  workflowLookup: 'visibility' | 'describe';
  /** The first actions (at most `maxActionsInReport`); the metrics count every one. */
  actions: JanitorAction[];
  /** Actions left out of `actions` (and `divergence`) to keep the report small. */
  omittedActions: number;
  /** Workers found wedged (at most `maxWedgedInReport` listed; the gauge counts them all). */
  wedged: WedgedWorker[];
  /** Human-readable lines: one per action and wedged worker, plus anything the janitor could not reconcile. */
  divergence: string[];
  /** The pass's duration (a figure for people; nothing decides on it). */
  durationMs: number;
}

export interface ReconcileInput {
  /** Rows changed (and attempts superseded) more recently than this are left alone (default 60 s). */
  graceMs?: number;
}

export interface RetentionInput {
  /** Terminal workers (with their trail) and ended claims older than this are deleted (default 7 days, at least 1 hour). */
  retentionMs?: number;
}

export interface RetentionReport {
  retentionMs: number;
  /** Retired/lost worker rows deleted, their audit rows, and ended claims. */
  workers: number;
  transitions: number;
  claims: number;
  /** Delete statements run (each at most `batchSize` rows). */
  batches: number;
  /** False when the pass stopped at its budget with more left (the next pass goes on). */
  complete: boolean;
  durationMs: number;
}

export type JanitorInput = ReconcileInput & RetentionInput;

/** The janitor's activities, by name: what a run's `failures` name. */
export const janitorActivityNames = ['reconcileStrandedResources', 'deleteExpiredRecords'] as const;
export type JanitorActivityName = (typeof janitorActivityNames)[number];

/** An activity that failed past its retries; the run went on and returned (the schedule runs again). */
export interface JanitorFailure {
  activity: JanitorActivityName;
  message: string;
}

/**
 * A run's report: the reconciliation's, plus what retention deleted (absent in runs from before
 * retention, or when retention failed), plus the activities that failed (absent in runs from
 * before `corral-janitor-never-fails`, and in clean passes). A failed reconciliation reports no
 * pods, rows or actions.
 */
export type JanitorRunReport = JanitorReport & { retention?: RetentionReport; failures?: JanitorFailure[] };

/** The report before anything was seen or done: where a pass starts, and what a failed reconciliation reports. */
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
