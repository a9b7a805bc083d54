// The workerLifecycle state machine as a plain class (after samples-typescript's
// message-passing/safe-message-handlers): one method per step, one lock that every step which
// changes the worker takes, every state change a registry compare-and-set carrying the epoch this
// workflow holds. The workflow function (worker-lifecycle.ts) only wires handlers and the main loop
// to these methods; the decisions that need no Temporal API live in lifecycle-rules.ts.
//
// Two generations of behaviour live here, chosen once per run by the `corral-registry-claims`
// patch (`registryClaims`):
// - false: runs recorded before registry claims. Claims and releases are this workflow's own
//   updates; every command these runs issue is exactly what they issued when recorded, so their
//   histories replay (test/histories). Do not change what such a run does.
// - true: the corral API decides claims and releases in the registry, activates the worker
//   itself, and tells this workflow afterwards (`registryChangedSignal`); the workflow adopts the
//   row without an activity and keeps owning every timer and side effect of its worker.
//
// Every `await` below is a point where a message handler or the main loop may run in between; the
// comments at those awaits say what may change there and why that is fine.
import {
  ActivityCancellationType,
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { HealthActivities, HealthVerdict } from '../../activities/health-activities';
import type {
  FenceMissDetails,
  RegistryActivities,
  TransitionWorkerInput,
  WorkerView,
} from '../../activities/registry-activities';
import type { RuntimeActivities } from '../../activities/runtime-activities';
import {
  failoverBounds,
  runtimeCallWorstCaseMs,
  isRetryableFailure,
  isWorkerFailureReason,
  type WorkerFailureReason,
  lifecycleRejections,
  registryFailureTypes,
  runtimeFailureTypes,
  type LifecycleOperation,
  workerPodName,
  workerStates,
  type WorkerState,
  runtimeTaskQueueOf,
  type WorkerProtocolName,
  poolWorkflowId,
  workerChangedSignal,
  type WorkerChange,
  corralImageKey,
  corralPoolKey,
  corralStateKey,
  corralTenantKey,
  maxUpdatesPerRun,
  type BoundClaim,
  type ClaimRequest,
  type DrainRequest,
  type LifecycleState,
  type ReleaseRequest,
  type HealthVerdictNotice,
  type ReleaseResult,
  type WorkerDescription,
  type WorkerLease,
  type WorkerLifecycleInput,
  type WorkerLifecycleSettings,
  type WorkerRowChange,
  type WorkerPodRef,
} from '../../common';
import {
  adoptRegistryRow,
  adoptRow,
  checkClaim,
  checkDrain,
  checkRelease,
  describeWorker,
  initialLifecycleState,
  isNewerChange,
  nextDeadline,
  type AdoptableRow,
  type DeadlineKind,
  type Rejection,
} from './lifecycle-rules';

type LifecycleActivities = RegistryActivities & RuntimeActivities & HealthActivities;

/** Runs that start with this patch take claims and releases from the registry (the corral API). */
export const registryClaimsPatch = 'corral-registry-claims';
/**
 * Runs that start with this patch have no health monitor activity: the runtime's one watcher per
 * corral worker sends verdicts (`healthVerdictSignal`). Their pod runtime calls run on the runtime
 * task queue (its own slots), each bounded in the queue, and the spawn deadline covers the create
 * as well as the readiness wait.
 */
export const sharedHealthPatch = 'corral-shared-health';
/**
 * Runs that start with this patch drain promptly and survive outages (decision 0019): a
 * drain asked while the worker starts cancels the start; a serving worker is asked to drain with
 * its id and epoch and waited for (up to the drain timeout) before its pod goes; runtime calls
 * heartbeat, so a dead corral replica's activity is retried within the failover budget; a
 * credential rotation or a delete is retried through an outage of any length.
 */
export const resiliencePatch = 'corral-resilience';
/** Added after histories existed: worker workflows tell their pool about spawns, claims and ends. */
const poolNotificationsPatch = 'corral-pool-notifications';

/**
 * Short registry and worker-protocol calls: a marker event each instead of three events.
 *
 * An outage of any length is waited out: no schedule-to-close, unlimited attempts, backoff to one
 * minute. Only a deterministic failure (a fence miss, a missing row, bad input: non-retryable
 * ApplicationFailures) comes back to the workflow. A worker, claimed or not, is never failed or
 * lost because Postgres was away (decision 0019). Past `localRetryThreshold` the retries
 * wait on workflow timers, so a long outage costs a few events a minute, not a workflow task every
 * few seconds; `corral_activity_prolonged_retries_total` tells operators it is happening.
 */
function quickly(summary: string) {
  return proxyLocalActivities<LifecycleActivities>({
    summary,
    startToCloseTimeout: '10s',
    localRetryThreshold: '10s',
    retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '60s' },
  });
}

export const timerSummaries: Record<DeadlineKind, string> = {
  spawnBy: 'spawn deadline',
  activateBy: 'activation deadline',
  idleUntil: 'idle TTL',
  hotIdleUntil: 'hot-idle TTL',
  refreshAt: 'credential refresh',
  drainBy: 'drain timeout',
  retireAt: 'max lifetime',
};

/**
 * Thrown inside the workflow (never out of it) when the registry's row replaced the workflow's
 * view in the middle of a step: the step is abandoned, never retried with the old epoch, and the
 * main loop re-plans from the adopted row.
 */
export class FenceConverged extends Error {}

const missedDeadline = Symbol('missed deadline');

/** The ApplicationFailure type behind an activity error (local activities surface it unwrapped). */
function failureTypeOf(err: unknown): string | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.type ?? undefined;
  if (err instanceof ApplicationFailure) return err.type ?? undefined;
  return undefined;
}

/** The row a FenceMiss failure carries (FenceMissDetails.row), if it carries one. */
function fenceMissRowOf(err: unknown): WorkerView | undefined {
  const failure = err instanceof ActivityFailure ? err.cause : err;
  if (!(failure instanceof ApplicationFailure)) return undefined;
  const details = failure.details?.[0] as Partial<FenceMissDetails> | undefined;
  const row = details?.row;
  return row && typeof row.epoch === 'number' && typeof row.state === 'string' ? row : undefined;
}

