// Waits for one pod to become Ready, or for the typed reason it never will, on the runtime's
// shared pod informer: the cached pod first, then its changes — no watch (nor poll) per pod.
// Every path is bounded: the caller's timeout, the abort signal, `unreachableAfterMs` once the
// informer has not heard from the apiserver for that long, and the per-request timeout of the one
// read made when the informer has not seen the pod yet (it was created a moment ago).
import type { CoreV1Api } from '@kubernetes/client-node';
import { isIPv6 } from 'node:net';
import { classifyAtDeadline, classifyPodFailure, type PodVerdict } from '../classify-pod-failure';
import { RuntimeForbiddenError, WorkerNameConflictError } from '../errors';
import type { ReadinessDiagnostics, ReadinessOutcome } from '../pod-runtime';
import { apiMessage, isTransient, sleep, statusCodeOf, timeoutOptions } from './api-call';
import { isOursFor } from './pod-manifest';
import { summarizePod, type CachedPod, type PodInformer } from './pod-informer';
import type { WorkerPodRef } from '../../common';

export interface ReadinessWaitOptions {
  informer: PodInformer;
  core: CoreV1Api;
  namespace: string;
  ref: WorkerPodRef;
  timeoutMs: number;
  signal?: AbortSignal;
  /** How long the apiserver may stay unreachable before the answer is `runtime_unreachable`. */
  unreachableAfterMs: number;
  notScheduledGraceMs: number;
  apiTimeoutMs: number;
  onWaiting?: () => void;
}

const initialLookupBackoffMs = 100;
const maxLookupBackoffMs = 2_000;

