// One list+watch of a namespace's corral pods per KubernetesPodRuntime (so one per corral worker
// process), shared by every readiness wait and the health watch: whatever the fleet size, one
// watch connection and an in-memory cache of small pod summaries.
//
// It is a controller, so it never gives up: it resumes the watch from the last resourceVersion it
// saw (an apiserver restart loses no event), re-lists when the server says that point is gone
// (410 Gone, or "too large resource version" from a lagging watch cache), re-lists anyway every
// `resyncIntervalMs` (a bounded age for the cache, whatever went wrong), and backs off with jitter
// on 429/5xx/connection errors. Waiters decide when to stop waiting: `connection.unreachableSince`
// says since when the apiserver has not answered, `connection.failure` what waiting will not fix
// (forbidden, a broken kubeconfig). Every request is bounded (list pages by `apiTimeoutMs`, the
// watch by watch-stream's header and idle timeouts) and everything stops on close().
//
// Why not client-node's makeInformer/ListWatch: it resumes from resourceVersion and re-lists on
// 410, but it stops on any other error (restarting and backing off is left to the caller), its
// Watch has no client-side bound (no header or idle timeout; its AbortController arrives only
// with the response headers, so an accepted but unanswered watch can be neither timed out nor
// cancelled — see watch-stream.ts), its list is one call (no paging of its own), it knows nothing
// of "too large resource version", never re-lists on a period, and caches whole V1Pod objects.
//
// Cost: one watch connection and O(1) work per event (a Map update, the pod's own subscribers,
// the global ones). Memory: a pod is cached as a CachedPod (name, uid, resourceVersion, its worker
// ref, HTTP port, and only the status fields the classifier reads, messages clipped), not as a
// V1Pod: about 1.3 KB of heap for a Ready pod against 3.8 KB for even a minimal parsed pod (real
// ones, with managedFields, are several times that), so about 1.3 MB for 1,000 pods.
//
// The informer never keeps a process alive by itself (its timers and watch socket are unref'd):
// it is a background cache. Whoever waits on it holds its own timer (awaitReady's deadline).
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { workerPodName, type WorkerPodRef } from '../../common';
import type { ContainerStatusView, PodConditionView, PodView } from '../classify-pod-failure';
import { RuntimeForbiddenError } from '../errors';
import { apiMessage, isTransient, statusCodeOf, timeoutOptions } from './api-call';
import { corralLabels } from './pod-manifest';
import { openWatchStream } from './watch-stream';

export interface PodInformerOptions {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  labelSelector: string;
  /** Bound on one list page, and on the watch's response headers. */
  apiTimeoutMs: number;
  /** Server-side bound on one watch connection; the informer reconnects from the last resourceVersion. */
  watchTimeoutSeconds: number;
  /** Re-list this often even when the watch is healthy (jittered ±10%). */
  resyncIntervalMs: number;
  /** Pods per list page. */
  listPageSize?: number;
}

/** What the informer keeps of one pod: enough to classify it, report it and reach it. */
export interface CachedPod {
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  /** The worker spawn this pod is, from its corral labels; undefined if they are missing or do not match its name. */
  readonly ref: WorkerPodRef | undefined;
  /** The container port named `http` (corral's manifest sets it). */
  readonly httpPort: number | undefined;
  /** The status fields classifyPodFailure reads (conditions Ready/PodScheduled/DisruptionTarget), messages clipped. */
  readonly view: PodView;
  /** This informer has seen the pod Running with Ready=True (sticky). */
  readonly seenReady: boolean;
  /**
   * First seen in a list (informer start or re-list), so what happened before is unknown: its
   * containers had already started then (sticky).
   */
  readonly startedBeforeSeen: boolean;
  /**
   * First seen in a list Running with Ready=False set after its container started: it was Ready
   * before this informer saw it and lost it (sticky).
   */
  readonly readyLostBeforeSeen: boolean;
}

export type PodChange =
  | { kind: 'upsert'; pod: CachedPod; previous: CachedPod | undefined }
  /** `pod` is its last known state. */
  | { kind: 'deleted'; pod: CachedPod };

