// The janitor: compares three views that should agree — what the pod runtime runs, what the
// registry says, and which lifecycle workflows Temporal runs — and cleans up what nobody owns:
// orphan pods, stranded secrets, pods of superseded spawn attempts, and rows whose workflow is
// gone (retired by a fenced compare-and-set that bumps the epoch, so any stale holder fails
// closed). It never touches a worker whose lifecycle workflow is running; it reports one that is
// running but wedged. Then retention deletes what has been terminal for longer than the period.
//
// A pass costs O(live workers) and a fixed number of round trips: one inventory listing, one
// registry read per 1,000 pod names, one read of the live rows, one visibility listing per 1,000
// running workflows; a describe only for the few rows visibility says are not running (bounded
// concurrency). Rules and reasons: docs/decisions/0008-janitor.md and
// docs/decisions/0015-registry-retention-and-janitor-at-scale.md.
import { forEachBounded } from './bounded-concurrency';
import { activityContext, startProgressHeartbeats } from './progress-heartbeats';
import { performance } from 'node:perf_hooks';
import { WorkflowNotFoundError, type Client, type WorkflowExecutionStatusName } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { janitorRetention } from '../client/janitor-schedule';
import {
  emptyJanitorReport,
  terminalStates,
  wedgeableStates,
  workerLifecycleWorkflowId,
  workerLifecycleWorkflowType,
  type JanitorAction,
  type JanitorReason,
  type JanitorReport,
  type ReconcileInput,
  type RetentionInput,
  type RetentionReport,
  type StrandedResourceKind,
  type WedgeableState,
  type WedgedWorker,
  type WorkerPodRef,
} from '../common';
import type { JanitorMetrics } from '../metrics/janitor-metrics';
import { expectSnapshot, type WorkerLifecycleStore, type WorkerSnapshot } from '../registry/lifecycle-store';
import type { ManagedWorker, PodRuntime } from '../runtime/pod-runtime';

export const defaultJanitorGraceMs = 60_000;
const maxGraceMs = 7 * 24 * 3_600_000;
/** A registry with more live rows than this is reconciled in part (reported). */
const maxLiveRowsPerPass = 100_000;
/** Reports travel in Temporal payloads: keep them far below the 2 MiB payload limit. */
export const maxActionsInReport = 500;
export const maxWedgedInReport = 100;
/**
 * How far past its deadline a row must be to count as wedged: covers an activity's retries and
 * backoff and a workflow task delayed by a corral worker restarting, so a healthy but slow worker
 * is not reported.
 */
export const wedgedMarginMs = 5 * 60_000;

/** Every call leaves the janitor's hands within these bounds, so one stuck item cannot stall a run. */
const timeouts = {
  listManagedMs: 60_000,
  listWorkflowsPageMs: 15_000,
  describeMs: 10_000,
  deleteMs: 30_000,
} as const;
/** Describes (only of rows visibility did not list as running) and runtime deletes in flight at once. */
const describeConcurrency = 16;
const deleteConcurrency = 8;
/** Running lifecycle workflows per visibility page, and a bound on pages (beyond it, describes decide). */
const visibilityPageSize = 1_000;
const maxVisibilityPages = 200;
/** Heartbeats also run on a timer: a slow call (up to its bound) must not look like a dead worker. */
const heartbeatEveryMs = 5_000;

/** Retention deletes in statements of at most this many rows, and at most this much per pass. */
export interface RetentionLimits {
  batchSize: number;
  maxBatchesPerPass: number;
  /** Wall-clock budget of one pass (well inside the activity's start-to-close timeout). */
  budgetMs: number;
}
export const defaultRetentionLimits: RetentionLimits = { batchSize: 1_000, maxBatchesPerPass: 200, budgetMs: 120_000 };

const runningLifecycleWorkflowsQuery = `WorkflowType = '${workerLifecycleWorkflowType}' AND ExecutionStatus = 'Running'`;

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

/**
 * Runs `call` for at most `ms`. The call gets a signal aborted at that bound (or when `outer`, the
 * activity's cancellation, fires), so a runtime call that timed out stops instead of going on in
 * the background.
 */
