// workerLifecycleWorkflow: one worker's whole life as one durable, fenced state machine.
//
// Shape (after samples-typescript message-passing/safe-message-handlers): this function is wiring.
// It decides once which generation of behaviour the run has, registers the handlers before the
// first await (so nothing sent across a run boundary is lost), and runs the main loop; the state
// machine itself, one method per step under one lock, is the WorkerLifecycle class
// (lifecycle-machine.ts), and its pure decisions are in lifecycle-rules.ts.
//
// Claims and releases are decided by the registry (the corral API) and reach the workflow as a
// `registryChanged` signal it adopts without an activity. Runs recorded before that change
// (`corral-registry-claims` absent) keep their claim/release updates and replay unchanged.
//
// History economy: short registry/worker calls are local activities (one marker each), health
// costs nothing until something is wrong (the runtime's one watcher per corral worker signals a
// verdict; runs before `corral-shared-health` had a long-running monitor activity), and the main
// loop sleeps on one timer for the earliest deadline. Deadlines are absolute times in
// plain-JSON state, so a continue-as-new carries them exactly.
import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  setHandler,
} from '@temporalio/workflow';
import { nextDeadline } from './lifecycle-rules';
import {
  FenceConverged,
  registryClaimsPatch,
  resiliencePatch,
  sharedHealthPatch,
  timerSummaries,
  WorkerLifecycle,
} from './lifecycle-machine';
import {
  abandonClaimSignal,
  claimUpdate,
  describeQuery,
  drainUpdate,
  healthVerdictSignal,
  registryChangedSignal,
  releaseUpdate,
  type WorkerLifecycleInput,
  type WorkerLifecycleResult,
} from '../../common';

