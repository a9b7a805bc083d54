// The PodRuntime contract. Two implementations keep the same semantics: `kubernetes` (a Pod and
// a Secret per worker) and `process` (a child process and a 0600 credentials file per worker).
import type { PodFailureReason, RuntimeKind, WorkerFailureReason, WorkerPodRef } from '../common';
import type { WorkerCredentials, WorkerPodSpecInput } from './worker-pod-spec';

export interface CreateWorkerResult {
  ref: WorkerPodRef;
  /** False when a pod (process) with this worker's name already existed and was adopted. */
  created: boolean;
}

/**
 * A worker reason, not only a pod reason: a wait that ends at its deadline with the worker running
 * but failing its readiness probe (health hook) is `health_check_failed`.
 */
export type ReadinessOutcome =
  | { status: 'ready'; endpoint: string; diagnostics: ReadinessDiagnostics }
  | { status: 'failed'; reason: WorkerFailureReason; detail: string; diagnostics: ReadinessDiagnostics };

/**
 * Every runtime call that reaches out (API requests, signals, files) takes the caller's signal
 * (an activity's cancellation): each request gets it, combined with its own timeout. An aborted
 * call rejects with the signal's reason; an aborted create removes what it may already have made.
 */
export interface RuntimeCallOptions {
  signal?: AbortSignal;
}

/** How bumpy the wait was; for logs and tests, never for decisions. */
export interface ReadinessDiagnostics {
  /** Watch connections re-established after an error or a server-side close. */
  reconnects: number;
  /** Full re-lists after the server said the resume point was gone (410). */
  relists: number;
}

export interface AwaitReadyOptions {
  /**
   * Give up after this long (the spawn deadline), with the reason the last status gives: running
   * but not passing its readiness probe → `health_check_failed`; unschedulable →
   * `pod_not_scheduled`; anything else → `spawn_timeout`.
   */
  timeoutMs: number;
  /** Aborting stops the wait promptly (activity cancellation); the promise then rejects. */
  signal?: AbortSignal;
  /**
   * Called once the worker has been seen not ready yet and the runtime is watching for the next
   * change (kubernetes: the watch connection is open). Lets a caller act on "now waiting".
   */
  onWaiting?: () => void;
}

export interface ManagedWorker {
  name: string;
  workerId: string;
  pool: string;
  spawnAttempt: number;
  /** The epoch the pod was last told about (annotation / record), if known. */
  epoch: number | undefined;
  /** The pod (process) exists. */
  hasPod: boolean;
  /** Its credentials Secret (file) exists; a secret without a pod is stranded. */
  hasSecret: boolean;
  /** What the pod is doing now; `undefined` when there is no pod. */
  verdict: { status: 'ready' } | { status: 'pending' } | { status: 'failed'; reason: PodFailureReason } | undefined;
}

/**
 * A serving worker's pod (process) died or stopped answering its health check: what the runtime's
 * one shared watcher saw. The workflow that owns `ref.workerId` decides what it means.
 */
export interface PodHealthVerdict {
  ref: WorkerPodRef;
  reason: WorkerFailureReason;
  detail: string;
}

/**
 * What one steady-state health probe found (a metric label: typed values only). `ok`: answered
 * 2xx as itself. `unreachable`: no answer (refused, reset, timed out). `http_error`: a non-2xx
 * status. `wrong_identity`: answered, but not as this worker.
 */
export const healthProbeResults = ['ok', 'unreachable', 'http_error', 'wrong_identity'] as const;
export type HealthProbeResult = (typeof healthProbeResults)[number];

export interface PodHealthWatchOptions {
  /** Called once per verdict per pod (a pod's verdict is not repeated while it exists). */
  onVerdict: (verdict: PodHealthVerdict) => void;
  /** Only pods of workers this returns true for are probed and reported (the replica's shard). */
  watches?: (workerId: string) => boolean;
  /** Every steady-state probe corral itself made (process runtime; on kubernetes the kubelet probes). */
  onProbe?: (result: HealthProbeResult, image: string) => void;
  /** Diagnostics (watch errors, re-lists); never carries credentials. */
  log?: (line: string) => void;
}

export interface PodHealthWatch {
  close(): Promise<void>;
}

export interface PodRuntime {
  readonly kind: RuntimeKind;
  /**
   * Starts one spawn attempt of a worker, with its credentials in place before it starts.
   * Idempotent: if this worker's pod already exists, it is adopted (`created: false`).
   */
  create(
    spec: WorkerPodSpecInput,
    credentials: WorkerCredentials,
    options?: RuntimeCallOptions,
  ): Promise<CreateWorkerResult>;
  /**
   * Resolves when the worker is ready, or with the typed reason it never will be. Rejects only
   * on a call failure (forbidden, aborted); worker failures are outcomes, not exceptions.
   */
  awaitReady(ref: WorkerPodRef, options: AwaitReadyOptions): Promise<ReadinessOutcome>;
  /**
   * Replaces the worker's credentials (a refresh); the worker re-reads them when re-activated.
   * Never backwards: credentials older than the stored ones (a lower epoch or version) are refused
   * with StaleRuntimeWriteError and nothing changes; the same epoch and version again is rewritten.
   */
  writeCredentials(ref: WorkerPodRef, credentials: WorkerCredentials, options?: RuntimeCallOptions): Promise<void>;
  /** Removes the pod and its credentials. Idempotent: deleting what is gone succeeds. */
  delete(ref: WorkerPodRef, options?: RuntimeCallOptions): Promise<void>;
  /** Every worker this runtime manages (in its namespace / state directory), optionally for one pool. */
  listManaged(filter?: { pool?: string }, options?: RuntimeCallOptions): Promise<ManagedWorker[]>;
  /**
   * Starts this runtime's one health watcher (kubernetes: the namespace's pod informer; process:
   * one prober loop). Pods that have been ready and then die, are deleted by someone else, or fail
   * their health check become verdicts. One per corral worker, whatever the fleet size.
   */
  watchHealth(options: PodHealthWatchOptions): PodHealthWatch;
  /** Releases connections and timers; does not touch workers. */
  close(): Promise<void>;
}