export interface InformerConnection {
  /** The first list has filled the cache. */
  synced: boolean;
  /** A watch connection is open: any change made from now on will arrive. */
  watching: boolean;
  /** Since when (ms since epoch) the apiserver has not answered; undefined while it does. */
  unreachableSince: number | undefined;
  /** The last failed contact, for details. */
  lastError: string | undefined;
  /** What retrying will not fix (forbidden, a broken kubeconfig); the informer still retries, slowly. */
  failure: Error | undefined;
  closed: boolean;
}

/** Monotonic counters, for diagnostics and tests (never for decisions). */
export interface InformerCounters {
  /** Watch requests sent. */
  watchAttempts: number;
  /** Watch requests answered 200: connections actually opened. */
  watchesOpened: number;
  /** Watches that ended (error or server-side close) and were re-established. */
  reconnects: number;
  /** Full re-lists because the resume point was gone (410 / too large resource version). */
  relists: number;
  /** Full re-lists because the resync period ended. */
  resyncs: number;
  /** Complete lists (all pages), the first included. */
  lists: number;
  /** Watch events applied (bookmarks excluded). */
  events: number;
}

type WatchEnd =
  | { kind: 'stopped' }
  | { kind: 'resync' }
  | { kind: 'relist' }
  | { kind: 'closed'; healthy: boolean }
  | { kind: 'error'; error: unknown };

interface WatchEventStatus {
  code?: number;
  message?: string;
}

const initialBackoffMs = 100;
/** Cap for transient failures: short, because recovery latency is what a waiter pays. */
const maxBackoffMs = 2_000;
/** Cap for failures retrying will not fix soon (forbidden, bad kubeconfig): keep trying, quietly. */
const maxFailureBackoffMs = 30_000;
/** A watch open this long (or that delivered an event) proves the apiserver answers. */
const healthyConnectionMs = 1_000;
const defaultListPageSize = 500;
/** Longest message kept per field; kubelet termination messages can be 4 KiB. */
const maxMessageLength = 1_024;

