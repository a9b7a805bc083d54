// workerLifecycleWorkflow: one worker's whole life as one durable, fenced state machine.
//
// Shape (after samples-typescript message-passing/safe-message-handlers): handlers are
// registered before the first await; every step that changes the worker (the main loop's and
// each update's) runs under one lock, so steps never interleave; every state change is a
// registry compare-and-set carrying the epoch this workflow holds. On a fence miss the
// workflow re-reads the row and adopts it; it never retries a stale write.
//
// History economy: short registry/worker calls are local activities (one marker each), health
// is a long-running heartbeating activity that only returns when something changed, and the
// main loop sleeps on one timer for the earliest deadline. Deadlines are absolute times in
// plain-JSON state, so a continue-as-new carries them exactly.
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { HealthActivities, HealthVerdict } from '../../activities/health-activities';
import type { RegistryActivities, TransitionWorkerInput } from '../../activities/registry-activities';
import type { RuntimeActivities } from '../../activities/runtime-activities';
import { isRetryableFailure, type WorkerFailureReason } from '../../lifecycle/failure-reasons';
import type { LifecycleOperation } from '../../lifecycle/operations';
import { workerPodName } from '../../lifecycle/pod-names';
import type { WorkerState } from '../../lifecycle/states';
import type { WorkerPodRef, WorkerPodSpecInput } from '../../runtime/worker-pod-spec';
import { poolWorkflowId, workerChangedSignal, type WorkerChange } from '../pool/messages';
import { corralImageKey, corralPoolKey, corralStateKey, corralTenantKey } from '../search-attributes';
import {
  adoptRow,
  checkClaim,
  checkDrain,
  checkRelease,
  describeWorker,
  initialLifecycleState,
  nextDeadline,
  type DeadlineKind,
  type Rejection,
} from './lifecycle-rules';
import {
  abandonClaimSignal,
  claimUpdate,
  describeQuery,
  drainUpdate,
  lifecycleRejections,
  maxUpdatesPerRun,
  releaseUpdate,
  type LifecycleState,
  type WorkerLease,
  type WorkerLifecycleInput,
  type WorkerLifecycleResult,
} from './messages';

type LifecycleActivities = RegistryActivities & RuntimeActivities & HealthActivities;

/**
 * Short registry and worker-protocol calls: a marker event each instead of three events. A
 * registry outage is retried for up to 10 minutes (bounded, not for ever): failing a
 * months-long worker workflow over a Postgres restart would be worse than waiting.
 */
function quickly(summary: string) {
  return proxyLocalActivities<LifecycleActivities>({
    summary,
    startToCloseTimeout: '10s',
    scheduleToCloseTimeout: '10m',
    retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s' },
  });
}

const timerSummaries: Record<DeadlineKind, string> = {
  spawnBy: 'spawn deadline',
  activateBy: 'activation deadline',
  idleUntil: 'idle TTL',
  hotIdleUntil: 'hot-idle TTL',
  refreshAt: 'credential refresh',
  drainBy: 'drain timeout',
  retireAt: 'max lifetime',
};

/** Thrown inside the workflow (never out of it) when a fence miss made us adopt the registry's row. */
class FenceConverged extends Error {}

const missedDeadline = Symbol('missed deadline');

/** Added after histories existed: worker workflows tell their pool about spawns, claims and ends. */
const poolNotificationsPatch = 'corral-pool-notifications';

/** The ApplicationFailure type behind an activity error (local activities surface it unwrapped). */
function failureTypeOf(err: unknown): string | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.type ?? undefined;
  if (err instanceof ApplicationFailure) return err.type ?? undefined;
  return undefined;
}

