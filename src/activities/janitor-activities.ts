// The janitor: compares three views that should agree — what the pod runtime runs, what the
// registry says, and which lifecycle workflows Temporal runs — and cleans up what nobody owns:
// orphan pods, stranded secrets, and rows whose workflow is gone (retired by a fenced
// compare-and-set that bumps the epoch, so any stale holder fails closed). It never touches a
// worker whose lifecycle workflow is running: that workflow owns its pods, earlier attempts
// included. Rules and their reasons: docs/decisions/0008-janitor.md.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client, type WorkflowExecutionStatusName } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { nonTerminalStates, terminalStates } from '../lifecycle/states';
import type { JanitorMetrics, ReconcileOutcome, StrandedResourceKind } from '../metrics/janitor-metrics';
import { expectSnapshot, type WorkerLifecycleStore, type WorkerSnapshot } from '../registry/lifecycle-store';
import type { ManagedWorker, PodRuntime } from '../runtime/pod-runtime';
import type { WorkerPodRef } from '../runtime/worker-pod-spec';
import { workerLifecycleWorkflowId } from '../workflows/worker-lifecycle/messages';

/** Why the janitor acted on (or deliberately left) something. Stable strings: they are in reports and logs. */
export const janitorReasons = [
  /** A pod or secret whose worker has no registry row. */
  'no_row',
  /** A pod or secret of a worker whose row is `retired` or `lost`. */
  'terminal_row',
  /** A non-terminal row whose lifecycle workflow is not running; also that row's pods and secrets. */
  'workflow_not_running',
  /** As above, but the row changed within the grace period: its workflow may be about to start. */
  'within_grace',
  /** The row moved between the janitor's read and its compare-and-set: someone else owns it. */
  'fence_miss',
  /** The janitor could not tell who owns it (describe or registry read failed): never act on a guess. */
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

export interface JanitorReport {
  /** When the run started (ISO 8601). */
  checkedAt: string;
  /** Entries in the runtime inventory (pods and/or secrets, one per pod name). */
  pods: number;
  /** Non-terminal registry rows examined. */
  rows: number;
  actions: JanitorAction[];
  /** Human-readable lines: one per action, plus anything the janitor could not reconcile. */
  divergence: string[];
}

export interface ReconcileInput {
  /** Rows changed more recently than this are left alone (default 60 s). */
  graceMs?: number;
}

export const defaultJanitorGraceMs = 60_000;
const maxGraceMs = 7 * 24 * 3_600_000;
/** listWorkers' own ceiling; a registry with more non-terminal rows is reconciled in part (reported). */
const maxRowsPerRun = 10_000;

/** Every call leaves the janitor's hands within these bounds, so one stuck item cannot stall a run. */
const timeouts = {
  listManagedMs: 60_000,
  describeMs: 10_000,
  deleteMs: 30_000,
} as const;
/** Heartbeats also run on a timer: a slow call (up to its bound) must not look like a dead worker. */
const heartbeatEveryMs = 5_000;

export const janitorFailureTypes = {
  invalidInput: 'JanitorInputError',
} as const;

/** A bounded call that did not finish in time; the call itself may still complete later. */
export class JanitorCallTimeoutError extends Error {
  override readonly name = 'JanitorCallTimeoutError';
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${ms} ms`);
  }
}

async function bounded<T>(what: string, ms: number, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      call(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new JanitorCallTimeoutError(what, ms)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Kubernetes labels (or the process runtime's record) normally name the worker; a secret or
 * credentials file without them is identified by its name, `<pool>-<workerId>-<attempt>`, which
 * parses back unambiguously because worker ids have no "-".
 */
export function podRefOf(entry: ManagedWorker): WorkerPodRef | undefined {
  if (entry.workerId && entry.pool && entry.spawnAttempt >= 1) {
    return { workerId: entry.workerId, pool: entry.pool, spawnAttempt: entry.spawnAttempt, name: entry.name };
  }
  const match = /^(?<pool>[a-z0-9][-a-z0-9]*)-(?<workerId>[a-z0-9]+)-(?<attempt>[1-9][0-9]*)$/.exec(entry.name);
  if (!match?.groups) return undefined;
  const { pool, workerId, attempt } = match.groups as { pool: string; workerId: string; attempt: string };
  return { workerId, pool, spawnAttempt: Number(attempt), name: entry.name };
}

/** What Temporal says about a row's lifecycle workflow. */
type WorkflowPresence =
  | { kind: 'running' }
  | { kind: 'gone'; status: WorkflowExecutionStatusName | 'NOT_FOUND' }
  | { kind: 'unknown'; detail: string };

/**
 * Only a closed execution (or none at all) proves nobody owns the row. PAUSED is an operator's
 * hand on a live workflow; CONTINUED_AS_NEW should never be the latest run; anything else is
 * not a fact to act on.
 */
const closedStatuses: readonly WorkflowExecutionStatusName[] = [
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TERMINATED',
  'TIMED_OUT',
];

function parseGraceMs(value: unknown): number {
  if (value === undefined) return defaultJanitorGraceMs;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > maxGraceMs) {
    throw ApplicationFailure.create({
      type: janitorFailureTypes.invalidInput,
      message: `graceMs must be a whole number of milliseconds from 0 to ${maxGraceMs}, got ${JSON.stringify(value)}`,
      nonRetryable: true,
      details: [{ field: 'graceMs' }],
    });
  }
  return value;
}

/** The activity context when running as one; absent when called directly (a CLI, a script). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export interface JanitorDeps {
  store: WorkerLifecycleStore;
  runtime: PodRuntime;
  temporal: Client;
  metrics?: JanitorMetrics;
}

export function createJanitorActivities(deps: JanitorDeps) {
  const { store, runtime, temporal, metrics } = deps;

  async function describeWorkflow(row: WorkerSnapshot): Promise<WorkflowPresence> {
    const workflowId = workerLifecycleWorkflowId(row.pool, row.id);
    try {
      // Without a run id this is the latest run, so a workflow that continued as new is RUNNING.
      const description = await bounded(`describe ${workflowId}`, timeouts.describeMs, () =>
        temporal.withDeadline(Date.now() + timeouts.describeMs, () =>
          temporal.workflow.getHandle(workflowId).describe(),
        ),
      );
      const status = description.status.name;
      if (status === 'RUNNING' || status === 'PAUSED') return { kind: 'running' };
      if (closedStatuses.includes(status)) return { kind: 'gone', status };
      return { kind: 'unknown', detail: `workflow ${workflowId} is ${status}` };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { kind: 'gone', status: 'NOT_FOUND' };
      return { kind: 'unknown', detail: `describe ${workflowId}: ${message(err)}` };
    }
  }

  return {
    /**
     * One reconciliation pass. Reads the runtime inventory first and the registry second: rows are
     * always written before pods, so every pod in the inventory already had its row when the
     * registry is read, and "no row" is a fact, not a race. A failure on one item is recorded
     * (`delete_failed`, `status_unknown`) and the run goes on; only a failure to read the
     * inventory or the registry fails the activity (and is retried).
     */
    async reconcileStrandedResources(input: ReconcileInput = {}): Promise<JanitorReport> {
      const graceMs = parseGraceMs(input.graceMs);
      const context = activityContext();
      const startedAt = Date.now();
      const report: JanitorReport = {
        checkedAt: new Date(startedAt).toISOString(),
        pods: 0,
        rows: 0,
        actions: [],
        divergence: [],
      };
      let progress = { phase: 'inventory', done: 0 };
      const beat = () => {
        context?.heartbeat(progress);
        // Cancellation (or a lost heartbeat) is delivered through the signal; stop between items.
        if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason;
      };
      const ticker = context ? setInterval(() => context.heartbeat(progress), heartbeatEveryMs) : undefined;

      const record = (action: JanitorAction, line: string) => {
        report.actions.push(action);
        report.divergence.push(line);
        metrics?.recordReconciled({ kind: action.kind, outcome: action.outcome });
        const attrs = { ...action };
        if (action.outcome === 'delete_failed') context?.log.warn(`janitor: ${line}`, attrs);
        else context?.log.info(`janitor: ${line}`, attrs);
      };

      try {
        beat();
        const inventory = await bounded('list managed pods', timeouts.listManagedMs, () => runtime.listManaged());
        report.pods = inventory.length;
        beat();
        const rows = await store.listWorkers({ states: [...nonTerminalStates], limit: maxRowsPerRun });
        report.rows = rows.length;
        if (rows.length === maxRowsPerRun) {
          report.divergence.push(
            `registry has at least ${maxRowsPerRun} non-terminal rows; only the first ${maxRowsPerRun} were checked`,
          );
        }

        // --- rows whose lifecycle workflow is gone -------------------------------------------
        progress = { phase: 'rows', done: 0 };
        /** The janitor's latest view of each worker it looked up (after its own writes). */
        const rowOf = new Map<string, WorkerSnapshot | null>(rows.map((row) => [row.id, row]));
        /** Rows this pass retired: their pods and secrets are orphans now. */
        const reaped = new Set<string>();
        for (const row of rows) {
          beat();
          progress.done += 1;
          const presence = await describeWorkflow(row);
          if (presence.kind === 'running') continue;
          const base = { kind: 'row' as const, name: row.id, workerId: row.id, pool: row.pool };
          const what = `row ${row.id} (pool ${row.pool}, ${row.state} at epoch ${row.epoch})`;
          if (presence.kind === 'unknown') {
            record(
              { ...base, reason: 'status_unknown', outcome: 'kept', detail: presence.detail },
              `${what}: workflow status unknown (${presence.detail}); kept`,
            );
            continue;
          }
          const workflowStatus = presence.status;
          const ageMs = startedAt - row.updatedAt.getTime();
          if (ageMs < graceMs) {
            record(
              { ...base, reason: 'within_grace', outcome: 'kept', workflowStatus },
              `${what}: workflow ${workflowStatus}, but the row changed ${Math.max(0, Math.round(ageMs / 1000))} s ago (grace ${Math.round(graceMs / 1000)} s); kept`,
            );
            continue;
          }
          // A snapshot compare-and-set: exactly the epoch and state we read. origin janitor makes
          // the registry bump the epoch, so a lease or workflow still holding the old one fails closed.
          const result = await store.transition({
            workerId: row.id,
            expected: expectSnapshot(row),
            to: 'retired',
            operation: 'reap',
            origin: 'janitor',
            patch: { failureReason: 'workflow_not_running' },
          });
          if (result.outcome === 'transitioned') {
            rowOf.set(row.id, result.worker);
            reaped.add(row.id);
            record(
              {
                ...base,
                reason: 'workflow_not_running',
                outcome: 'deleted',
                workflowStatus,
                epoch: result.worker.epoch,
              },
              `${what}: workflow ${workflowStatus}; retired at epoch ${result.worker.epoch}`,
            );
          } else if (result.outcome === 'store_error') {
            // Outcome unknown: the write may still land. Forget the snapshot; the pods below are
            // judged on a fresh read (retired by now → deleted; otherwise left for the next pass).
            rowOf.delete(row.id);
            record(
              {
                ...base,
                reason: 'workflow_not_running',
                outcome: 'delete_failed',
                workflowStatus,
                detail: result.message,
              },
              `${what}: workflow ${workflowStatus}; retiring failed (${result.message})`,
            );
          } else {
            const detail =
              result.outcome === 'row_missing'
                ? 'row_missing'
                : `${result.outcome}: now ${result.actual.state} at epoch ${result.actual.epoch}`;
            // Someone else owns the row now; the pods below are judged on a fresh read of it.
            rowOf.delete(row.id);
            record(
              { ...base, reason: 'fence_miss', outcome: 'kept', workflowStatus, detail },
              `${what}: workflow ${workflowStatus}, but the row moved (${detail}); kept`,
            );
          }
        }

        // --- pods and secrets nobody owns ----------------------------------------------------
        progress = { phase: 'pods', done: 0 };
        for (const entry of inventory) {
          beat();
          progress.done += 1;
          const kind: StrandedResourceKind = entry.hasPod ? 'pod' : 'secret';
          const ref = podRefOf(entry);
          if (!ref) {
            record(
              {
                kind,
                name: entry.name,
                workerId: entry.workerId,
                pool: entry.pool,
                reason: 'unidentified',
                outcome: 'kept',
              },
              `${kind} ${entry.name}: not a corral pod name; kept`,
            );
            continue;
          }
          let row: WorkerSnapshot | null;
          if (rowOf.has(ref.workerId)) {
            row = rowOf.get(ref.workerId) ?? null;
          } else {
            try {
              row = await store.getWorker(ref.workerId);
            } catch (err) {
              record(
                {
                  kind,
                  name: ref.name,
                  workerId: ref.workerId,
                  pool: ref.pool,
                  reason: 'status_unknown',
                  outcome: 'kept',
                  detail: message(err),
                },
                `${kind} ${ref.name}: registry read failed (${message(err)}); kept`,
              );
              continue;
            }
            rowOf.set(ref.workerId, row);
          }
          let reason: 'no_row' | 'terminal_row' | 'workflow_not_running';
          let why: string;
          if (row === null) [reason, why] = ['no_row', 'no registry row'];
          else if (reaped.has(row.id)) [reason, why] = ['workflow_not_running', 'its row was just retired'];
          else if (terminalStates.includes(row.state)) [reason, why] = ['terminal_row', `its row is ${row.state}`];
          // A live row: its workflow runs (and owns this pod, whichever attempt), or the row was
          // kept above and its pods stay with it.
          else continue;
          const base = { kind, name: ref.name, workerId: ref.workerId, pool: ref.pool, reason };
          const what = `${kind} ${ref.name} (worker ${ref.workerId}, pool ${ref.pool})`;
          try {
            await bounded(`delete ${ref.name}`, timeouts.deleteMs, () => runtime.delete(ref));
            record({ ...base, outcome: 'deleted' }, `${what}: ${why}; deleted`);
          } catch (err) {
            record(
              { ...base, outcome: 'delete_failed', detail: message(err) },
              `${what}: ${why}; delete failed (${message(err)})`,
            );
          }
        }
        return report;
      } finally {
        clearInterval(ticker);
      }
    },
  };
}

export type JanitorActivities = ReturnType<typeof createJanitorActivities>;
