// Waits for one pod to become Ready, or for the typed reason it never will, from a watch — not
// by polling. The watch resumes from the last resourceVersion it saw (so an apiserver restart
// loses no event), re-lists when the server answers 410 Gone or "too large resource version",
// backs off on 429/5xx/connection errors, and gives up as `runtime_unreachable` once the
// apiserver has been unreachable for a bounded time. Every path is bounded: the caller's
// timeout, the unreachable bound, per-request timeouts and the watch stream's own timeouts.
import type { CoreV1Api, KubeConfig, V1Pod } from '@kubernetes/client-node';
import { isIPv6 } from 'node:net';
import { classifyPodFailure, type PodVerdict } from '../classify-pod-failure';
import type { ReadinessDiagnostics, ReadinessOutcome } from '../pod-runtime';
import { RuntimeForbiddenError } from '../errors';
import { apiMessage, isTransient, sleep, statusCodeOf, timeoutOptions } from './api-call';
import { openWatchStream } from './watch-stream';

export interface ReadinessWatchOptions {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  podName: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** How long the apiserver may stay unreachable before the answer is `runtime_unreachable`. */
  unreachableAfterMs: number;
  notScheduledGraceMs: number;
  apiTimeoutMs: number;
  /** Server-side bound on one watch connection; the wait reconnects from the last resourceVersion. */
  watchTimeoutSeconds: number;
  onWaiting?: () => void;
}

type Decided = Exclude<PodVerdict, { status: 'pending' }>;
type WatchResult =
  | { kind: 'decided'; verdict: Decided; pod: V1Pod | undefined }
  | { kind: 'relist' }
  | { kind: 'closed'; lastedMs: number }
  | { kind: 'recheck' }
  | { kind: 'error'; error: unknown }
  | { kind: 'aborted' };

interface WatchEventStatus {
  code?: number;
  reason?: string;
  message?: string;
}

const initialBackoffMs = 100;
const maxBackoffMs = 2_000;
/** A watch that ends sooner than this without an event is treated as a failure worth backing off from. */
const healthyConnectionMs = 1_000;