export function awaitPodReadiness(options: ReadinessWaitOptions): Promise<ReadinessOutcome> {
  const { informer, ref, signal } = options;
  const baseline = informer.counters;
  const diagnostics = (): ReadinessDiagnostics => {
    const now = informer.counters;
    return { reconnects: now.reconnects - baseline.reconnects, relists: now.relists - baseline.relists };
  };

  return new Promise<ReadinessOutcome>((resolve, reject) => {
    let settled = false;
    let announcedWaiting = false;
    /** The pod as read directly, while the informer has not seen it yet. */
    let lookedUp: CachedPod | undefined;
    let lookupStarted = false;
    const lookupAbort = new AbortController();
    let recheckTimer: NodeJS.Timeout | undefined;
    let unreachableTimer: NodeJS.Timeout | undefined;
    let unreachableTimerAt: number | undefined;

    const cleanup = () => {
      settled = true;
      clearTimeout(deadlineTimer);
      clearTimeout(recheckTimer);
      clearTimeout(unreachableTimer);
      lookupAbort.abort();
      unsubscribePod();
      unsubscribeConnection();
      signal?.removeEventListener('abort', onAbort);
    };
    const finish = (outcome: ReadinessOutcome) => {
      if (settled) return;
      cleanup();
      resolve(outcome);
    };
    const fail = (error: unknown) => {
      if (settled) return;
      cleanup();
      reject(error);
    };
    const failed = (verdict: Extract<PodVerdict, { status: 'failed' }>): ReadinessOutcome => ({
      status: 'failed',
      reason: verdict.reason,
      detail: verdict.detail,
      diagnostics: diagnostics(),
    });
    const vanished = (detail: string) => finish(failed({ status: 'failed', reason: 'pod_vanished', detail }));

    const classify = (pod: CachedPod): PodVerdict => {
      const verdict = classifyPodFailure(pod.view, {
        now: new Date(),
        notScheduledGraceMs: options.notScheduledGraceMs,
      });
      // Ready without an address is not usable yet; the kubelet writes podIP in the same update in practice.
      if (verdict.status === 'ready' && !pod.view.status?.podIP) {
        return { status: 'pending', detail: 'ready, no pod IP yet' };
      }
      return verdict;
    };

    /** Past the bound: the final answer. Within it: a timer to look again when it ends. */
    const unreachableOutcome = (): ReadinessOutcome | undefined => {
      const since = informer.connection.unreachableSince;
      if (since === undefined) {
        clearTimeout(unreachableTimer);
        unreachableTimerAt = undefined;
        return undefined;
      }
      const givesUpAt = since + options.unreachableAfterMs;
      if (Date.now() >= givesUpAt) {
        return {
          status: 'failed',
          reason: 'runtime_unreachable',
          detail: `kubernetes API unreachable for ${Math.round((Date.now() - since) / 1000)}s: ${informer.connection.lastError ?? 'no answer'}`,
          diagnostics: diagnostics(),
        };
      }
      if (unreachableTimerAt !== givesUpAt) {
        clearTimeout(unreachableTimer);
        unreachableTimerAt = givesUpAt;
        unreachableTimer = setTimeout(evaluate, givesUpAt - Date.now());
      }
      return undefined;
    };

    const announceWaiting = () => {
      if (announcedWaiting) return;
      announcedWaiting = true;
      try {
        options.onWaiting?.();
      } catch {
        // A caller's notification hook must not break (or crash) the wait itself.
      }
    };

    function evaluate(): void {
      if (settled) return;
      const connection = informer.connection;
      if (connection.closed) return fail(new Error('the kubernetes runtime was closed during the readiness wait'));
      if (connection.failure) return fail(connection.failure);
      const pod = informer.get(ref.name) ?? lookedUp;
      const verdict = pod ? classify(pod) : undefined;
      // A failure is a fact even in a cache the apiserver has not refreshed for a while.
      if (verdict?.status === 'failed') return finish(failed(verdict));
      const unreachable = unreachableOutcome();
      if (unreachable) return finish(unreachable);
      // Ready only from a live view: while the watch is not open (starting, reconnecting, refused)
      // the cache may be stale, and a runtime that may not watch pods must fail loudly, not answer
      // from its first list. The connection change that opens the watch evaluates again.
      if (pod && verdict?.status === 'ready' && connection.watching) {
        return finish({ status: 'ready', endpoint: endpointOf(pod), diagnostics: diagnostics() });
      }
      if (!connection.synced) return;
      if (!pod || verdict === undefined) return lookUp();
      if (verdict.status !== 'pending') return;
      clearTimeout(recheckTimer);
      // A grace period (Unschedulable) ends without any new event: look again then.
      if (verdict.recheckAt) recheckTimer = setTimeout(evaluate, Math.max(0, verdict.recheckAt.getTime() - Date.now()));
      if (connection.watching) announceWaiting();
    }

    /**
     * The informer has not seen the pod: it was created a moment ago (its ADDED event is on the
     * way), or it is gone. One direct read tells which; its 404 is the only "gone" that does not
     * come from the informer.
     */
    function lookUp(): void {
      if (lookupStarted) return;
      lookupStarted = true;
      void (async () => {
        let backoffMs = initialLookupBackoffMs;
        while (!settled && !informer.get(ref.name)) {
          try {
            const requestSignal = AbortSignal.any([lookupAbort.signal, AbortSignal.timeout(options.apiTimeoutMs)]);
            const pod = await options.core.readNamespacedPod(
              { namespace: options.namespace, name: ref.name },
              timeoutOptions(requestSignal),
            );
            if (!isOursFor(ref, pod.metadata?.labels)) return fail(new WorkerNameConflictError('Pod', ref.name));
            lookedUp = summarizePod(pod, undefined, false);
            break;
          } catch (err) {
            if (settled) return;
            const code = statusCodeOf(err);
            if (code === 404) return vanished('the pod does not exist');
            if (code === 403) return fail(new RuntimeForbiddenError('get', 'pods', options.namespace, apiMessage(err)));
            if (!isTransient(err)) return fail(err);
            // The informer tracks reachability (and gives the bound); this read only retries.
            await sleep(backoffMs * (0.8 + Math.random() * 0.4), lookupAbort.signal).catch(() => undefined);
            backoffMs = Math.min(backoffMs * 2, maxLookupBackoffMs);
          }
        }
        evaluate();
      })();
    }

    const onAbort = () => fail(signal?.reason);
    // The spawn's time is up: the reason is what the last status says (classifyAtDeadline).
    const deadlineTimer = setTimeout(() => {
      const last = informer.get(ref.name) ?? lookedUp;
      const { reason, detail } = classifyAtDeadline(last?.view, options.timeoutMs);
      finish({ status: 'failed', reason, detail, diagnostics: diagnostics() });
    }, options.timeoutMs);
    const unsubscribePod = informer.subscribe(ref.name, (change) => {
      if (change.kind === 'deleted') return vanished('the pod was deleted');
      evaluate();
    });
    const unsubscribeConnection = informer.onConnectionChange(evaluate);
    if (signal?.aborted) return fail(signal.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    informer.start();
    evaluate();
  });
}

/** The worker's HTTP endpoint: the pod IP and the container port named `http` (corral's manifest sets it). */
function endpointOf(pod: CachedPod): string {
  const ip = pod.view.status?.podIP ?? '';
  return `http://${isIPv6(ip) ? `[${ip}]` : ip}:${pod.httpPort ?? 8080}`;
}