async function bounded<T>(
  what: string,
  ms: number,
  call: (signal: AbortSignal) => Promise<T>,
  outer?: AbortSignal,
): Promise<T> {
  const timeout = new AbortController();
  const signal = outer ? AbortSignal.any([timeout.signal, outer]) : timeout.signal;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      call(signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new JanitorCallTimeoutError(what, ms);
          timeout.abort(err);
          reject(err);
        }, ms);
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

function invalidInput(field: string, reason: string, value: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    type: janitorFailureTypes.invalidInput,
    message: `${field} ${reason}, got ${JSON.stringify(value)}`,
    nonRetryable: true,
    details: [{ field }],
  });
}

function parseGraceMs(value: unknown): number {
  if (value === undefined) return defaultJanitorGraceMs;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > maxGraceMs) {
    throw invalidInput('graceMs', `must be a whole number of milliseconds from 0 to ${maxGraceMs}`, value);
  }
  return value;
}

function parseRetentionMs(value: unknown): number {
  if (value === undefined) return janitorRetention.defaultMs;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < janitorRetention.minMs ||
    value > janitorRetention.maxMs
  ) {
    throw invalidInput(
      'retentionMs',
      `must be a whole number of milliseconds from ${janitorRetention.minMs} (1 hour) to ${janitorRetention.maxMs}`,
      value,
    );
  }
  return value;
}

export interface JanitorDeps {
  store: WorkerLifecycleStore;
  runtime: PodRuntime;
  temporal: Client;
  metrics?: JanitorMetrics;
  /** Retention's batch size and per-pass budget (tests make them small). */
  retentionLimits?: Partial<RetentionLimits>;
  /**
   * Where a completed pass is recorded (the registry, `PoolStore.recordJanitorPass`), so every
   * replica's /metrics reports the seconds since the last one. Without it nothing is recorded.
   */
  passes?: JanitorPassRecorder;
}

export interface JanitorPassRecorder {
  recordJanitorPass(): Promise<void>;
}

/** Recording a completed pass may take this long; a failure is logged, never the pass's failure. */
const recordPassTimeoutMs = 5_000;