export class PodInformer {
  private readonly pods = new Map<string, CachedPod>();
  private readonly podListeners = new Map<string, Set<(change: PodChange) => void>>();
  private readonly changeListeners = new Set<(change: PodChange) => void>();
  private readonly connectionListeners = new Set<() => void>();
  private readonly logSinks = new Set<(line: string) => void>();
  private readonly stopController = new AbortController();
  private readonly state: InformerConnection = {
    synced: false,
    watching: false,
    unreachableSince: undefined,
    lastError: undefined,
    failure: undefined,
    closed: false,
  };
  private readonly stats: InformerCounters = {
    watchAttempts: 0,
    watchesOpened: 0,
    reconnects: 0,
    relists: 0,
    resyncs: 0,
    lists: 0,
    events: 0,
  };
  private resourceVersion: string | undefined;
  private nextResyncAt = 0;
  private backoffMs = initialBackoffMs;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: PodInformerOptions) {}

  /** Starts the list+watch loop; later calls do nothing. */
  start(): void {
    if (this.loop || this.state.closed) return;
    this.loop = this.run().catch((err: unknown) => this.log(`pod informer stopped unexpectedly: ${apiMessage(err)}`));
  }

  get connection(): Readonly<InformerConnection> {
    return this.state;
  }

  get counters(): Readonly<InformerCounters> {
    return { ...this.stats };
  }

  get size(): number {
    return this.pods.size;
  }

  get(name: string): CachedPod | undefined {
    return this.pods.get(name);
  }

  values(): IterableIterator<CachedPod> {
    return this.pods.values();
  }

  /** Changes of one pod (including its deletion). Returns the unsubscribe. */
  subscribe(name: string, listener: (change: PodChange) => void): () => void {
    let listeners = this.podListeners.get(name);
    if (!listeners) this.podListeners.set(name, (listeners = new Set()));
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.podListeners.get(name) === listeners) this.podListeners.delete(name);
    };
  }

  /** Every change of every pod. Returns the unsubscribe. */
  onChange(listener: (change: PodChange) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Any change of `connection` (synced, watching, reachability, failure, closed). Returns the unsubscribe. */
  onConnectionChange(listener: () => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  /** Diagnostics lines (watch errors, re-lists); never carry credentials. Returns the unsubscribe. */
  onLog(sink: (line: string) => void): () => void {
    this.logSinks.add(sink);
    return () => this.logSinks.delete(sink);
  }

  async close(): Promise<void> {
    if (this.state.closed) return;
    this.state.closed = true;
    this.state.watching = false;
    this.stopController.abort(new Error('the pod informer was closed'));
    await this.loop;
    this.notifyConnection();
  }

  private async run(): Promise<void> {
    let relistsInARow = 0;
    while (!this.state.closed) {
      if (this.resourceVersion === undefined) {
        if (!(await this.list())) {
          await this.backoff();
          continue;
        }
      }
      const eventsBefore = this.stats.events;
      const end = await this.watch(this.resourceVersion ?? '0');
      this.setWatching(false);
      if (this.stats.events > eventsBefore) relistsInARow = 0;
      if (end.kind === 'stopped') return;
      if (end.kind === 'resync') {
        this.stats.resyncs++;
        this.resourceVersion = undefined;
        continue;
      }
      if (end.kind === 'relist' || (end.kind === 'error' && statusCodeOf(end.error) === 410)) {
        this.stats.relists++;
        this.resourceVersion = undefined;
        this.log('pod watch: resume point gone (410 / too large resource version), re-listing');
        // Repeated 410s (a lagging cache) must not become a hot list/watch loop.
        if (relistsInARow++ > 0) await this.backoff();
        continue;
      }
      this.stats.reconnects++;
      if (end.kind === 'error') {
        this.failed('watch', end.error);
        await this.backoff();
      } else if (!end.healthy) {
        await this.backoff();
      }
    }
  }

  /** One complete list (all pages) replacing the cache; false when it failed (recorded). */
  private async list(): Promise<boolean> {
    const { core, namespace, labelSelector } = this.options;
    const listed = new Map<string, CachedPod>();
    let resourceVersion: string | undefined;
    let continueToken: string | undefined;
    try {
      do {
        const signal = AbortSignal.any([this.stopController.signal, AbortSignal.timeout(this.options.apiTimeoutMs)]);
        const page = await core.listNamespacedPod(
          {
            namespace,
            labelSelector,
            limit: this.options.listPageSize ?? defaultListPageSize,
            _continue: continueToken,
          },
          timeoutOptions(signal),
        );
        for (const item of page.items) {
          const name = item.metadata?.name;
          if (name) listed.set(name, summarizePod(item, this.pods.get(name), true));
        }
        // Every page is served at the first page's snapshot; its resourceVersion is where the watch starts.
        resourceVersion ??= page.metadata?.resourceVersion;
        continueToken = page.metadata?._continue || undefined;
      } while (continueToken !== undefined);
    } catch (err) {
      if (this.state.closed) return false;
      // An expired continue token (410): start the list over, at once.
      if (statusCodeOf(err) === 410 && continueToken !== undefined) return this.list();
      this.failed('list', err);
      return false;
    }
    this.stats.lists++;
    this.resourceVersion = resourceVersion ?? '0';
    this.nextResyncAt = Date.now() + this.options.resyncIntervalMs * (0.9 + Math.random() * 0.2);
    for (const [name, pod] of listed) {
      const previous = this.pods.get(name);
      if (previous?.resourceVersion === pod.resourceVersion) continue;
      this.pods.set(name, pod);
      this.dispatch({ kind: 'upsert', pod, previous });
    }
    for (const [name, pod] of this.pods) {
      if (listed.has(name)) continue;
      this.pods.delete(name);
      this.dispatch({ kind: 'deleted', pod });
    }
    this.answered();
    if (!this.state.synced) {
      this.state.synced = true;
      this.notifyConnection();
    }
    return true;
  }

  private watch(fromVersion: string): Promise<WatchEnd> {
    const { kubeConfig, namespace, labelSelector, watchTimeoutSeconds } = this.options;
    return new Promise((resolve) => {
      let ended = false;
      let abortStream: (() => void) | undefined;
      let heardOnThisConnection = false;
      let healthyTimer: NodeJS.Timeout | undefined;
      const end = (result: WatchEnd) => {
        if (ended) return;
        ended = true;
        clearTimeout(resyncTimer);
        clearTimeout(healthyTimer);
        this.stopController.signal.removeEventListener('abort', onStop);
        abortStream?.();
        resolve(result);
      };
      const onStop = () => end({ kind: 'stopped' });
      const resyncTimer = setTimeout(() => end({ kind: 'resync' }), Math.max(0, this.nextResyncAt - Date.now()));
      resyncTimer.unref();
      if (this.stopController.signal.aborted) return end({ kind: 'stopped' });
      this.stopController.signal.addEventListener('abort', onStop, { once: true });

      const url = new URL(
        `${kubeConfig.getCurrentCluster()?.server ?? ''}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
      );
      url.searchParams.set('watch', 'true');
      url.searchParams.set('labelSelector', labelSelector);
      url.searchParams.set('resourceVersion', fromVersion);
      url.searchParams.set('allowWatchBookmarks', 'true');
      url.searchParams.set('timeoutSeconds', String(watchTimeoutSeconds));

      const heard = () => {
        if (heardOnThisConnection) return;
        heardOnThisConnection = true;
        this.answered();
      };
      const onEvent = (type: string, raw: Record<string, unknown>) => {
        if (ended) return;
        if (type === 'ERROR') {
          const status = raw as WatchEventStatus;
          // 410: history compacted. 504 "Too large resource version": this apiserver's cache lags
          // behind the version we hold (HA or restored etcd). Either way, start over from a list.
          if (status.code === 410 || /too large resource version/i.test(status.message ?? '')) {
            return end({ kind: 'relist' });
          }
          return end({
            kind: 'error',
            error: Object.assign(new Error(status.message ?? 'watch error'), { statusCode: status.code }),
          });
        }
        heard();
        const pod = raw as RawPod;
        const version = pod.metadata?.resourceVersion;
        if (version) this.resourceVersion = version;
        if (type === 'BOOKMARK') return;
        const name = pod.metadata?.name;
        if (!name) return;
        this.stats.events++;
        const previous = this.pods.get(name);
        if (type === 'DELETED') {
          this.pods.delete(name);
          this.dispatch({ kind: 'deleted', pod: summarizePod(pod, previous, false) });
          return;
        }
        const summary = summarizePod(pod, previous, false);
        this.pods.set(name, summary);
        this.dispatch({ kind: 'upsert', pod: summary, previous });
      };

      this.stats.watchAttempts++;
      const openedAt = Date.now();
      openWatchStream(
        kubeConfig,
        url,
        {
          headerTimeoutMs: this.options.apiTimeoutMs,
          // The server closes the stream after timeoutSeconds and sends bookmarks meanwhile;
          // silence well beyond that means a dead connection.
          idleTimeoutMs: (watchTimeoutSeconds + 30) * 1000,
        },
        {
          onOpen: () => {
            if (ended) return;
            this.stats.watchesOpened++;
            // A bare 200 does not prove much (a proxy may cut it at once); staying open does.
            healthyTimer = setTimeout(heard, healthyConnectionMs);
            healthyTimer.unref();
            this.setWatching(true);
          },
          onEvent,
          onEnd: (error) => {
            if (error) return end({ kind: 'error', error });
            end({ kind: 'closed', healthy: heardOnThisConnection || Date.now() - openedAt >= healthyConnectionMs });
          },
        },
      ).then(
        (abort) => {
          abortStream = abort;
          if (ended) abort();
        },
        (error: unknown) => end({ kind: 'error', error }),
      );
    });
  }

  /** The apiserver answered for real (a list, a watch event, a watch that stays open). */
  private answered(): void {
    this.backoffMs = initialBackoffMs;
    if (this.state.unreachableSince === undefined && this.state.failure === undefined) return;
    if (this.state.unreachableSince !== undefined) {
      this.log(
        `kubernetes API reachable again after ${Math.round((Date.now() - this.state.unreachableSince) / 1000)}s`,
      );
    }
    this.state.unreachableSince = undefined;
    this.state.lastError = undefined;
    this.state.failure = undefined;
    this.notifyConnection();
  }

  private failed(verb: 'list' | 'watch', err: unknown): void {
    const message = apiMessage(err);
    this.state.lastError = message;
    if (statusCodeOf(err) === 403) {
      // It answered: reachable, but waiting will not help until someone fixes the Role.
      this.state.unreachableSince = undefined;
      this.state.failure = new RuntimeForbiddenError(verb, 'pods', this.options.namespace, message);
      this.backoffMs = Math.max(this.backoffMs, maxBackoffMs);
    } else if (isTransient(err)) {
      this.state.unreachableSince ??= Date.now();
    } else {
      this.state.failure = err instanceof Error ? err : new Error(message);
      this.backoffMs = Math.max(this.backoffMs, maxBackoffMs);
    }
    this.log(`pod ${verb} failed: ${message}`);
    this.notifyConnection();
  }

  private async backoff(): Promise<void> {
    // Jitter keeps corral replicas from reconnecting in lockstep after an apiserver restart.
    const wait = this.backoffMs * (0.8 + Math.random() * 0.4);
    const cap = this.state.failure ? maxFailureBackoffMs : maxBackoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, cap);
    await new Promise<void>((resolve) => {
      const signal = this.stopController.signal;
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, wait);
      timer.unref();
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private setWatching(watching: boolean): void {
    if (this.state.watching === watching) return;
    this.state.watching = watching;
    this.notifyConnection();
  }

  private dispatch(change: PodChange): void {
    const listeners = this.podListeners.get(change.pod.name);
    if (listeners) for (const listener of listeners) this.invoke(listener, change);
    for (const listener of this.changeListeners) this.invoke(listener, change);
  }

  private invoke(listener: (change: PodChange) => void, change: PodChange): void {
    try {
      listener(change);
    } catch (err) {
      // One subscriber's bug must not stop the informer (or starve the other subscribers).
      this.log(`pod informer subscriber failed on ${change.pod.name}: ${apiMessage(err)}`);
    }
  }

  private notifyConnection(): void {
    for (const listener of this.connectionListeners) {
      try {
        listener();
      } catch (err) {
        this.log(`pod informer connection listener failed: ${apiMessage(err)}`);
      }
    }
  }

  private log(line: string): void {
    for (const sink of this.logSinks) {
      try {
        sink(line);
      } catch {
        // A diagnostics sink must not break the informer.
      }
    }
  }
}

// --- Pod summaries -------------------------------------------------------------------------------

type Timestamp = Date | string;

interface RawContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: Timestamp };
  terminated?: { reason?: string; message?: string; exitCode?: number; signal?: number; startedAt?: Timestamp };
}

interface RawContainerStatus {
  name?: string;
  ready?: boolean;
  started?: boolean;
  restartCount?: number;
  state?: RawContainerState;
  lastState?: RawContainerState;
}

interface RawCondition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: Timestamp;
}

/** A pod as a watch event carries it (JSON) or as client-node lists it (V1Pod): both fit. */
export interface RawPod {
  metadata?: {
    name?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    creationTimestamp?: Timestamp;
    deletionTimestamp?: Timestamp | null;
  };
  spec?: { containers?: Array<{ ports?: Array<{ name?: string; containerPort?: number }> }> };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    podIP?: string;
    conditions?: RawCondition[];
    initContainerStatuses?: RawContainerStatus[];
    containerStatuses?: RawContainerStatus[];
  };
}

/** The conditions the classifier and the health watch read; the others are dropped. */
const keptConditions = new Set(['Ready', 'PodScheduled', 'DisruptionTarget']);

const clip = (text: string | undefined): string | undefined =>
  text !== undefined && text.length > maxMessageLength ? `${text.slice(0, maxMessageLength)}…` : text;
const timestamp = (ts: Timestamp | null | undefined): string | undefined =>
  ts === null || ts === undefined ? undefined : ts instanceof Date ? ts.toISOString() : ts;
const millis = (ts: Timestamp | undefined): number => (ts === undefined ? NaN : new Date(ts).getTime());

function clipState(state: RawContainerState | undefined): ContainerStatusView['state'] {
  if (!state) return undefined;
  if (state.waiting) return { waiting: { reason: state.waiting.reason, message: clip(state.waiting.message) } };
  if (state.running) return { running: { startedAt: timestamp(state.running.startedAt) } };
  if (state.terminated) {
    const t = state.terminated;
    return { terminated: { reason: t.reason, message: clip(t.message), exitCode: t.exitCode, signal: t.signal } };
  }
  return undefined;
}

function clipContainer(c: RawContainerStatus): ContainerStatusView {
  const lastTerminated = clipState(c.lastState?.terminated ? { terminated: c.lastState.terminated } : undefined);
  return {
    name: c.name ?? '',
    ready: c.ready,
    restartCount: c.restartCount,
    state: clipState(c.state),
    lastState: lastTerminated,
  };
}

function refFromLabels(name: string, labels: Record<string, string> | undefined): WorkerPodRef | undefined {
  const workerId = labels?.[corralLabels.workerId];
  const pool = labels?.[corralLabels.pool];
  const spawnAttempt = Number(labels?.[corralLabels.spawnAttempt]);
  if (!workerId || !pool || !Number.isInteger(spawnAttempt) || spawnAttempt < 1) return undefined;
  // Labels someone edited so they no longer name this pod identify nothing.
  if (workerPodName(pool, workerId, spawnAttempt) !== name) return undefined;
  return { workerId, pool, spawnAttempt, name };
}

export const isReadyView = (view: PodView): boolean =>
  view.status?.phase === 'Running' &&
  view.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/**
 * The informer's summary of a pod. `previous` carries the sticky history; `inList` says it was
 * seen in a list, so a pod never seen before has an unknown past.
 */
export function summarizePod(pod: RawPod, previous: CachedPod | undefined, inList: boolean): CachedPod {
  const metadata = pod.metadata ?? {};
  const status = pod.status ?? {};
  const name = metadata.name ?? '';
  const conditions: PodConditionView[] = [];
  for (const c of status.conditions ?? []) {
    if (!c.type || !keptConditions.has(c.type)) continue;
    conditions.push({
      type: c.type,
      status: c.status ?? 'Unknown',
      reason: c.reason,
      message: clip(c.message),
      lastTransitionTime: timestamp(c.lastTransitionTime),
    });
  }
  const rawContainers = status.containerStatuses ?? [];
  const view: PodView = {
    metadata: {
      creationTimestamp: timestamp(metadata.creationTimestamp),
      deletionTimestamp: timestamp(metadata.deletionTimestamp),
    },
    status: {
      phase: status.phase,
      reason: status.reason,
      message: clip(status.message),
      podIP: status.podIP,
      conditions,
      initContainerStatuses: status.initContainerStatuses?.map(clipContainer),
      containerStatuses: rawContainers.map(clipContainer),
    },
  };
  const readyNow = isReadyView(view);
  let startedBeforeSeen = previous?.startedBeforeSeen ?? false;
  let readyLostBeforeSeen = previous?.readyLostBeforeSeen ?? false;
  if (!previous && inList) {
    startedBeforeSeen = rawContainers.some(
      (c) => c.started === true || (c.restartCount ?? 0) > 0 || !!c.state?.running || !!c.state?.terminated?.startedAt,
    );
    // The kubelet keeps a condition's lastTransitionTime while its status stays the same, so
    // Ready=False that changed after the container started was Ready=True in between.
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    const startedAt = rawContainers.map((c) => millis(c.state?.running?.startedAt)).filter(Number.isFinite);
    readyLostBeforeSeen =
      status.phase === 'Running' &&
      ready?.status === 'False' &&
      startedAt.length > 0 &&
      millis(ready.lastTransitionTime) > Math.max(...startedAt);
  }
  return {
    name,
    uid: metadata.uid ?? '',
    resourceVersion: metadata.resourceVersion ?? '',
    ref: previous?.ref ?? refFromLabels(name, metadata.labels),
    httpPort: pod.spec?.containers?.[0]?.ports?.find((p) => p.name === 'http')?.containerPort ?? previous?.httpPort,
    view,
    seenReady: (previous?.seenReady ?? false) || readyNow,
    startedBeforeSeen,
    readyLostBeforeSeen,
  };
}