function messageOf(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

function reject(rejection: Rejection | null): void {
  if (rejection)
    throw ApplicationFailure.create({ type: rejection.type, message: rejection.message, nonRetryable: true });
}

export async function workerLifecycleWorkflow(input: WorkerLifecycleInput): Promise<WorkerLifecycleResult> {
  const { workerId, pool, settings } = input;
  const s: LifecycleState = input.carried ?? initialLifecycleState(input, Date.now());

  // --- sequencing -------------------------------------------------------------------------
  let busy = false;
  /** Bumped on every change the main loop must look at (it re-plans its timer). */
  let changes = 0;
  async function exclusive<T>(step: () => Promise<T>): Promise<T> {
    // Several waiters can be woken by the same release; the first to run takes the lock and the
    // others see `busy` again and go back to waiting (check-and-set has no await in between).
    while (busy) await condition(() => !busy);
    busy = true;
    try {
      return await step();
    } finally {
      busy = false;
      changes++;
    }
  }

  /** Updates handled by this run: it continues as new long before the server's per-run limit. */
  let updatesThisRun = 0;
  /** The cold-path claim this worker was spawned for has been answered (or can no longer be). */
  let boundClaimSettled = false;
  /** A claim whose caller gave up; its worker is not handed to anyone for it. */
  let abandonedRequestId: string | null = null;
  const boundClaim = input.boundClaim ?? null;

  // --- messages: registered before the first await, so nothing sent across a run boundary is lost
  setHandler(describeQuery, () => describeWorker(s, input));

  setHandler(
    claimUpdate,
    async (request): Promise<WorkerLease> => {
      updatesThisRun++;
      if (boundClaim?.requestId === request.requestId && !boundClaimSettled && !isTerminal()) {
        // The cold path: answered once the worker spawned for this claim is ready and claimed.
        await condition(() => boundClaimSettled || isTerminal());
        if (s.state !== 'claimed' || s.claimRequestId !== request.requestId) {
          throw ApplicationFailure.create({
            type: lifecycleRejections.workerUnavailable,
            message: `the worker spawned for this claim did not become ready (${s.failureReason ?? s.state})`,
            nonRetryable: true,
          });
        }
      }
      return exclusiveUpdate(async (): Promise<WorkerLease> => {
        reject(checkClaim(s, request, boundClaim)); // again: the state may have moved while we waited for the lock
        if (s.state !== 'claimed') {
          await transition('claimed', 'claim', { tenant: request.tenant, claimRequestId: request.requestId });
          s.deadlines.idleUntil = null;
          s.deadlines.hotIdleUntil = null;
          await activateOrLose(request.tenant);
          notifyPool({ event: 'claimed' });
        }
        return { workerId, epoch: s.epoch, endpoint: s.endpoint ?? '', tenant: request.tenant };
      });
    },
    { validator: (request) => reject(checkClaim(s, request, boundClaim)) },
  );

  setHandler(abandonClaimSignal, ({ requestId }) => {
    abandonedRequestId = requestId;
    changes++;
  });

  setHandler(
    releaseUpdate,
    (lease) =>
      exclusiveUpdate(async () => {
        updatesThisRun++;
        reject(checkRelease(s, workerId, lease));
        const policy = s.drainRequested ? 'retire' : settings.releasePolicy;
        const now = Date.now();
        if (policy === 'hot_idle') {
          await transition('hot_idle', 'release', { claimRequestId: null });
          s.deadlines.hotIdleUntil = now + settings.hotIdleTtlMs;
        } else if (policy === 'recycle') {
          await transition('idle', 'release', { tenant: null, claimRequestId: null });
          s.deadlines.idleUntil = settings.idleTtlMs === null ? null : now + settings.idleTtlMs;
        } else {
          await transition('draining', 'release');
        }
        // The worker learns the new epoch, so the old holder is refused by the worker too.
        if (s.state !== 'draining') await activateOrLose(s.tenant);
        return { state: s.state, epoch: s.epoch };
      }),
    { validator: (lease) => reject(checkRelease(s, workerId, lease)) },
  );

  setHandler(
    drainUpdate,
    (request) =>
      exclusiveUpdate(async () => {
        updatesThisRun++;
        reject(checkDrain(s, request));
        s.drainRequested = true;
        if (s.state === 'claimed') {
          // The tenant keeps its worker until it releases it or the drain timeout ends.
          s.deadlines.drainBy = Date.now() + (request.timeoutMs ?? settings.drainTimeoutMs);
        } else {
          await transition('draining', 'drain');
        }
        return describeWorker(s, input);
      }),
    { validator: (request) => reject(checkDrain(s, request)) },
  );

  /**
   * An update's step under the lock. A fence miss inside it means the caller's view is stale:
   * say so, typed (a plain error escaping a handler would fail the workflow task instead).
   */
  function exclusiveUpdate<T>(step: () => Promise<T>): Promise<T> {
    return exclusive(async () => {
      try {
        return await step();
      } catch (err) {
        if (err instanceof FenceConverged) {
          throw ApplicationFailure.create({
            type: lifecycleRejections.staleLease,
            message: `the worker moved on: it is ${s.state} at epoch ${s.epoch}`,
            nonRetryable: true,
          });
        }
        throw err;
      }
    });
  }
  /**
   * Tells the pool something changed, so it refills and keeps its breaker without polling. Best
   * effort: a pool that is not running (a worker started on its own, a drained pool) is fine,
   * since the pool re-reads the registry whenever it wakes.
   */
  const notifications: Promise<void>[] = [];
  function notifyPool(change: Omit<WorkerChange, 'workerId'>): void {
    if (!patched(poolNotificationsPatch)) return;
    notifications.push(
      getExternalWorkflowHandle(poolWorkflowId(pool))
        .signal(workerChangedSignal, { workerId, ...change })
        .catch(() => undefined),
    );
  }
  /** A run never closes with a signal still in flight (the server would have to finish it for a closed run). */
  async function settleNotifications(): Promise<void> {
    await Promise.all(notifications.splice(0));
  }

  // --- the registry fence ------------------------------------------------------------------
  // A declaration, not a const: an update buffered before the workflow started runs its handler
  // inside setHandler, before the lines below have executed.
  function isTerminal(): boolean {
    return s.state === 'retired' || s.state === 'lost';
  }

  async function transition(
    to: WorkerState,
    operation: LifecycleOperation,
    patch: TransitionWorkerInput['patch'] = {},
  ): Promise<void> {
    const from = s.state;
    const expected = { epoch: s.epoch, states: [from] };
    try {
      const row = await quickly(`${operation}: ${from} → ${to}`).transitionWorker({
        workerId,
        expected,
        to,
        patch,
        operation,
        origin: 'lifecycle_workflow',
      });
      adoptRow(s, row);
    } catch (err) {
      const type = failureTypeOf(err);
      if (type !== 'FenceMiss' && type !== 'WorkerRowMissing') throw err;
      const row = await quickly('re-read after a fence miss').readWorker(workerId);
      // Our own write may have applied with its answer lost (a retry after a store error): that
      // is the state we wanted, at the epoch we would have had.
      const ownWrite =
        row !== null &&
        row.state === to &&
        (row.epoch === expected.epoch || row.epoch === expected.epoch + 1) &&
        (patch.claimRequestId === undefined || row.claimRequestId === patch.claimRequestId);
      if (row === null) {
        s.state = 'lost';
        s.failureReason = 'row_missing';
      } else {
        adoptRow(s, row);
      }
      log.warn('fence miss: adopted the registry row', {
        workerId,
        expected,
        to,
        actual: row && [row.state, row.epoch],
      });
      syncSearchAttributes();
      if (!ownWrite) throw new FenceConverged(`${from} → ${to} at epoch ${expected.epoch} missed the fence`);
    }
    changes++;
    syncSearchAttributes();
  }

  function syncSearchAttributes(): void {
    const current = workflowInfo().typedSearchAttributes;
    const wanted: SearchAttributeUpdatePair[] = [
      { key: corralPoolKey, value: pool },
      { key: corralImageKey, value: settings.image },
      { key: corralStateKey, value: s.state },
      { key: corralTenantKey, value: s.tenant },
    ];
    const changed = wanted.filter((pair) => (current.get(pair.key) ?? null) !== pair.value);
    if (changed.length > 0) upsertSearchAttributes(changed);
  }

  // --- pod and worker ------------------------------------------------------------------------
  const podRef = (): WorkerPodRef => ({
    workerId,
    pool,
    spawnAttempt: s.spawnAttempt,
    name: workerPodName(pool, workerId, s.spawnAttempt),
  });

  function podSpec(): WorkerPodSpecInput {
    return {
      workerId,
      pool,
      spawnAttempt: s.spawnAttempt,
      epoch: s.epoch,
      image: settings.image,
      args: settings.args,
      env: settings.env,
      port: settings.port,
      healthPath: settings.healthPath,
      resources: settings.resources,
      // The runtime's own backstop (activeDeadlineSeconds) ends with corral's max-lifetime timer.
      maxLifetimeSeconds: Math.max(60, Math.ceil((s.deadlines.retireAt - Date.now()) / 1000)),
    };
  }

  /** Whether the current attempt's pod is known gone (so the end of life need not delete it again). */
  let podDeleted = false;
  async function deletePod(): Promise<void> {
    await quickly('delete pod and secret').deleteWorkerPod(podRef());
    podDeleted = true;
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
    const inTime = await condition(() => outcome !== undefined, remaining, { summary: timerSummaries[kind] });
    if (!inTime || outcome === undefined) {
      scope.cancel();
      await running;
      return missedDeadline;
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** Hands the worker its identity at the current epoch; a worker that will not take it is lost. */
  async function activateOrLose(tenant: string | null): Promise<void> {
    const failure = await activate(tenant);
    if (failure) {
      await lose(failure.reason);
      throw ApplicationFailure.create({
        type: lifecycleRejections.workerUnavailable,
        message: `the worker failed while being handed over (${failure.reason}: ${failure.detail}); the pool replaces it`,
        nonRetryable: true,
      });
    }
  }

  async function activate(
    tenant: string | null,
    deadline?: number,
  ): Promise<{ reason: WorkerFailureReason; detail: string } | null> {
    const call = () =>
      proxyLocalActivities<LifecycleActivities>({
        summary: tenant ? 'activate for tenant' : 'activate',
        startToCloseTimeout: '10s',
        scheduleToCloseTimeout: deadline ? Math.max(1, deadline - Date.now()) : settings.activationDeadlineMs,
        retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s' },
      }).activateWorker({ endpoint: s.endpoint ?? '', workerId, epoch: s.epoch, tenant });
    try {
      const result = deadline === undefined ? await call() : await beforeDeadline(deadline, 'activateBy', call);
      if (result === missedDeadline) return { reason: 'activation_failed', detail: 'not activated by the deadline' };
      return null;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const reason = failureTypeOf(err) === 'TypeMismatch' ? 'type_mismatch' : 'activation_failed';
      return { reason, detail: messageOf(err) };
    }
  }

  /** A serving worker failed: its pod goes, and the row ends `lost` with the reason. */
  async function lose(reason: WorkerFailureReason): Promise<void> {
    stopMonitor();
    await deletePod();
    if (!isTerminal()) await transition('lost', 'mark_lost', { failureReason: reason });
  }

  // --- life ---------------------------------------------------------------------------------
  async function startLife(): Promise<void> {
    const row = await quickly('register worker').registerWorker({
      workerId,
      pool,
      image: settings.image,
      origin: 'lifecycle_workflow',
      coldClaim: boundClaim !== null,
    });
    adoptRow(s, row);
    syncSearchAttributes();
    if (row.state !== 'spawning') {
      // A row from an earlier life of this id (e.g. its workflow was terminated): never reuse it.
      if (!isTerminal()) await transition('draining', 'drain');
      return;
    }
    s.spawnAttempt = row.spawnAttempt;
    for (;;) {
      const failure = await spawnAndActivate();
      if (failure === null || isTerminal()) {
        notifyPool(
          failure === null && !isTerminal() ? { event: 'ready' } : { event: 'spawn_failed', reason: s.failureReason },
        );
        return;
      }
      await deletePod(); // the failed attempt's pod and secret
      s.failureReason = failure.reason;
      if (!isRetryableFailure(failure.reason) || s.spawnAttempt >= settings.maxSpawnAttempts) {
        log.warn('worker lost while spawning', { workerId, ...failure, spawnAttempt: s.spawnAttempt });
        await transition('lost', 'mark_lost', { failureReason: failure.reason });
        notifyPool({ event: 'spawn_failed', reason: failure.reason });
        return;
      }
      log.info('respawning', { workerId, ...failure, spawnAttempt: s.spawnAttempt });
      await transition('spawning', 'respawn', {
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
  async function spawnAndActivate(): Promise<{ reason: WorkerFailureReason; detail: string } | null> {
    s.deadlines.spawnBy = Date.now() + settings.spawnDeadlineMs;
    podDeleted = false;
    const version = (s.credential?.version ?? 0) + 1;
    let spawned;
    try {
      spawned = await proxyActivities<RuntimeActivities>({
        summary: `spawn pod (attempt ${s.spawnAttempt})`,
        startToCloseTimeout: '60s',
        retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5 },
      }).spawnWorkerPod({
        spec: podSpec(),
        credentialVersion: version,
        credentialExpiresAt: new Date(Date.now() + settings.credentialTtlMs).toISOString(),
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      const type = failureTypeOf(err);
      const misconfigured =
        type === 'RuntimeInputError' || type === 'RuntimeForbidden' || type === 'WorkerNameConflict';
      return { reason: misconfigured ? 'config_error' : 'runtime_unreachable', detail: messageOf(err) };
    }
    s.podName = spawned.ref.name;
    s.credential = { version, expiresAt: Date.parse(spawned.credentials.expiresAt) };

    let ready;
    try {
      ready = await beforeDeadline(s.deadlines.spawnBy, 'spawnBy', () =>
        proxyActivities<RuntimeActivities>({
          summary: 'await pod ready',
          startToCloseTimeout: settings.spawnDeadlineMs + 60_000,
          // A corral worker that dies mid-wait is noticed within this, and the wait resumes elsewhere.
          heartbeatTimeout: '15s',
          retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5 },
        }).awaitWorkerReady({ ref: spawned.ref, timeoutMs: Math.max(1, (s.deadlines.spawnBy ?? 0) - Date.now()) }),
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      return { reason: 'runtime_unreachable', detail: messageOf(err) };
    } finally {
      s.deadlines.spawnBy = null;
    }
    if (ready === missedDeadline) return { reason: 'deadline_exceeded', detail: 'not ready by the spawn deadline' };
    if (ready.status === 'failed') return { reason: ready.reason, detail: ready.detail };

    await transition('activating', 'activate', {
      podName: spawned.ref.name,
      endpoint: ready.endpoint,
      credentialVersion: version,
      credentialExpiresAt: spawned.credentials.expiresAt,
    });
    s.podName = spawned.ref.name;
    s.endpoint = ready.endpoint;
    s.deadlines.activateBy = Date.now() + settings.activationDeadlineMs;
    const failure = await activate(null, s.deadlines.activateBy);
    s.deadlines.activateBy = null;
    if (failure) return failure;

    const claim = input.boundClaim;
    if (claim && abandonedRequestId !== claim.requestId) {
      await transition('claimed', 'claim', { tenant: claim.tenant, claimRequestId: claim.requestId });
      const bound = await activate(claim.tenant);
      if (bound) {
        // Claimed is past respawning: the claim is answered by the pool with another worker.
        await lose(bound.reason);
        return null;
      }
    } else {
      await transition('idle', 'ready');
      s.deadlines.idleUntil = settings.idleTtlMs === null ? null : Date.now() + settings.idleTtlMs;
    }
    s.deadlines.refreshAt = s.credential.expiresAt - settings.credentialRefreshLeadMs;
    return null;
  }

  /** A claim's caller gave up before it got its lease: nobody holds the worker, so it goes back to idle. */
  async function releaseAbandonedClaim(): Promise<void> {
    if (s.state !== 'claimed' || s.claimRequestId !== abandonedRequestId) return;
    abandonedRequestId = null;
    if (s.drainRequested) {
      await transition('draining', 'release');
      return;
    }
    await transition('idle', 'release', { tenant: null, claimRequestId: null });
    s.deadlines.idleUntil = settings.idleTtlMs === null ? null : Date.now() + settings.idleTtlMs;
    const failure = await activate(null);
    if (failure) await lose(failure.reason);
  }

  async function refreshCredentials(): Promise<void> {
    const version = (s.credential?.version ?? 0) + 1;
    const expiresAt = Date.now() + settings.credentialTtlMs;
    await transition(s.state, 'refresh_credentials', {
      credentialVersion: version,
      credentialExpiresAt: new Date(expiresAt).toISOString(),
    });
    s.credential = { version, expiresAt };
    s.deadlines.refreshAt = expiresAt - settings.credentialRefreshLeadMs;
    try {
      await quickly('rotate credentials').rotateCredentials({
        ref: podRef(),
        epoch: s.epoch,
        version,
        expiresAt: new Date(expiresAt).toISOString(),
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('credential rotation failed', { workerId, error: messageOf(err) });
      await lose('runtime_unreachable');
      return;
    }
    const failure = await activate(s.tenant);
    if (failure) await lose(failure.reason);
  }

  async function finishDrain(): Promise<void> {
    stopMonitor();
    if (s.endpoint) await quickly('ask the worker to drain').requestWorkerDrain({ endpoint: s.endpoint });
    await deletePod();
    await transition('retired', 'retire');
  }

  async function onDeadline(kind: DeadlineKind): Promise<void> {
    const due = nextDeadline(s);
    if (!due || due.kind !== kind || due.at > Date.now()) return; // something else moved first
    if (kind === 'refreshAt') return refreshCredentials();
    // Max lifetime, idle TTL, hot-idle TTL, drain timeout: the worker's service ends.
    s.drainRequested = true;
    await transition('draining', 'drain');
  }

  // --- health, outside history ----------------------------------------------------------------
  interface Monitor {
    scope: CancellationScope;
    podName: string;
    settled: boolean;
    verdict: HealthVerdict | null;
  }
  let monitor: Monitor | null = null;

  function ensureMonitor(): void {
    // A settled monitor stays until the loop has read its verdict (onMonitorSettled clears it).
    const intervalMs = settings.healthIntervalMs;
    if (intervalMs === null || !s.podName || !s.endpoint || (monitor && monitor.podName === s.podName)) return;
    const scope = new CancellationScope();
    const current: Monitor = { scope, podName: s.podName, settled: false, verdict: null };
    const heartbeatMs = Math.max(20_000, 3 * intervalMs);
    void scope
      .run(() =>
        proxyActivities<HealthActivities>({
          summary: 'health monitor',
          startToCloseTimeout: settings.maxLifetimeMs + 3_600_000,
          heartbeatTimeout: heartbeatMs,
          retry: { initialInterval: '1s', maximumInterval: '1m', maximumAttempts: 10 },
        }).monitorWorkerHealth({
          ref: podRef(),
          endpoint: s.endpoint ?? '',
          workerId,
          intervalMs,
          failureThreshold: settings.healthFailureThreshold,
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
        changes++;
      });
    monitor = current;
  }

  const monitorSettled = () => monitor?.settled === true;

  function stopMonitor(): void {
    if (monitor && !monitor.settled) monitor.scope.cancel();
    monitor = null;
  }

  async function onMonitorSettled(): Promise<void> {
    const verdict = monitor?.verdict ?? null;
    monitor = null; // a failed monitor (not a verdict) restarts on the next loop turn
    if (!verdict || !isServing()) return;
    if (s.drainRequested) {
      // A worker on its way out is not declared lost for failing probes: finish the drain now.
      await transition('draining', 'drain');
      return;
    }
    log.warn('worker unhealthy', { workerId, reason: verdict.reason, detail: verdict.detail });
    await lose(verdict.reason);
  }

  const isServing = () => s.state === 'idle' || s.state === 'claimed' || s.state === 'hot_idle';

  function shouldContinueAsNew(): boolean {
    const info = workflowInfo();
    const threshold = input.continueAsNewAfterEvents;
    return (
      info.continueAsNewSuggested ||
      updatesThisRun >= maxUpdatesPerRun ||
      (threshold !== undefined && info.historyLength >= threshold)
    );
  }

  // --- the main loop ---------------------------------------------------------------------------
  try {
    if (!input.carried) {
      try {
        await exclusive(startLife);
      } catch (err) {
        if (!(err instanceof FenceConverged)) throw err;
      } finally {
        boundClaimSettled = true;
      }
    }
    boundClaimSettled = true;
    syncSearchAttributes();
    while (!isTerminal()) {
      try {
        if (s.state === 'draining') {
          await exclusive(finishDrain);
          continue;
        }
        if (s.state === 'spawning' || s.state === 'activating') {
          // Only after adopting someone else's row mid-spawn: this life cannot be resumed, so end it.
          await exclusive(() => transition('draining', 'drain'));
          continue;
        }
        if (abandonedRequestId !== null && s.state === 'claimed' && s.claimRequestId === abandonedRequestId) {
          await exclusive(releaseAbandonedClaim);
          continue;
        }
        if (isServing()) ensureMonitor();
        const next = nextDeadline(s);
        const seen = changes;
        const woken = () => changes !== seen || shouldContinueAsNew();
        let fired = false;
        if (next === null) await condition(woken);
        else if (next.at <= Date.now()) fired = true;
        else fired = !(await condition(woken, next.at - Date.now(), { summary: timerSummaries[next.kind] }));

        if (fired && next) await exclusive(() => onDeadline(next.kind));
        else if (monitorSettled()) await exclusive(onMonitorSettled);
        else if (shouldContinueAsNew() && !isTerminal()) {
          await condition(() => allHandlersFinished() && !busy);
          stopMonitor();
          await settleNotifications();
          await continueAsNew<typeof workerLifecycleWorkflow>({ ...input, boundClaim: null, carried: s });
        }
      } catch (err) {
        // The registry says someone else decided; the loop carries on from the adopted row.
        if (!(err instanceof FenceConverged)) throw err;
      }
    }
    stopMonitor();
    // An end someone else decided (adopted after a fence miss) still takes our pod with it.
    if (!podDeleted && (s.podName || input.carried === undefined)) await deletePod();
    notifyPool({ event: 'ended', reason: s.failureReason });
    await settleNotifications();
    await condition(allHandlersFinished);
    return { workerId, state: s.state as 'retired' | 'lost', epoch: s.epoch, failureReason: s.failureReason };
  } catch (err) {
    if (isCancellation(err)) {
      // Cancelled by an operator: the pod and secret still go, and the row ends retired.
      await CancellationScope.nonCancellable(async () => {
        stopMonitor();
        await settleNotifications();
        await deletePod();
        if (!isTerminal()) {
          try {
            await transition('retired', 'retire');
          } catch (fenceErr) {
            if (!(fenceErr instanceof FenceConverged)) throw fenceErr;
          }
        }
      });
    }
    throw err;
  }
}
