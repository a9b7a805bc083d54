// Waits for one pod to become Ready, or for the typed reason it never will, from a watch — not
// by polling. The watch resumes from the last resourceVersion it saw (so an apiserver restart
// loses no event), re-lists when the server answers 410 Gone, backs off on 429/5xx/connection
// errors, and gives up as `runtime_unreachable` once the apiserver has been unreachable for a
// bounded time.
import { Watch, type CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { classifyPodFailure, type PodVerdict } from '../classify-pod-failure';
import type { ReadinessDiagnostics, ReadinessOutcome } from '../pod-runtime';
import { RuntimeForbiddenError } from '../errors';
import { apiMessage, isTransient, sleep, statusCodeOf, timeoutOptions } from './api-call';

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

type WatchResult =
  | { kind: 'decided'; verdict: Exclude<PodVerdict, { status: 'pending' }>; pod: V1Pod | undefined }
  | { kind: 'gone' }
  | { kind: 'closed' }
  | { kind: 'error'; error: unknown }
  | { kind: 'aborted' };

interface WatchEventStatus {
  code?: number;
  message?: string;
}

const maxBackoffMs = 2_000;

export async function awaitPodReadiness(options: ReadinessWatchOptions): Promise<ReadinessOutcome> {
  const { core, namespace, podName, signal } = options;
  const deadline = Date.now() + options.timeoutMs;
  const diagnostics: ReadinessDiagnostics = { reconnects: 0, relists: 0 };
  const watch = new Watch(options.kubeConfig);
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
  const fieldSelector = `metadata.name=${podName}`;

  let resourceVersion: string | undefined;
  let lastPod: V1Pod | undefined;
  let lastPending = 'no status yet';
  let unreachableSince: number | undefined;
  let lastUnreachableError: unknown;
  let backoffMs = 100;
  let announcedWaiting = false;

  const classify = (pod: V1Pod | undefined): PodVerdict => {
    const verdict = classifyPodFailure(pod, { now: new Date(), notScheduledGraceMs: options.notScheduledGraceMs });
    // Ready without an address is not usable yet; the kubelet writes podIP in the same update in practice.
    if (verdict.status === 'ready' && !pod?.status?.podIP) return { status: 'pending', detail: 'ready, no pod IP yet' };
    if (verdict.status === 'pending') lastPending = verdict.detail;
    return verdict;
  };
  const outcomeOf = (verdict: Exclude<PodVerdict, { status: 'pending' }>, pod: V1Pod | undefined): ReadinessOutcome =>
    verdict.status === 'ready'
      ? { status: 'ready', endpoint: endpointOf(pod), diagnostics }
      : { status: 'failed', reason: verdict.reason, detail: verdict.detail, diagnostics };
  const reachable = () => {
    unreachableSince = undefined;
    backoffMs = 100;
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

  const watchOnce = (fromVersion: string, until: number): Promise<WatchResult> =>
    new Promise((resolve) => {
      let settled = false;
      let controller: AbortController | undefined;
      const settle = (result: WatchResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        controller?.abort();
        resolve(result);
      };
      const onAbort = () => settle({ kind: 'aborted' });
      const timer = setTimeout(() => settle({ kind: 'closed' }), Math.max(0, until - Date.now()));
      signal?.addEventListener('abort', onAbort, { once: true });
      const query = {
        fieldSelector,
        resourceVersion: fromVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: options.watchTimeoutSeconds,
      };
      const onEvent = (type: string, object: V1Pod & WatchEventStatus) => {
        if (settled) return;
        if (type === 'ERROR') {
          if (object.code === 410) return settle({ kind: 'gone' });
          return settle({
            kind: 'error',
            error: Object.assign(new Error(object.message ?? 'watch error'), { statusCode: object.code }),
          });
        }
        if (object.metadata?.resourceVersion) resourceVersion = object.metadata.resourceVersion;
        if (type === 'BOOKMARK') return;
        if (type === 'DELETED') {
          const verdict = { status: 'failed', reason: 'pod_vanished', detail: 'the pod was deleted' } as const;
          return settle({ kind: 'decided', verdict, pod: undefined });
        }
        lastPod = object;
        const verdict = classify(object);
        if (verdict.status !== 'pending') return settle({ kind: 'decided', verdict, pod: object });
        // A grace period now ends earlier than this connection would: reconnect to re-arm the timer.
        if (verdict.recheckAt && verdict.recheckAt.getTime() < until) settle({ kind: 'closed' });
      };
      watch
        .watch(path, query, onEvent, (err: unknown) => settle(err ? { kind: 'error', error: err } : { kind: 'closed' }))
        .then(
          (c) => {
            controller = c;
            if (settled) return c.abort();
            reachable();
            if (!announcedWaiting) {
              announcedWaiting = true;
              options.onWaiting?.();
            }
          },
          (err: unknown) => settle({ kind: 'error', error: err }),
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
        const list = await core.listNamespacedPod({ namespace, fieldSelector }, timeoutOptions(options.apiTimeoutMs));
        reachable();
        resourceVersion = list.metadata?.resourceVersion;
        lastPod = list.items[0];
        const verdict = classify(lastPod);
        if (verdict.status !== 'pending') return outcomeOf(verdict, lastPod);
      } catch (err) {
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
    const until = Math.min(
      deadline,
      pending.recheckAt?.getTime() ?? Infinity,
      Date.now() + (options.watchTimeoutSeconds + 15) * 1000,
    );
    const result = await watchOnce(resourceVersion ?? '0', until);
    switch (result.kind) {
      case 'decided':
        return outcomeOf(result.verdict, result.pod);
      case 'aborted':
        signal?.throwIfAborted();
        throw new Error('readiness wait aborted');
      case 'gone':
        diagnostics.relists++;
        resourceVersion = undefined;
        break;
      case 'closed':
        diagnostics.reconnects++;
        break;
      case 'error': {
        if (statusCodeOf(result.error) === 403) {
          throw new RuntimeForbiddenError('watch', 'pods', namespace, apiMessage(result.error));
        }
        if (statusCodeOf(result.error) === 410) {
          diagnostics.relists++;
          resourceVersion = undefined;
          break;
        }
        diagnostics.reconnects++;
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
  return `http://${pod?.status?.podIP}:${port}`;
}