function messageOf(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

function reject(rejection: Rejection | null): void {
  if (rejection)
    throw ApplicationFailure.create({ type: rejection.type, message: rejection.message, nonRetryable: true });
}

/** Races `work` against a workflow timer ending at `deadlineAt`; the loser is cancelled. */
async function beforeDeadline<T>(
  deadlineAt: number,
  kind: DeadlineKind,
  work: () => Promise<T>,
): Promise<T | typeof missedDeadline> {
  const remaining = deadlineAt - Date.now();
  if (remaining <= 0) return missedDeadline;
  const scope = new CancellationScope();
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  const running = scope.run(work).then(
    (value) => void (outcome = { ok: true, value }),
    (error: unknown) => void (outcome = { ok: false, error }),
  );
  let inTime: boolean;
  try {
    inTime = await condition(() => outcome !== undefined, remaining, { summary: timerSummaries[kind] });
  } catch (err) {
    // Cancelled from outside (a drain, an operator): the work is cancelled with us; wait until it
    // has settled, so an activity that waits for its cancellation (a create) is over before the
    // caller deletes what it made.
    if (isCancellation(err)) await running;
    throw err;
  }
  if (!inTime) {
    scope.cancel();
    await running;
    return missedDeadline;
  }
  if (!outcome) throw new Error('unreachable: condition resolved without an outcome');
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

type Failure = { reason: WorkerFailureReason; detail: string };

interface Monitor {
  scope: CancellationScope;
  podName: string;
  settled: boolean;
  verdict: HealthVerdict | null;
}

/**
 * How long a delete may wait in the runtime queue before it counts as failed (and is retried).
 * Ample for a queue that moves; short enough that a wedged one is noticed.
 */
const runtimeQueueBoundMs = 5 * 60_000;

/** How often one refused activation may be followed by adopting a later epoch and trying again. */
const maxActivationAdoptions = 3;

export class WorkerLifecycle {
  readonly s: LifecycleState;
  readonly workerId: string;
  readonly pool: string;
  readonly settings: WorkerLifecycleSettings;
  /** The claim a cold worker was spawned for (the first run only). */
  readonly boundClaim: BoundClaim | null;

  /** A step that changes the worker is running (the one lock). */
  busy = false;
  /** Bumped on every change the main loop must look at (it re-plans its timer). */
  changes = 0;
  /** Updates handled by this run: it continues as new long before the server's per-run limit. */
  updatesThisRun = 0;
  /** Whether the current attempt's pod is known gone (so the end of life need not delete it again). */
  podDeleted = false;
  /** Its delete failed after the row ended: the janitor deletes pods of ended workers. */
  podLeftToJanitor = false;
  /** Legacy: the cold-path claim this worker was spawned for has been answered (or can no longer be). */
  boundClaimSettled = false;
  /** Legacy: a claim whose caller gave up; its worker is not handed to anyone for it. */
  abandonedRequestId: string | null = null;

  /** A health verdict for the current pod, not acted on yet. */
  private pendingVerdict: HealthVerdictNotice | null = null;
  /** The newest registry change notified and not adopted yet (only the final row of a burst matters). */
  private pendingChange: WorkerRowChange | null = null;
  private readonly notifications: Promise<void>[] = [];
  private notificationsInFlight = 0;
  private monitor: Monitor | null = null;
  /** The worker took its first identity in this run: from here on its spawn has succeeded. */
  private firstActivationDone = false;
  /** (Resilience) The part of a spawn a drain may cut short (create, readiness, activation), while it runs. */
  private startScope: CancellationScope | null = null;
  /** (Resilience) A drain was asked while the worker was starting: the start is abandoned. */
  private startCancelledByDrain = false;

  constructor(
    readonly input: WorkerLifecycleInput,
    /** From `patched(registryClaimsPatch)`, decided once before the workflow's first await. */
    readonly registryClaims: boolean,
    /** From `patched(sharedHealthPatch)`, decided once before the workflow's first await. */
    readonly sharedHealth: boolean,
    /** From `patched(resiliencePatch)`, decided once before the workflow's first await (implies the two above). */
    readonly resilient: boolean = false,
  ) {
    this.workerId = input.workerId;
    this.pool = input.pool;
    this.settings = input.settings;
    this.boundClaim = input.boundClaim ?? null;
    this.s = input.carried ?? initialLifecycleState(input, Date.now());
  }

  // --- sequencing ---------------------------------------------------------------------------

  /** Runs `step` under the lock: steps that change the worker never interleave. */
  async exclusive<T>(step: () => Promise<T>): Promise<T> {
    // Several waiters can be woken by the same release; the first to run takes the lock and the
    // others see `busy` again and go back to waiting (check-and-set has no await in between).
    while (this.busy) await condition(() => !this.busy);
    this.busy = true;
    try {
      return await step();
    } finally {
      this.busy = false;
      this.changes++;
    }
  }

  /**
   * An update's step under the lock. A fence miss inside it means the caller's view is stale:
   * say so, typed (a plain error escaping a handler would fail the workflow task instead).
   */
  exclusiveUpdate<T>(step: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      try {
        return await step();
      } catch (err) {
        if (err instanceof FenceConverged) {
          throw ApplicationFailure.create({
            type: lifecycleRejections.staleLease,
            message: `the worker moved on: it is ${this.s.state} at epoch ${this.s.epoch}`,
            nonRetryable: true,
          });
        }
        throw err;
      }
    });
  }

  /** Nothing would be cut off by closing this run: no handler running, no step holding the lock, no signal in flight. */
  quiescent(): boolean {
    return allHandlersFinished() && !this.busy && this.notificationsInFlight === 0;
  }

  shouldContinueAsNew(): boolean {
    const info = workflowInfo();
    const threshold = this.input.continueAsNewAfterEvents;
    return (
      info.continueAsNewSuggested ||
      this.updatesThisRun >= maxUpdatesPerRun ||
      (threshold !== undefined && info.historyLength >= threshold)
    );
  }

  // A method, not a field: an update buffered before the workflow started runs its handler inside
  // setHandler, and everything it calls must already exist.
  isTerminal(): boolean {
    return this.s.state === 'retired' || this.s.state === 'lost';
  }

  isServing(): boolean {
    const state = this.s.state;
    return state === 'idle' || state === 'claimed' || state === 'hot_idle';
  }

  describe(): WorkerDescription {
    return describeWorker(this.s, this.input);
  }

  // --- messages: registry changes -------------------------------------------------------------

  /**
   * Signal handler: the corral API changed this worker's row (claim, release, reclaim, a failed
   * hand-over). Only the change with the highest epoch is kept: notifications are coalesced and
   * may arrive out of order, and the registry's epoch is the order of its changes. The main loop
   * adopts it under the lock; nothing is awaited here.
   */
  onRegistryChanged(change: WorkerRowChange): void {
    if (
      !change ||
      !Number.isSafeInteger(change.epoch) ||
      !(workerStates as readonly string[]).includes(change.state) ||
      typeof change.stateSince !== 'string'
    ) {
      log.warn('ignored a malformed registry change', { workerId: this.workerId, change });
      return;
    }
    const newest = this.pendingChange ?? this.s;
    if (!isNewerChange(newest, change)) {
      log.info('ignored a stale registry change', { workerId: this.workerId, epoch: change.epoch, at: this.s.epoch });
      return;
    }
    this.pendingChange = change;
    this.changes++;
  }

  /** A notified change the workflow has not adopted yet (one the workflow already passed is dropped). */
  hasPendingChange(): boolean {
    if (this.pendingChange !== null && !isNewerChange(this.s, this.pendingChange)) this.pendingChange = null;
    return this.pendingChange !== null;
  }

  /**
   * Step: adopt what the registry says now, without an activity (the API already activated the
   * worker at that epoch). An expected change of holder, not a fence miss. No await inside: the
   * lock only keeps it from landing in the middle of another step.
   */
  async adoptRegistryChange(): Promise<void> {
    const change = this.pendingChange;
    this.pendingChange = null;
    if (change === null || !isNewerChange(this.s, change)) return;
    log.info('adopted a registry change', {
      workerId: this.workerId,
      from: [this.s.state, this.s.epoch],
      to: [change.state, change.epoch],
      tenant: change.tenant,
    });
    this.adopt(change);
  }

  /** The registry's row replaces the workflow's view; deadlines re-planned from its stateSince. */
  private adopt(row: AdoptableRow): void {
    adoptRegistryRow(this.s, row, this.settings, Date.now());
    this.changes++;
    this.syncSearchAttributes();
  }

  // --- messages: drain (both generations) and the legacy claim path ------------------------------

  validateDrain(request: DrainRequest): void {
    reject(checkDrain(this.s, request));
  }

  /** Update handler `drain`: the worker takes no new claim and ends once its tenant is done. */
  drain(request: DrainRequest): Promise<WorkerDescription> {
    if (this.resilient && (this.s.state === 'spawning' || this.s.state === 'activating')) {
      // A worker still starting has no tenant to wait for: cut the start short now, before waiting
      // for the lock the start holds (startLife ends it draining, and the loop deletes what exists).
      // Between two parts of the start, the next part is cut before it begins.
      this.startCancelledByDrain = true;
      this.startScope?.cancel();
      this.changes++;
    }
    return this.exclusiveUpdate(async () => {
      this.updatesThisRun++;
      const s = this.s;
      // The start this drain cut short already ended the worker's service. A start that finished
      // anyway (its last step cannot be cut) serves now: it is drained like any serving worker.
      if (this.startCancelledByDrain && !this.isServing()) return this.describe();
      reject(checkDrain(s, request));
      if (!this.registryClaims) {
        s.drainRequested = true;
        if (s.state === 'claimed') {
          // The tenant keeps its worker until it releases it or the drain timeout ends.
          s.deadlines.drainBy = Date.now() + (request.timeoutMs ?? this.settings.drainTimeoutMs);
        } else {
          await this.transition('draining', 'drain');
        }
        return this.describe();
      }

      // First the registry: from here on the API hands this worker to no claim, and its release
      // goes to draining. Its answer is the row as it is now: the API may have claimed or released
      // the worker before the mark, with the notification still on its way.
      const row = await quickly('mark drain requested').markDrainRequested({ workerId: this.workerId });
      // (await: only registry changes can have been noted meanwhile; the lock keeps every other step out.)
      if (row.epoch > s.epoch) this.adopt(row);
      reject(checkDrain(s, request)); // again: the adopted row may be draining or ended already
      s.drainRequested = true;
      const timeoutMs = request.timeoutMs ?? this.settings.drainTimeoutMs;
      if (s.state !== 'claimed') {
        try {
          await this.transition('draining', 'drain');
        } catch (err) {
          // The API claimed (or released) the worker after all: expected, not a stale caller. A
          // claimed worker keeps its tenant until release or drainBy; any other state the main loop
          // drains. Only an end someone else decided answers StaleLease.
          if (!(err instanceof FenceConverged) || this.isTerminal()) throw err;
        }
      }
      if (s.state === 'claimed') s.deadlines.drainBy = Date.now() + timeoutMs;
      return this.describe();
    });
  }

  validateClaim(request: ClaimRequest): void {
    reject(checkClaim(this.s, request, this.boundClaim));
  }

  /** Legacy update handler `claim` (runs recorded before registry claims only). */
  async claim(request: ClaimRequest): Promise<WorkerLease> {
    const s = this.s;
    this.updatesThisRun++;
    if (this.boundClaim?.requestId === request.requestId && !this.boundClaimSettled && !this.isTerminal()) {
      // The cold path: answered once the worker spawned for this claim is ready and claimed.
      await condition(() => this.boundClaimSettled || this.isTerminal());
      if (s.state !== 'claimed' || s.claimRequestId !== request.requestId) {
        throw ApplicationFailure.create({
          type: lifecycleRejections.workerUnavailable,
          message: `the worker spawned for this claim did not become ready (${s.failureReason ?? s.state})`,
          nonRetryable: true,
        });
      }
    }
    return this.exclusiveUpdate(async (): Promise<WorkerLease> => {
      reject(checkClaim(s, request, this.boundClaim)); // again: the state may have moved while we waited for the lock
      if (s.state !== 'claimed') {
        await this.transition('claimed', 'claim', { tenant: request.tenant, claimRequestId: request.requestId });
        s.deadlines.idleUntil = null;
        s.deadlines.hotIdleUntil = null;
        await this.activateOrLose(request.tenant);
        this.notifyPool({ event: 'claimed' });
      }
      return { workerId: this.workerId, epoch: s.epoch, endpoint: s.endpoint ?? '', tenant: request.tenant };
    });
  }

  /** Legacy signal handler `abandonClaim`. */
  abandonClaim(requestId: string): void {
    this.abandonedRequestId = requestId;
    this.changes++;
  }

  validateRelease(lease: ReleaseRequest): void {
    reject(checkRelease(this.s, this.workerId, lease));
  }

  /** Legacy update handler `release`. */
  release(lease: ReleaseRequest): Promise<ReleaseResult> {
    return this.exclusiveUpdate(async () => {
      const s = this.s;
      this.updatesThisRun++;
      reject(checkRelease(s, this.workerId, lease));
      const policy = s.drainRequested ? 'retire' : this.settings.releasePolicy;
      const now = Date.now();
      if (policy === 'hot_idle') {
        await this.transition('hot_idle', 'release', { claimRequestId: null });
        s.deadlines.hotIdleUntil = now + this.settings.hotIdleTtlMs;
      } else if (policy === 'recycle') {
        await this.transition('idle', 'release', { tenant: null, claimRequestId: null });
        s.deadlines.idleUntil = this.settings.idleTtlMs === null ? null : now + this.settings.idleTtlMs;
      } else {
        await this.transition('draining', 'release');
      }
      // The worker learns the new epoch, so the old holder is refused by the worker too.
      if (s.state !== 'draining') await this.activateOrLose(s.tenant);
      return { state: s.state, epoch: s.epoch };
    });
  }

  /** Legacy: a claim's caller gave up before it got its lease; nobody holds the worker, so it goes back to idle. */
  async releaseAbandonedClaim(): Promise<void> {
    const s = this.s;
    if (s.state !== 'claimed' || s.claimRequestId !== this.abandonedRequestId) return;
    this.abandonedRequestId = null;
    if (s.drainRequested) {
      await this.transition('draining', 'release');
      return;
    }
    await this.transition('idle', 'release', { tenant: null, claimRequestId: null });
    s.deadlines.idleUntil = this.settings.idleTtlMs === null ? null : Date.now() + this.settings.idleTtlMs;
    const failure = await this.activate(null);
    if (failure) await this.lose(failure.reason);
  }

  /** Legacy: hands the worker over, or loses it and tells the caller (typed). */
  private async activateOrLose(tenant: string | null): Promise<void> {
    const failure = await this.activate(tenant);
    if (failure) {
      await this.lose(failure.reason);
      throw ApplicationFailure.create({
        type: lifecycleRejections.workerUnavailable,
        message: `the worker failed while being handed over (${failure.reason}: ${failure.detail}); the pool replaces it`,
        nonRetryable: true,
      });
    }
  }

  // --- outgoing signals ---------------------------------------------------------------------------

  /**
   * Tells the pool something changed, so it refills and keeps its breaker without polling. Best
   * effort: a pool that is not running (a worker started on its own, a drained pool) is fine,
   * since the pool re-reads the registry whenever it wakes.
   */
  notifyPool(change: Omit<WorkerChange, 'workerId'>): void {
    if (!patched(poolNotificationsPatch)) return;
    const sent = getExternalWorkflowHandle(poolWorkflowId(this.pool))
      .signal(workerChangedSignal, { workerId: this.workerId, ...change })
      .catch(() => undefined);
    // Counted on a side branch, so settleNotifications awaits exactly what it always did.
    this.notificationsInFlight++;
    void sent.then(() => void this.notificationsInFlight--);
    this.notifications.push(sent);
  }

  /** A run never closes with a signal still in flight (the server would have to finish it for a closed run). */
  async settleNotifications(): Promise<void> {
    await Promise.all(this.notifications.splice(0));
  }

  // --- the registry fence ---------------------------------------------------------------------

  /**
   * One compare-and-set at the epoch and state the workflow holds. On a fence miss the row is
   * re-read once and adopted, and the step is abandoned (FenceConverged) unless the row shows our
   * own write (applied, with its answer lost to a store-error retry).
   */
  async transition(
    to: WorkerState,
    operation: LifecycleOperation,
    patch: TransitionWorkerInput['patch'] = {},
  ): Promise<void> {
    const s = this.s;
    const from = s.state;
    const expected = { epoch: s.epoch, states: [from] };
    try {
      const row = await quickly(`${operation}: ${from} → ${to}`).transitionWorker({
        workerId: this.workerId,
        expected,
        to,
        patch,
        operation,
        origin: 'lifecycle_workflow',
      });
      // (await: under the lock, only registry changes can have been noted; the loop adopts those later.)
      adoptRow(s, row);
    } catch (err) {
      const row = await this.reReadAfterFenceMiss(err);
      // Our own write may have applied with its answer lost (a retry after a store error): that
      // is the state we wanted, at the epoch we would have had.
      const ownWrite =
        row !== null &&
        row.state === to &&
        (row.epoch === expected.epoch || row.epoch === expected.epoch + 1) &&
        (patch.claimRequestId === undefined || row.claimRequestId === patch.claimRequestId) &&
        // (Registry claims) a refresh that missed because someone else moved the row to the same
        // state at epoch + 1 did not apply unless its credential version is there too.
        (!this.registryClaims ||
          patch.credentialVersion === undefined ||
          row.credentialVersion === patch.credentialVersion);
      if (row === null) {
        s.state = 'lost';
        s.failureReason = 'row_missing';
      } else if (this.registryClaims && !ownWrite) {
        this.adopt(row);
      } else {
        adoptRow(s, row);
      }
      const details = { workerId: this.workerId, expected, to, actual: row && [row.state, row.epoch] };
      // Since registry claims the API moves rows too: a miss is how a racing claim or release shows.
      if (this.registryClaims) log.info('fence miss: adopted the registry row', details);
      else log.warn('fence miss: adopted the registry row', details);
      this.syncSearchAttributes();
      if (!ownWrite) throw new FenceConverged(`${from} → ${to} at epoch ${expected.epoch} missed the fence`);
    }
    this.changes++;
    this.syncSearchAttributes();
  }

  /** A FenceMiss/WorkerRowMissing is answered by reading the row; any other failure is rethrown. */
  private async reReadAfterFenceMiss(err: unknown): Promise<WorkerView | null> {
    const type = failureTypeOf(err);
    if (type !== registryFailureTypes.fenceMiss && type !== registryFailureTypes.rowMissing) throw err;
    // The activity read the row right after the miss; failures recorded before it did (and a miss
    // whose read failed) carry none, and are read again as they were when recorded.
    const carried = type === registryFailureTypes.fenceMiss ? fenceMissRowOf(err) : undefined;
    if (carried) return carried;
    return quickly('re-read after a fence miss').readWorker(this.workerId);
  }

  syncSearchAttributes(): void {
    const current = workflowInfo().typedSearchAttributes;
    const wanted: SearchAttributeUpdatePair[] = [
      { key: corralPoolKey, value: this.pool },
      { key: corralImageKey, value: this.settings.image },
      { key: corralStateKey, value: this.s.state },
      { key: corralTenantKey, value: this.s.tenant },
    ];
    const changed = wanted.filter((pair) => (current.get(pair.key) ?? null) !== pair.value);
    if (changed.length > 0) upsertSearchAttributes(changed);
  }

  // --- pod and worker ---------------------------------------------------------------------------

  /**
   * Where pod runtime calls run. Shared-health runs: on the runtime task queue (its own slots, so
   * spawns and deletes never wait behind other work), each bounded in the queue. Older runs: the
   * workflow's own queue, as recorded.
   */
  private runtimeQueue(scheduleToStartMs: number): { taskQueue?: string; scheduleToStartTimeout?: number } {
    if (!this.sharedHealth) return {};
    return { taskQueue: runtimeTaskQueueOf(workflowInfo().taskQueue), scheduleToStartTimeout: scheduleToStartMs };
  }

  /**
   * Runtime calls other than the spawn (the delete): bounded in the queue. Resilient runs retry for
   * as long as the runtime is away (the pod must go) and heartbeat, so a replica that died mid-call
   * is noticed within the failover budget; older runs retried ten times, as recorded.
   */
  private runtimeCalls(summary: string) {
    return proxyActivities<RuntimeActivities>({
      summary,
      ...this.runtimeQueue(runtimeQueueBoundMs),
      startToCloseTimeout: '60s',
      ...(this.resilient
        ? {
            heartbeatTimeout: failoverBounds.activityHeartbeatTimeoutMs,
            retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
          }
        : { retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 } }),
    });
  }

  /**
   * (Resilience) Runs one part of a start that a drain may cut short. A drain already asked cuts it
   * before it begins; one asked meanwhile cancels it (drain() cancels `startScope`).
   */
  private async cancellableByDrain<T>(work: () => Promise<T>): Promise<T> {
    if (!this.resilient) return work();
    if (this.startCancelledByDrain) throw new CancelledFailure('a drain was asked while the worker was starting');
    const scope = new CancellationScope();
    this.startScope = scope;
    try {
      return await scope.run(work);
    } finally {
      this.startScope = null;
    }
  }

  private podRef(): WorkerPodRef {
    const { workerId, pool } = this;
    return {
      workerId,
      pool,
      spawnAttempt: this.s.spawnAttempt,
      name: workerPodName(pool, workerId, this.s.spawnAttempt),
    };
  }

  /** The pool's worker protocol for calls to the worker (absent in runs started before pools had one). */
  private protocol(): { protocol?: WorkerProtocolName } {
    return this.settings.workerProtocol ? { protocol: this.settings.workerProtocol } : {};
  }

  private podSpec(): Parameters<RuntimeActivities['spawnWorkerPod']>[0]['spec'] {
    const { settings, s } = this;
    return {
      workerId: this.workerId,
      pool: this.pool,
      spawnAttempt: s.spawnAttempt,
      epoch: s.epoch,
      image: settings.image,
      args: settings.args,
      env: settings.env,
      port: settings.port,
      // Shared health: a pool without a health hook gets none (ready = its port accepts, health =
      // its status); older runs always had one.
      healthPath: this.sharedHealth && settings.healthIntervalMs === null ? null : settings.healthPath,
      ...(this.sharedHealth && settings.healthIntervalMs !== null
        ? { healthIntervalMs: settings.healthIntervalMs, healthFailureThreshold: settings.healthFailureThreshold }
        : {}),
      resources: settings.resources,
      // The runtime's own backstop (activeDeadlineSeconds) ends with corral's max-lifetime timer.
      maxLifetimeSeconds: Math.max(60, Math.ceil((s.deadlines.retireAt - Date.now()) / 1000)),
    };
  }

  async deletePod(): Promise<void> {
    if (this.sharedHealth) await this.runtimeCalls('delete pod and secret').deleteWorkerPod(this.podRef());
    else await quickly('delete pod and secret').deleteWorkerPod(this.podRef());
    this.podDeleted = true;
  }

  /**
   * Hands the worker its identity at the current epoch and `tenant`. Null when it took it.
   *
   * Since registry claims, a refusal can mean the corral API activated the worker at a later
   * epoch (a claim or release that raced this step): then the row is re-read, adopted, and the
   * worker activated again at the adopted epoch for the adopted tenant, so it re-reads whatever
   * this step wrote (rotated credentials). Only a refusal the registry cannot explain fails.
   */
  async activate(tenant: string | null, deadline?: number): Promise<Failure | null> {
    for (let adoptions = 0; ; adoptions++) {
      const s = this.s;
      const call = () =>
        proxyLocalActivities<LifecycleActivities>({
          summary: tenant ? 'activate for tenant' : 'activate',
          startToCloseTimeout: '10s',
          scheduleToCloseTimeout: deadline ? Math.max(1, deadline - Date.now()) : this.settings.activationDeadlineMs,
          retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s' },
        }).activateWorker({
          endpoint: s.endpoint ?? '',
          workerId: this.workerId,
          epoch: s.epoch,
          tenant,
          ...this.protocol(),
        });
      try {
        const result = deadline === undefined ? await call() : await beforeDeadline(deadline, 'activateBy', call);
        if (result === missedDeadline) return { reason: 'activation_failed', detail: 'not activated by the deadline' };
        return null;
      } catch (err) {
        if (isCancellation(err)) throw err;
        const type = failureTypeOf(err);
        if (
          this.registryClaims &&
          type === runtimeFailureTypes.activationRefused &&
          adoptions < maxActivationAdoptions
        ) {
          const row = await quickly('re-read after a refused activation').readWorker(this.workerId);
          // (await: registry changes noted meanwhile are older than or equal to what this read finds.)
          if (row !== null && row.epoch > s.epoch) {
            log.info('activation refused at a stale epoch: adopted the registry row', {
              workerId: this.workerId,
              refusedAt: s.epoch,
              adopted: [row.state, row.epoch],
            });
            this.adopt(row);
            if (!this.isServing()) throw new FenceConverged(`the worker moved on to ${row.state} at ${row.epoch}`);
            tenant = s.tenant;
            continue;
          }
        }
        const reason = type === runtimeFailureTypes.typeMismatch ? 'type_mismatch' : 'activation_failed';
        return { reason, detail: messageOf(err) };
      }
    }
  }

  /**
   * Step: a serving worker failed: the row ends `lost` with the reason, and its pod goes.
   *
   * Shared-health runs write the registry first: the typed reason reaches it one pod delete (and
   * one workflow task) sooner, and a lease holder is told `lease_ended` before the pod is gone.
   * A delete that fails after that is left to the janitor, which deletes pods of ended workers.
   * Older runs deleted first, as recorded.
   */
  async lose(reason: WorkerFailureReason): Promise<void> {
    this.stopMonitor();
    if (!this.sharedHealth) await this.deletePod();
    if (!this.registryClaims) {
      if (!this.isTerminal()) await this.transition('lost', 'mark_lost', { failureReason: reason });
      return;
    }
    // The worker is lost whatever the registry says now: a claim or release the API made meanwhile
    // (a fence miss) does not bring it back, so the decision is written again at the adopted epoch.
    for (let attempt = 1; !this.isTerminal(); attempt++) {
      try {
        await this.transition('lost', 'mark_lost', { failureReason: reason });
      } catch (err) {
        if (!(err instanceof FenceConverged) || attempt >= 3) throw err;
      }
    }
    if (!this.sharedHealth) return;
    try {
      await this.deletePod();
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('pod delete failed after the worker was lost; the janitor deletes pods of ended workers', {
        workerId: this.workerId,
        error: messageOf(err),
      });
      this.podLeftToJanitor = true;
    }
  }

  // --- life ---------------------------------------------------------------------------------------

  /** Step: register the row, then spawn until the worker serves (or is lost). Holds the lock throughout. */
  async startLife(): Promise<void> {
    const s = this.s;
    const row = await quickly('register worker').registerWorker({
      workerId: this.workerId,
      pool: this.pool,
      image: this.settings.image,
      origin: 'lifecycle_workflow',
    });
    adoptRow(s, row);
    this.syncSearchAttributes();
    if (row.state !== 'spawning') {
      // A row from an earlier life of this id (e.g. its workflow was terminated): never reuse it.
      if (!this.isTerminal()) await this.transition('draining', 'drain');
      return;
    }
    s.spawnAttempt = row.spawnAttempt;
    for (;;) {
      let failure: Failure | null;
      try {
        failure = await this.spawnAndActivate();
      } catch (err) {
        if (this.startCancelledByDrain && isCancellation(err) && !this.isTerminal()) {
          // A drain cut the start short: the row ends its service now (spawning or activating →
          // draining), and the loop deletes whatever this attempt made (the delete is idempotent).
          // No spawn verdict for the pool: a drained start is neither a success nor a failure for its
          // breaker (the worker's end tells the pool to look again).
          log.info('drained while starting', { workerId: this.workerId, state: s.state });
          s.drainRequested = true;
          await this.transition('draining', 'drain');
          return;
        }
        // A registry change adopted after the first activation: the spawn itself succeeded.
        if (this.registryClaims && err instanceof FenceConverged && this.firstActivationDone && !this.isTerminal()) {
          this.notifyPool({ event: 'ready' });
        }
        throw err;
      }
      if (failure === null || this.isTerminal()) {
        this.notifyPool(
          failure === null && !this.isTerminal()
            ? { event: 'ready' }
            : { event: 'spawn_failed', reason: s.failureReason },
        );
        return;
      }
      await this.deletePod(); // the failed attempt's pod and secret
      s.failureReason = failure.reason;
      if (!isRetryableFailure(failure.reason) || s.spawnAttempt >= this.settings.maxSpawnAttempts) {
        log.warn('worker lost while spawning', { workerId: this.workerId, ...failure, spawnAttempt: s.spawnAttempt });
        await this.transition('lost', 'mark_lost', { failureReason: failure.reason });
        this.notifyPool({ event: 'spawn_failed', reason: failure.reason });
        return;
      }
      log.info('respawning', { workerId: this.workerId, ...failure, spawnAttempt: s.spawnAttempt });
      await this.transition('spawning', 'respawn', {
        spawnAttempt: s.spawnAttempt + 1,
        failureReason: failure.reason,
        podName: null,
        endpoint: null,
      });
      s.spawnAttempt += 1;
      s.podName = null;
      s.endpoint = null;
    }
  }

  /** One spawn attempt through activation. Null when the worker is serving. */
  private async spawnAndActivate(): Promise<Failure | null> {
    const { s, settings } = this;
    const spawnBy = Date.now() + settings.spawnDeadlineMs;
    s.deadlines.spawnBy = spawnBy;
    this.podDeleted = false;
    const version = (s.credential?.version ?? 0) + 1;
    let spawned;
    try {
      const create = () =>
        proxyActivities<RuntimeActivities>({
          summary: `spawn pod (attempt ${s.spawnAttempt})`,
          ...this.runtimeQueue(settings.spawnDeadlineMs),
          startToCloseTimeout: this.resilient ? runtimeCallWorstCaseMs.create + 15_000 : '60s',
          ...(this.resilient
            ? {
                // A replica that dies mid-create is noticed within the failover budget; a cancelled
                // create (a drain, the deadline) is waited for, so nothing is created after its delete.
                heartbeatTimeout: failoverBounds.activityHeartbeatTimeoutMs,
                cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
              }
            : {}),
          retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5 },
        }).spawnWorkerPod({
          spec: this.podSpec(),
          credentialVersion: version,
          credentialExpiresAt: new Date(Date.now() + settings.credentialTtlMs).toISOString(),
          ...this.protocol(),
        });
      // Shared health: the spawn deadline covers the create too (a queue or an apiserver that is
      // slow to create counts against it); the attempt's pod, if it was made, is deleted below.
      const created = this.sharedHealth
        ? await this.cancellableByDrain(() => beforeDeadline(spawnBy, 'spawnBy', create))
        : await create();
      if (created === missedDeadline) {
        s.deadlines.spawnBy = null;
        // `deadline_exceeded` is the runtime's own deadline (activeDeadlineSeconds); resilient runs say what happened.
        const reason = this.resilient ? 'spawn_timeout' : 'deadline_exceeded';
        return { reason, detail: 'the pod was not created by the spawn deadline' };
      }
      spawned = created;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const type = failureTypeOf(err);
      // A ResourceQuota refusal is capacity, not configuration: retried, and not the breaker's business.
      if (this.resilient && type === runtimeFailureTypes.quotaExceeded) {
        return { reason: 'quota_exceeded', detail: messageOf(err) };
      }
      const misconfigured =
        type === runtimeFailureTypes.invalidInput ||
        type === runtimeFailureTypes.forbidden ||
        type === runtimeFailureTypes.nameConflict;
      return { reason: misconfigured ? 'config_error' : 'runtime_unreachable', detail: messageOf(err) };
    }
    s.podName = spawned.ref.name;
    const credential = { version, expiresAt: Date.parse(spawned.credentials.expiresAt) };
    s.credential = credential;

    let ready;
    try {
      ready = await this.cancellableByDrain(() =>
        beforeDeadline(spawnBy, 'spawnBy', () =>
          proxyActivities<RuntimeActivities>({
            summary: 'await pod ready',
            ...this.runtimeQueue(settings.spawnDeadlineMs),
            startToCloseTimeout: settings.spawnDeadlineMs + 60_000,
            // A corral worker that dies mid-wait is noticed within this, and the wait resumes elsewhere.
            heartbeatTimeout: this.resilient ? failoverBounds.activityHeartbeatTimeoutMs : '15s',
            retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5 },
          }).awaitWorkerReady({
            ref: spawned.ref,
            timeoutMs: Math.max(1, spawnBy - Date.now()),
          }),
        ),
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      return { reason: 'runtime_unreachable', detail: messageOf(err) };
    } finally {
      s.deadlines.spawnBy = null;
    }
    if (ready === missedDeadline) {
      return {
        reason: this.resilient ? 'spawn_timeout' : 'deadline_exceeded',
        detail: 'not ready by the spawn deadline',
      };
    }
    if (ready.status === 'failed') return { reason: ready.reason, detail: ready.detail };

    await this.transition('activating', 'activate', {
      podName: spawned.ref.name,
      endpoint: ready.endpoint,
      credentialVersion: version,
      credentialExpiresAt: spawned.credentials.expiresAt,
    });
    s.podName = spawned.ref.name;
    s.endpoint = ready.endpoint;
    s.deadlines.activateBy = Date.now() + settings.activationDeadlineMs;
    const activateBy = s.deadlines.activateBy;
    const failure = await this.cancellableByDrain(() => this.activate(null, activateBy));
    s.deadlines.activateBy = null;
    if (failure) return failure;
    this.firstActivationDone = true;

    const claim = this.boundClaim;
    if (this.registryClaims) {
      if (claim) await this.bindColdClaim(claim);
      else await this.enterIdle();
    } else if (claim && this.abandonedRequestId !== claim.requestId) {
      await this.transition('claimed', 'claim', { tenant: claim.tenant, claimRequestId: claim.requestId });
      const bound = await this.activate(claim.tenant);
      if (bound) {
        // Claimed is past respawning: the claim is answered by the pool with another worker.
        await this.lose(bound.reason);
        return null;
      }
    } else {
      await this.enterIdle();
    }
    s.deadlines.refreshAt = (s.credential ?? credential).expiresAt - settings.credentialRefreshLeadMs;
    return null;
  }

  /** Step (end of a spawn): the worker joins the pool, unclaimed; its idle TTL starts now. */
  private async enterIdle(): Promise<void> {
    await this.transition('idle', 'ready');
    this.s.deadlines.idleUntil = this.settings.idleTtlMs === null ? null : Date.now() + this.settings.idleTtlMs;
  }

  /**
   * Step (end of a cold spawn, registry claims): the registry hands the worker to the claim it was
   * spawned for if that claim still waits (claimed at epoch + 1 for its tenant), else it joins the
   * pool idle (or draining, if a drain was asked meanwhile). A bound worker then learns its tenant.
   */
  private async bindColdClaim(claim: BoundClaim): Promise<void> {
    const s = this.s;
    const epoch = s.epoch;
    let bound: boolean;
    try {
      const answer = await quickly('bind the cold claim').bindColdClaim({
        workerId: this.workerId,
        pool: this.pool,
        requestId: claim.requestId,
        epoch,
      });
      // (await: nobody else could claim an activating worker; the API only answers the claim's caller.)
      bound = answer.outcome === 'bound';
      adoptRow(s, answer.worker);
      this.changes++;
      this.syncSearchAttributes();
    } catch (err) {
      const row = await this.reReadAfterFenceMiss(err);
      // Our own bind, applied with its answer lost to a store-error retry?
      const ownBind = row?.state === 'claimed' && row.epoch === epoch + 1 && row.claimRequestId === claim.requestId;
      const ownIdle = (row?.state === 'idle' || row?.state === 'draining') && row.epoch === epoch;
      if (row === null) {
        s.state = 'lost';
        s.failureReason = 'row_missing';
      } else {
        this.adopt(row);
      }
      this.syncSearchAttributes();
      if (!ownBind && !ownIdle) throw new FenceConverged(`binding the cold claim at epoch ${epoch} missed the fence`);
      bound = ownBind;
    }
    if (bound) {
      const failure = await this.activate(claim.tenant);
      // Claimed is past respawning: the claim's caller gets worker_unavailable from the API.
      if (failure) await this.lose(failure.reason);
      return;
    }
    if (s.state === 'idle') {
      s.deadlines.idleUntil = this.settings.idleTtlMs === null ? null : Date.now() + this.settings.idleTtlMs;
    }
  }

  /** Step: the worker takes no more work; the loop then finishes the drain. */
  async drainNow(): Promise<void> {
    // Re-checked under the lock: the loop decided before waiting for it, and a drain update (or an
    // adopted change) may have moved the worker to draining or ended it meanwhile.
    if (!this.isServing()) return;
    await this.transition('draining', 'drain');
    this.s.drainRequested = true;
  }

  /** Registry claims: a worker asked to drain that is not (or no longer) claimed drains now (drainNow). */
  needsDrain(): boolean {
    return this.registryClaims && this.s.drainRequested && (this.s.state === 'idle' || this.s.state === 'hot_idle');
  }

  /**
   * Step: new credentials before the old ones expire. An idle or hot-idle refresh moves the epoch;
   * a claimed one keeps the tenant's (bumpsEpoch). Then the secret is rotated at that epoch and
   * the worker re-activated so it reads it.
   */
  async refreshCredentials(): Promise<void> {
    const { s, settings } = this;
    const version = (s.credential?.version ?? 0) + 1;
    const expiresAt = Date.now() + settings.credentialTtlMs;
    await this.transition(s.state, 'refresh_credentials', {
      credentialVersion: version,
      credentialExpiresAt: new Date(expiresAt).toISOString(),
    });
    s.credential = { version, expiresAt };
    s.deadlines.refreshAt = expiresAt - settings.credentialRefreshLeadMs;
    try {
      // A local activity in every generation: a refresh is an idle worker's only history in
      // steady state, and one marker beside the transition's and the activation's keeps it small.
      // Resilient runs give it more than the runtime's worst case (an attempt never outlives its
      // timeout while still writing) and retry it through an outage of any length: only a
      // deterministic refusal (forbidden, the pod gone) comes back, and only that loses the worker.
      const rotate = this.resilient
        ? proxyLocalActivities<LifecycleActivities>({
            summary: 'rotate credentials',
            startToCloseTimeout: runtimeCallWorstCaseMs.writeCredentials + 10_000,
            localRetryThreshold: '10s',
            retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s' },
          })
        : quickly('rotate credentials');
      await rotate.rotateCredentials({
        ref: this.podRef(),
        epoch: s.epoch,
        version,
        expiresAt: new Date(expiresAt).toISOString(),
        ...this.protocol(),
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      const type = failureTypeOf(err);
      if (this.resilient && type === runtimeFailureTypes.staleWrite) {
        // The runtime holds newer credentials than these (a later epoch wrote them): nothing to
        // undo; the activation below finds out whether this workflow's view is behind.
        log.info('credential rotation found newer credentials in place', { workerId: this.workerId });
      } else {
        log.warn('credential rotation failed', { workerId: this.workerId, error: messageOf(err) });
        await this.lose(
          !this.resilient
            ? 'runtime_unreachable'
            : type === runtimeFailureTypes.podMissing
              ? 'pod_vanished'
              : type === runtimeFailureTypes.forbidden || type === runtimeFailureTypes.invalidInput
                ? 'config_error'
                : 'runtime_unreachable',
        );
        return;
      }
    }
    // (awaits above: a claim or release the API made meanwhile shows as a refused activation.)
    const failure = await this.activate(s.tenant);
    if (failure) await this.lose(failure.reason);
  }

  /** Step: ask the worker to stop (resilient runs: and wait until it has), delete its pod and secret, retire the row. */
  async finishDrain(): Promise<void> {
    this.stopMonitor();
    if (this.s.endpoint) {
      if (this.resilient) await this.awaitWorkerDrained(this.s.endpoint);
      else
        await quickly('ask the worker to drain').requestWorkerDrain({ endpoint: this.s.endpoint, ...this.protocol() });
    }
    await this.deletePod();
    await this.transition('retired', 'retire');
  }

  /**
   * Asks the worker to drain, with its id and the epoch this workflow holds, and asks again (backing
   * off from 0.5 s to 5 s) while it answers that its work is not finished, up to the pool's drain
   * timeout. A refusal (another worker behind the address, a higher epoch), an unreachable worker,
   * or one speaking the protocol from before `drained` existed: nothing to wait for.
   */
  private async awaitWorkerDrained(endpoint: string): Promise<void> {
    const giveUpAt = Date.now() + this.settings.drainTimeoutMs;
    for (let waitMs = 500; ; waitMs = Math.min(waitMs * 2, 5_000)) {
      const answer = await quickly('ask the worker to drain').requestWorkerDrain({
        endpoint,
        workerId: this.workerId,
        epoch: this.s.epoch,
        ...this.protocol(),
      });
      if (answer.outcome !== 'draining') {
        if (answer.outcome === 'refused' || answer.outcome === 'unreachable') {
          log.info('drain not taken by the worker; deleting it', { workerId: this.workerId, answer: answer.outcome });
        }
        return;
      }
      const left = giveUpAt - Date.now();
      if (left <= 0) {
        log.warn('drain timeout: deleting a worker that has not finished', { workerId: this.workerId });
        return;
      }
      // (await: under the lock; registry changes and verdicts noted meanwhile wait for the loop.)
      await sleep(Math.min(waitMs, left), { summary: 'wait for the worker to finish' });
    }
  }

  /** Step: the main loop's timer fired for `kind` (re-checked: something else may have moved first). */
  async onDeadline(kind: DeadlineKind): Promise<void> {
    const s = this.s;
    const due = nextDeadline(s);
    if (!due || due.kind !== kind || due.at > Date.now()) return; // something else moved first
    if (kind === 'refreshAt') return this.refreshCredentials();
    if (!this.registryClaims) {
      // Max lifetime, idle TTL, hot-idle TTL, drain timeout: the worker's service ends.
      s.drainRequested = true;
      await this.transition('draining', 'drain');
      return;
    }
    if (kind === 'idleUntil' || kind === 'hotIdleUntil') {
      // An unclaimed worker's TTL: if the API claims it first, this drain misses the fence and
      // the claim stands (the TTL no longer applies).
      await this.drainNow();
      return;
    }
    // Max lifetime or drain timeout: the service ends whatever the state. The registry first
    // stops claims and sends a release to draining, so a racing claim cannot outlive this.
    if (!s.drainRequested) {
      const row = await quickly('mark drain requested').markDrainRequested({ workerId: this.workerId });
      // (await: under the lock; only registry changes can have been noted meanwhile.)
      if (row.epoch > s.epoch) this.adopt(row);
      s.drainRequested = true;
      if (!this.isServing()) return; // draining or ended already: the loop takes it from here
    }
    await this.drainNow();
  }

  // --- health, outside history ----------------------------------------------------------------

  /**
   * Signal handler: a runtime's health watcher judged a pod of this worker. Kept only if it is
   * about the current pod (a verdict on an earlier attempt's pod, or a late duplicate, is
   * dropped); the main loop acts on it under the lock. Nothing is awaited here.
   */
  onHealthVerdict(notice: HealthVerdictNotice): void {
    if (!notice || typeof notice.podName !== 'string' || !isWorkerFailureReason(notice.reason)) {
      log.warn('ignored a malformed health verdict', { workerId: this.workerId, notice });
      return;
    }
    if (notice.podName !== this.s.podName || !this.isServing()) {
      log.info('ignored a health verdict', { workerId: this.workerId, podName: notice.podName, state: this.s.state });
      return;
    }
    this.pendingVerdict = notice;
    this.changes++;
  }

  /** A verdict on the current pod of a serving worker waits to be acted on. */
  hasPendingVerdict(): boolean {
    const verdict = this.pendingVerdict;
    if (verdict !== null && (verdict.podName !== this.s.podName || !this.isServing())) this.pendingVerdict = null;
    return this.pendingVerdict !== null;
  }

  /** Step: the health watcher's verdict ends a serving worker lost; a worker asked to drain drains instead. */
  async actOnHealthVerdict(): Promise<void> {
    const verdict = this.pendingVerdict;
    this.pendingVerdict = null;
    // Re-checked under the lock: a step that held it (a claim adopted, a drain) may have moved on.
    if (verdict === null || verdict.podName !== this.s.podName || !this.isServing()) return;
    await this.endUnhealthy(verdict.reason, verdict.detail);
  }

  private async endUnhealthy(reason: WorkerFailureReason, detail: string): Promise<void> {
    if (this.s.drainRequested) {
      // A worker on its way out is not declared lost for failing probes: finish the drain now.
      await this.transition('draining', 'drain');
      return;
    }
    log.warn('worker unhealthy', { workerId: this.workerId, reason, detail });
    await this.lose(reason);
  }

  /** Legacy runs (before shared health): starts the long-running health monitor of the current pod (once per pod). */
  ensureMonitor(): void {
    if (this.sharedHealth) return;
    // A settled monitor stays until the loop has read its verdict (onMonitorSettled clears it).
    const intervalMs = this.settings.healthIntervalMs;
    const s = this.s;
    if (intervalMs === null || !s.podName || !s.endpoint || (this.monitor && this.monitor.podName === s.podName))
      return;
    const scope = new CancellationScope();
    const current: Monitor = { scope, podName: s.podName, settled: false, verdict: null };
    const heartbeatMs = Math.max(20_000, 3 * intervalMs);
    void scope
      .run(() =>
        proxyActivities<HealthActivities>({
          summary: 'health monitor',
          startToCloseTimeout: this.settings.maxLifetimeMs + 3_600_000,
          heartbeatTimeout: heartbeatMs,
          retry: { initialInterval: '1s', maximumInterval: '1m', maximumAttempts: 10 },
        }).monitorWorkerHealth({
          ref: this.podRef(),
          endpoint: s.endpoint ?? '',
          workerId: this.workerId,
          intervalMs,
          failureThreshold: this.settings.healthFailureThreshold,
          ...this.protocol(),
        }),
      )
      .then(
        (verdict) => void (current.verdict = verdict),
        (err: unknown) => {
          if (!isCancellation(err)) log.warn('health monitor failed; restarting it', { error: messageOf(err) });
        },
      )
      .finally(() => {
        current.settled = true;
        this.changes++;
      });
    this.monitor = current;
  }

  monitorSettled(): boolean {
    return this.monitor?.settled === true;
  }

  stopMonitor(): void {
    if (this.monitor && !this.monitor.settled) this.monitor.scope.cancel();
    this.monitor = null;
  }

  /** Step: the monitor returned. A verdict ends a serving worker lost; a worker asked to drain drains instead. */
  async onMonitorSettled(): Promise<void> {
    const verdict = this.monitor?.verdict ?? null;
    this.monitor = null; // a failed monitor (not a verdict) restarts on the next loop turn
    if (!verdict || !this.isServing()) return;
    await this.endUnhealthy(verdict.reason, verdict.detail);
  }
}