export async function workerLifecycleWorkflow(input: WorkerLifecycleInput): Promise<WorkerLifecycleResult> {
  // Decided once, before any await: a history recorded before registry claims has no marker here,
  // so its replay takes the legacy paths and issues exactly the commands it recorded.
  const registryClaims = patched(registryClaimsPatch);
  // Likewise: runs recorded before shared health keep their health monitor activity.
  const sharedHealth = patched(sharedHealthPatch);
  // And runs recorded before prompt drains and outage-proof retries keep what they recorded.
  const resilient = registryClaims && sharedHealth && patched(resiliencePatch);
  const lc = new WorkerLifecycle(input, registryClaims, sharedHealth, resilient);
  const s = lc.s;

  // --- messages: registered before the first await, so nothing sent across a run boundary is lost
  setHandler(describeQuery, () => lc.describe());
  if (!registryClaims) {
    // Kept, unchanged, for runs recorded before registry claims: there a claim and a release are
    // this workflow's updates. Newer runs register none of them (the SDK rejects such an update).
    setHandler(claimUpdate, (request) => lc.claim(request), { validator: (request) => lc.validateClaim(request) });
    setHandler(abandonClaimSignal, ({ requestId }) => lc.abandonClaim(requestId));
    setHandler(releaseUpdate, (lease) => lc.release(lease), { validator: (lease) => lc.validateRelease(lease) });
  }
  setHandler(drainUpdate, (request) => lc.drain(request), { validator: (request) => lc.validateDrain(request) });
  // Registered for every run: a legacy run still open when the corral API took over claims hears
  // of them too (its recorded histories hold no such signal, so their replay is unchanged).
  setHandler(registryChangedSignal, (change) => lc.onRegistryChanged(change));
  // Every run: a verdict from the runtime's health watcher (legacy runs' histories hold none).
  setHandler(healthVerdictSignal, (notice) => lc.onHealthVerdict(notice));

  // --- the main loop ---------------------------------------------------------------------------
  try {
    if (!input.carried) {
      try {
        await lc.exclusive(() => lc.startLife());
      } catch (err) {
        if (!(err instanceof FenceConverged)) throw err;
      } finally {
        lc.boundClaimSettled = true;
      }
    }
    lc.boundClaimSettled = true;
    lc.syncSearchAttributes();
    while (!lc.isTerminal()) {
      try {
        if (lc.hasPendingChange()) {
          // Adopted under the lock: a step already running (a refresh, a drain) finishes first and
          // may itself have found the newer row by a fence miss, in which case this is a no-op.
          await lc.exclusive(() => lc.adoptRegistryChange());
          continue;
        }
        if (lc.hasPendingVerdict()) {
          await lc.exclusive(() => lc.actOnHealthVerdict());
          continue;
        }
        if (s.state === 'draining') {
          await lc.exclusive(() => lc.finishDrain());
          continue;
        }
        if (s.state === 'spawning' || s.state === 'activating') {
          // Only after adopting someone else's row mid-spawn: this life cannot be resumed, so end it.
          await lc.exclusive(() => lc.transition('draining', 'drain'));
          continue;
        }
        if (
          !registryClaims &&
          lc.abandonedRequestId !== null &&
          s.state === 'claimed' &&
          s.claimRequestId === lc.abandonedRequestId
        ) {
          await lc.exclusive(() => lc.releaseAbandonedClaim());
          continue;
        }
        if (lc.needsDrain()) {
          await lc.exclusive(() => lc.drainNow());
          continue;
        }
        if (lc.isServing()) lc.ensureMonitor();
        const next = nextDeadline(s);
        const seen = lc.changes;
        const woken = () => lc.changes !== seen || lc.shouldContinueAsNew();
        let fired = false;
        // The one timer: any message that changes the worker bumps `changes` and wakes it early.
        if (next === null) await condition(woken);
        else if (next.at <= Date.now()) fired = true;
        else fired = !(await condition(woken, next.at - Date.now(), { summary: timerSummaries[next.kind] }));

        // A registry change (or a health verdict) first: deadlines are absolute, so one still due
        // after adopting fires at once.
        if (lc.hasPendingChange() || lc.hasPendingVerdict()) continue;
        if (fired && next) await lc.exclusive(() => lc.onDeadline(next.kind));
        else if (lc.monitorSettled()) await lc.exclusive(() => lc.onMonitorSettled());
        else if (lc.shouldContinueAsNew() && !lc.isTerminal()) {
          if (registryClaims) {
            // One condition for everything a close would cut off: an update handler running, a step
            // holding the lock, a signal to the pool in flight. Nothing is awaited between it and
            // continueAsNew, so nothing can start in between.
            await condition(() => lc.quiescent());
            // Adopt it (or act on the verdict) in this run; the next turn comes back here.
            if (lc.hasPendingChange() || lc.hasPendingVerdict()) continue;
            lc.stopMonitor();
          } else {
            await condition(() => allHandlersFinished() && !lc.busy);
            lc.stopMonitor();
            await lc.settleNotifications();
          }
          await continueAsNew<typeof workerLifecycleWorkflow>({ ...input, boundClaim: null, carried: s });
        }
      } catch (err) {
        // The registry says someone else decided; the loop carries on from the adopted row.
        if (!(err instanceof FenceConverged)) throw err;
      }
    }
    lc.stopMonitor();
    // An end someone else decided (adopted from the registry) still takes our pod with it.
    if (!lc.podDeleted && !lc.podLeftToJanitor && (s.podName || input.carried === undefined)) await lc.deletePod();
    lc.notifyPool({ event: 'ended', reason: s.failureReason });
    await lc.settleNotifications();
    await condition(allHandlersFinished);
    return {
      workerId: lc.workerId,
      state: s.state as 'retired' | 'lost',
      epoch: s.epoch,
      failureReason: s.failureReason,
    };
  } catch (err) {
    if (isCancellation(err)) {
      // Cancelled by an operator: the pod and secret still go, and the row ends retired.
      await CancellationScope.nonCancellable(async () => {
        lc.stopMonitor();
        await lc.settleNotifications();
        await lc.deletePod();
        if (!lc.isTerminal()) {
          try {
            await lc.transition('retired', 'retire');
          } catch (fenceErr) {
            if (!(fenceErr instanceof FenceConverged)) throw fenceErr;
          }
        }
      });
    }
    throw err;
  }
}