export async function awaitPodReadiness(options: ReadinessWatchOptions): Promise<ReadinessOutcome> {
  const { core, namespace, podName, signal } = options;
  const deadline = Date.now() + options.timeoutMs;
  const diagnostics: ReadinessDiagnostics = { reconnects: 0, relists: 0 };
  const fieldSelector = `metadata.name=${podName}`;

  let resourceVersion: string | undefined;
  let lastPod: V1Pod | undefined;
  let lastPending = 'no status yet';
  let unreachableSince: number | undefined;
  let lastUnreachableError: unknown;
  let backoffMs = initialBackoffMs;
  let announcedWaiting = false;

  const classify = (pod: V1Pod | undefined): PodVerdict => {
    const verdict = classifyPodFailure(pod, { now: new Date(), notScheduledGraceMs: options.notScheduledGraceMs });
    // Ready without an address is not usable yet; the kubelet writes podIP in the same update in practice.
    if (verdict.status === 'ready' && !pod?.status?.podIP) return { status: 'pending', detail: 'ready, no pod IP yet' };
    if (verdict.status === 'pending') lastPending = verdict.detail;
    return verdict;
  };
  const outcomeOf = (verdict: Decided, pod: V1Pod | undefined): ReadinessOutcome =>
    verdict.status === 'ready'
      ? { status: 'ready', endpoint: endpointOf(pod), diagnostics }
      : { status: 'failed', reason: verdict.reason, detail: verdict.detail, diagnostics };
  /** Only real answers (a list, a watch event) prove the apiserver works; a bare 200 does not. */
  const heardFromServer = () => {
    unreachableSince = undefined;
    backoffMs = initialBackoffMs;
  };
  /** Records a failed contact; returns the final outcome once the apiserver has been gone too long. */
  const unreachable = (error: unknown): ReadinessOutcome | undefined => {
    unreachableSince ??= Date.now();
    lastUnreachableError = error;
    if (Date.now() - unreachableSince < options.unreachableAfterMs) return undefined;
    return {
      status: 'failed',
      reason: 'runtime_unreachable',
      detail: `kubernetes API unreachable for ${Math.round((Date.now() - unreachableSince) / 1000)}s: ${apiMessage(lastUnreachableError)}`,
      diagnostics,
    };
  };
  const backoff = async () => {
    // Jitter keeps many waiting workflows from reconnecting in lockstep after an apiserver restart.
    const wait = Math.min(backoffMs * (0.8 + Math.random() * 0.4), Math.max(0, deadline - Date.now()));
    backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    await sleep(wait, signal);
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

  const watchOnce = (fromVersion: string, until: number): Promise<WatchResult> =>
    new Promise((resolve) => {
      let settled = false;
      let abortStream: (() => void) | undefined;
      const openedAt = Date.now();
      const settle = (result: WatchResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        abortStream?.();
        resolve(result);
      };
      const onAbort = () => settle({ kind: 'aborted' });
      const timer = setTimeout(() => settle({ kind: 'recheck' }), Math.max(0, until - Date.now()));
      if (signal?.aborted) return settle({ kind: 'aborted' });
      signal?.addEventListener('abort', onAbort, { once: true });

      const url = new URL(
        `${options.kubeConfig.getCurrentCluster()?.server ?? ''}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
      );
      url.searchParams.set('watch', 'true');
      url.searchParams.set('fieldSelector', fieldSelector);
      url.searchParams.set('resourceVersion', fromVersion);
      url.searchParams.set('allowWatchBookmarks', 'true');
      url.searchParams.set('timeoutSeconds', String(options.watchTimeoutSeconds));

      const onEvent = (type: string, raw: Record<string, unknown>) => {
        if (settled) return;
        if (type === 'ERROR') {
          const status = raw as WatchEventStatus;
          // 410: history compacted. 504 "Too large resource version": this apiserver's cache lags
          // behind the version we hold (HA or restored etcd). Either way, start over from a list.
          if (status.code === 410 || /too large resource version/i.test(status.message ?? '')) {
            return settle({ kind: 'relist' });
          }
          const error = Object.assign(new Error(status.message ?? 'watch error'), { statusCode: status.code });
          return settle({ kind: 'error', error });
        }
        heardFromServer();
        const object = raw as V1Pod;
        if (object.metadata?.resourceVersion) resourceVersion = object.metadata.resourceVersion;
        if (type === 'BOOKMARK') return;
        if (type === 'DELETED') {
          return settle({
            kind: 'decided',
            verdict: { status: 'failed', reason: 'pod_vanished', detail: 'the pod was deleted' },
            pod: undefined,
          });
        }
        lastPod = object;
        const verdict = classify(object);
        if (verdict.status !== 'pending') return settle({ kind: 'decided', verdict, pod: object });
        // A grace period now ends earlier than this connection would: come back to re-arm the timer.
        if (verdict.recheckAt && verdict.recheckAt.getTime() < until) settle({ kind: 'recheck' });
      };

      openWatchStream(
        options.kubeConfig,
        url,
        {
          headerTimeoutMs: options.apiTimeoutMs,
          // The server closes the stream after timeoutSeconds and sends bookmarks meanwhile;
          // silence well beyond that means a dead connection.
          idleTimeoutMs: (options.watchTimeoutSeconds + 30) * 1000,
        },
        {
          onOpen: () => {
            if (!settled) announceWaiting();
          },
          onEvent,
          onEnd: (error) =>
            settle(error ? { kind: 'error', error } : { kind: 'closed', lastedMs: Date.now() - openedAt }),
        },
      ).then(
        (abort) => {
          abortStream = abort;
          if (settled) abort();
        },
        (error: unknown) => settle({ kind: 'error', error }),
      );
    });

  for (;;) {
    signal?.throwIfAborted();
    if (Date.now() >= deadline) {
      return {
        status: 'failed',
        reason: 'deadline_exceeded',
        detail: `not ready within ${Math.round(options.timeoutMs / 1000)}s (last seen: ${lastPending})`,
        diagnostics,
      };
    }
    if (resourceVersion === undefined) {
      try {
        const requestSignal = signal
          ? AbortSignal.any([signal, AbortSignal.timeout(options.apiTimeoutMs)])
          : AbortSignal.timeout(options.apiTimeoutMs);
        const list = await core.listNamespacedPod({ namespace, fieldSelector }, timeoutOptions(requestSignal));
        heardFromServer();
        resourceVersion = list.metadata?.resourceVersion;
        lastPod = list.items[0];
        const verdict = classify(lastPod);
        if (verdict.status !== 'pending') return outcomeOf(verdict, lastPod);
      } catch (err) {
        signal?.throwIfAborted();
        if (statusCodeOf(err) === 403) throw new RuntimeForbiddenError('list', 'pods', namespace, apiMessage(err));
        if (!isTransient(err)) throw err;
        const gaveUp = unreachable(err);
        if (gaveUp) return gaveUp;
        await backoff();
        continue;
      }
    }

    const pending = classify(lastPod);
    if (pending.status !== 'pending') return outcomeOf(pending, lastPod);
    const until = Math.min(deadline, pending.recheckAt?.getTime() ?? Infinity);
    const result = await watchOnce(resourceVersion ?? '0', until);
    switch (result.kind) {
      case 'decided':
        return outcomeOf(result.verdict, result.pod);
      case 'aborted':
        signal?.throwIfAborted();
        throw new Error('readiness wait aborted');
      case 'recheck':
        break;
      case 'relist':
        diagnostics.relists++;
        resourceVersion = undefined;
        // Repeated 410s (a lagging cache) must not become a hot list/watch loop.
        if (diagnostics.relists > 1) await backoff();
        break;
      case 'closed':
        diagnostics.reconnects++;
        if (result.lastedMs < healthyConnectionMs) await backoff();
        break;
      case 'error': {
        diagnostics.reconnects++;
        const code = statusCodeOf(result.error);
        if (code === 403) throw new RuntimeForbiddenError('watch', 'pods', namespace, apiMessage(result.error));
        if (code === 410) {
          diagnostics.relists++;
          resourceVersion = undefined;
          break;
        }
        if (!isTransient(result.error)) throw result.error;
        const gaveUp = unreachable(result.error);
        if (gaveUp) return gaveUp;
        await backoff();
        break;
      }
    }
  }
}

/** The worker's HTTP endpoint: the pod IP and the container port named `http` (corral's manifest sets it). */
function endpointOf(pod: V1Pod | undefined): string {
  const port = pod?.spec?.containers?.[0]?.ports?.find((p) => p.name === 'http')?.containerPort ?? 8080;
  const ip = pod?.status?.podIP ?? '';
  return `http://${isIPv6(ip) ? `[${ip}]` : ip}:${port}`;
}