export function createJanitorActivities(deps: JanitorDeps) {
  const { store, runtime, temporal, metrics } = deps;
  const retentionLimits: RetentionLimits = { ...defaultRetentionLimits, ...deps.retentionLimits };

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

  /**
   * The ids of every running lifecycle workflow, from the visibility store: one call per 1,000.
   * Visibility lags a little behind the workflows themselves, so absence here is only a reason to
   * describe that one workflow, never a fact to act on. `complete: false` past the page bound.
   */
  async function listRunningLifecycleWorkflows(beat: () => void): Promise<{ ids: Set<string>; complete: boolean }> {
    const ids = new Set<string>();
    let nextPageToken: Uint8Array | undefined;
    for (let page = 0; page < maxVisibilityPages; page++) {
      beat();
      const token = nextPageToken;
      // The raw call: the workflow ids are all the janitor needs (no memo or search attribute decoding).
      const response = await bounded('list running lifecycle workflows', timeouts.listWorkflowsPageMs, () =>
        temporal.withDeadline(Date.now() + timeouts.listWorkflowsPageMs, () =>
          temporal.workflowService.listWorkflowExecutions({
            namespace: temporal.options.namespace,
            query: runningLifecycleWorkflowsQuery,
            pageSize: visibilityPageSize,
            nextPageToken: token,
          }),
        ),
      );
      for (const execution of response.executions ?? []) {
        const workflowId = execution.execution?.workflowId;
        if (workflowId) ids.add(workflowId);
      }
      nextPageToken = response.nextPageToken ?? undefined;
      if (!nextPageToken || nextPageToken.length === 0) return { ids, complete: true };
    }
    return { ids, complete: false };
  }

  return {
    /**
     * One reconciliation pass, in two phases. Pods first: the runtime inventory is read, then the
     * registry rows it names (rows are always written before pods, so every listed pod already
     * had its row by then, and "no row" is a fact, not a race); pods with no row, a terminal row,
     * or a superseded spawn attempt are deleted. Rows second: the live rows are read, and the
     * running lifecycle workflows listed in one visibility query; a row missing from that list is
     * described to be sure, and retired when its workflow is closed or absent (after the grace),
     * with its pods. Finally rows overdue in a deadline state whose workflow runs are reported as
     * wedged. A failure on one item is recorded (`delete_failed`, `status_unknown`) and the pass
     * goes on; only failing to read the inventory or the registry fails the activity (retried).
     */
    async reconcileStrandedResources(input: ReconcileInput = {}): Promise<JanitorReport> {
      const graceMs = parseGraceMs(input.graceMs);
      const context = activityContext();
      const startedAt = Date.now();
      const started = performance.now();
      const report = emptyJanitorReport(startedAt);
      let progress = { phase: 'inventory', done: 0 };
      const heartbeats = startProgressHeartbeats(() => progress, heartbeatEveryMs, context);
      const beat = () => heartbeats.check();

      const record = (action: JanitorAction, line: string) => {
        metrics?.recordReconciled({ kind: action.kind, outcome: action.outcome });
        if (report.actions.length < maxActionsInReport) {
          report.actions.push(action);
          report.divergence.push(line);
        } else {
          report.omittedActions += 1;
        }
        const attrs = { ...action };
        if (action.outcome === 'delete_failed') context?.log.warn(`janitor: ${line}`, attrs);
        else context?.log.info(`janitor: ${line}`, attrs);
      };

      /** Deletes one pod (and its secret), recording the outcome. */
      const deletePod = async (
        entry: ManagedWorker,
        ref: WorkerPodRef,
        reason: Extract<JanitorReason, 'no_row' | 'terminal_row' | 'older_attempt' | 'workflow_not_running'>,
        why: string,
      ) => {
        const kind: StrandedResourceKind = entry.hasPod ? 'pod' : 'secret';
        const base = { kind, name: ref.name, workerId: ref.workerId, pool: ref.pool, reason };
        const what = `${kind} ${ref.name} (worker ${ref.workerId}, pool ${ref.pool})`;
        try {
          await bounded(
            `delete ${ref.name}`,
            timeouts.deleteMs,
            (signal) => runtime.delete(ref, { signal }),
            context?.cancellationSignal,
          );
          record({ ...base, outcome: 'deleted' }, `${what}: ${why}; deleted`);
        } catch (err) {
          record(
            { ...base, outcome: 'delete_failed', detail: message(err) },
            `${what}: ${why}; delete failed (${message(err)})`,
          );
        }
      };

      try {
        // --- phase 1: pods and secrets nobody owns ---------------------------------------------
        beat();
        const inventory = await bounded(
          'list managed pods',
          timeouts.listManagedMs,
          (signal) => runtime.listManaged(undefined, { signal }),
          context?.cancellationSignal,
        );
        report.pods = inventory.length;
        beat();
        const identified: { entry: ManagedWorker; ref: WorkerPodRef }[] = [];
        for (const entry of inventory) {
          const ref = podRefOf(entry);
          if (ref) {
            identified.push({ entry, ref });
            continue;
          }
          const kind: StrandedResourceKind = entry.hasPod ? 'pod' : 'secret';
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
        }
        const podRows = await store.getWorkers(identified.map(({ ref }) => ref.workerId));
        // Older attempts of live workers: orphans once the worker moved past them longer than the grace ago.
        const superseded = identified.filter(({ ref }) => {
          const row = podRows.get(ref.workerId);
          return row !== undefined && !terminalStates.includes(row.state) && ref.spawnAttempt < row.spawnAttempt;
        });
        const respawned =
          superseded.length > 0
            ? await store.respawnedAt(superseded.map(({ ref }) => ref.workerId))
            : new Map<string, Date>();

        progress = { phase: 'pods', done: 0 };
        /** Pods of live rows, by worker: deleted with the row if phase 2 retires it. */
        const podsOfLiveRows = new Map<string, { entry: ManagedWorker; ref: WorkerPodRef }[]>();
        const orphans: {
          entry: ManagedWorker;
          ref: WorkerPodRef;
          reason: 'no_row' | 'terminal_row' | 'older_attempt';
          why: string;
        }[] = [];
        for (const item of identified) {
          const { ref } = item;
          const row = podRows.get(ref.workerId);
          if (row === undefined) {
            orphans.push({ ...item, reason: 'no_row', why: 'no registry row' });
          } else if (terminalStates.includes(row.state)) {
            orphans.push({ ...item, reason: 'terminal_row', why: `its row is ${row.state}` });
          } else if (ref.spawnAttempt < row.spawnAttempt) {
            const movedOnAt = (respawned.get(row.id) ?? row.updatedAt).getTime();
            if (startedAt - movedOnAt >= graceMs) {
              orphans.push({
                ...item,
                reason: 'older_attempt',
                why: `attempt ${ref.spawnAttempt} of a worker now on attempt ${row.spawnAttempt}`,
              });
            }
            // Within the grace the workflow may still be cleaning it up itself: not divergence yet.
          } else {
            // The current attempt of a live row: its workflow owns it (or phase 2 retires the row and deletes it).
            const list = podsOfLiveRows.get(row.id) ?? [];
            list.push(item);
            podsOfLiveRows.set(row.id, list);
          }
        }
        await forEachBounded(
          orphans,
          deleteConcurrency,
          async ({ entry, ref, reason, why }) => {
            progress.done += 1;
            await deletePod(entry, ref, reason, why);
          },
          beat,
        );

        // --- phase 2: rows whose lifecycle workflow is gone ----------------------------------
        progress = { phase: 'rows', done: 0 };
        beat();
        const rows = await store.listLiveWorkers(maxLiveRowsPerPass);
        report.rows = rows.length;
        if (rows.length === maxLiveRowsPerPass) {
          report.divergence.push(
            `registry has at least ${maxLiveRowsPerPass} live rows; only ${maxLiveRowsPerPass} were checked`,
          );
        }
        let running: Set<string> | undefined;
        try {
          const listed = await listRunningLifecycleWorkflows(beat);
          running = listed.ids;
          if (!listed.complete) {
            report.divergence.push(
              `more than ${maxVisibilityPages * visibilityPageSize} running lifecycle workflows; the rest were described one by one`,
            );
          }
        } catch (err) {
          if (context?.cancellationSignal.aborted) throw err;
          // Visibility unavailable (or not supporting the query): describe every row instead.
          report.workflowLookup = 'describe';
          report.divergence.push(`visibility listing failed (${message(err)}); every live row was described`);
        }
        const unlisted = running
          ? rows.filter((row) => !running.has(workerLifecycleWorkflowId(row.pool, row.id)))
          : rows;
        const presenceOf = new Map<string, WorkflowPresence>();
        await forEachBounded(
          unlisted,
          describeConcurrency,
          async (row) => {
            progress.done += 1;
            presenceOf.set(row.id, await describeWorkflow(row));
          },
          beat,
        );

        /** Rows divergent enough to act on or report, in a stable order. */
        for (const row of unlisted) {
          beat();
          const presence = presenceOf.get(row.id)!;
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
            // Its pods are orphans now: deleted in the same pass, so the next one finds nothing.
            for (const { entry, ref } of podsOfLiveRows.get(row.id) ?? []) {
              beat();
              await deletePod(entry, ref, 'workflow_not_running', 'its row was just retired');
            }
          } else if (result.outcome === 'store_error') {
            // Outcome unknown: the write may still land. Its pods wait for the next pass, which
            // judges them on a fresh read.
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
            // Someone else owns the row now (and its pods with it).
            record(
              { ...base, reason: 'fence_miss', outcome: 'kept', workflowStatus, detail },
              `${what}: workflow ${workflowStatus}, but the row moved (${detail}); kept`,
            );
          }
        }

        // --- wedged: running, but stuck past a deadline -------------------------------------
        progress = { phase: 'wedged', done: 0 };
        beat();
        const overdue = await store.overdueWorkers({ marginMs: wedgedMarginMs, limit: maxLiveRowsPerPass });
        const counts = new Map<string, number>();
        // Every pool with live rows reports every wedgeable state, 0 included.
        for (const row of rows) {
          for (const state of wedgeableStates) counts.set(JSON.stringify([row.pool, state]), 0);
        }
        for (const { worker, deadlineMs, sinceChangeMs } of overdue) {
          const workflowRuns =
            running?.has(workerLifecycleWorkflowId(worker.pool, worker.id)) === true ||
            presenceOf.get(worker.id)?.kind === 'running';
          if (!workflowRuns) continue; // gone (retired above) or unknown (reported above)
          const state = worker.state as WedgeableState;
          const key = JSON.stringify([worker.pool, state]);
          counts.set(key, (counts.get(key) ?? 0) + 1);
          const wedged: WedgedWorker = {
            workerId: worker.id,
            pool: worker.pool,
            state,
            sinceChangeSeconds: Math.round(sinceChangeMs / 1000),
            deadlineSeconds: Math.round(deadlineMs / 1000),
          };
          const line = `worker ${worker.id} (pool ${worker.pool}): ${state} for ${wedged.sinceChangeSeconds} s, past its ${wedged.deadlineSeconds} s deadline, while its workflow runs; wedged`;
          context?.log.warn(`janitor: ${line}`, { ...wedged });
          if (report.wedged.length < maxWedgedInReport) {
            report.wedged.push(wedged);
            report.divergence.push(line);
          }
        }
        metrics?.setWedged(
          [...counts].map(([key, count]) => {
            const [pool, state] = JSON.parse(key) as [string, WedgeableState];
            return { pool, state, count };
          }),
        );
        report.durationMs = Math.round(performance.now() - started);
        metrics?.observePass('reconcile', report.durationMs / 1000);
        if (deps.passes) {
          const recorder = deps.passes;
          await bounded('recording the janitor pass', recordPassTimeoutMs, () => recorder.recordJanitorPass()).catch(
            (err: unknown) => context?.log.warn(`janitor: pass not recorded: ${message(err)}`),
          );
        }
        return report;
      } finally {
        heartbeats.stop();
      }
    },

    /**
     * Retention: deletes workers retired or lost longer than `retentionMs` ago (with their audit
     * trail) and claims ended longer ago than that, oldest first, in statements of at most
     * `batchSize` rows each (SKIP LOCKED), until a statement deletes less than a batch or the
     * pass's budget (batches, time) is spent. Live rows and anything younger survive. Idempotent:
     * an interrupted pass leaves only whole batches done, and the next one goes on.
     */
    async deleteExpiredRecords(input: RetentionInput = {}): Promise<RetentionReport> {
      const retentionMs = parseRetentionMs(input.retentionMs);
      const { batchSize, maxBatchesPerPass, budgetMs } = retentionLimits;
      const context = activityContext();
      const started = performance.now();
      const report: RetentionReport = {
        retentionMs,
        workers: 0,
        transitions: 0,
        claims: 0,
        batches: 0,
        complete: false,
        durationMs: 0,
      };
      const heartbeats = startProgressHeartbeats(() => ({ phase: 'retention', ...report }), heartbeatEveryMs, context);
      const withinBudget = () => report.batches < maxBatchesPerPass && performance.now() - started < budgetMs;
      try {
        let workersDone = false;
        while (!workersDone && withinBudget()) {
          heartbeats.check();
          const batch = await store.deleteExpiredWorkers({ retentionMs, batchSize });
          report.batches += 1;
          report.workers += batch.workers;
          report.transitions += batch.transitions;
          metrics?.recordRetained('worker', batch.workers);
          metrics?.recordRetained('transition', batch.transitions);
          workersDone = batch.workers < batchSize;
        }
        let claimsDone = false;
        while (workersDone && !claimsDone && withinBudget()) {
          heartbeats.check();
          const batch = await store.deleteEndedClaims({ retentionMs, batchSize });
          report.batches += 1;
          report.claims += batch.claims;
          metrics?.recordRetained('claim', batch.claims);
          claimsDone = batch.claims < batchSize;
        }
        report.complete = workersDone && claimsDone;
        report.durationMs = Math.round(performance.now() - started);
        metrics?.observePass('retention', report.durationMs / 1000);
        const line = `janitor: retention (${Math.round(retentionMs / 3_600_000)} h) deleted ${report.workers} workers, ${report.transitions} transitions, ${report.claims} claims in ${report.batches} batches${report.complete ? '' : '; more left for the next pass'}`;
        if (report.workers + report.claims > 0 || !report.complete) context?.log.info(line, { ...report });
        return report;
      } finally {
        heartbeats.stop();
      }
    },
  };
}

export type JanitorActivities = ReturnType<typeof createJanitorActivities>;
