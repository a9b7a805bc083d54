// The workerLifecycle workflow's contract: its input, its messages and their answers. Exported
// as constants so the workflow, CorralClient, the CLI and the tests share one definition.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { WorkerFailureReason } from './failure-reasons';
import type { WorkerState } from './states';
import type { WorkerEnvValue, WorkerResources } from './worker-pod';
import type { WorkerProtocolName } from './worker-protocol';

/** What release does with a worker: keep it for the same tenant, return it to the pool, or retire it. */
export const releasePolicies = ['hot_idle', 'recycle', 'retire'] as const;
export type ReleasePolicy = (typeof releasePolicies)[number];

/**
 * One worker's share of its pool's spec. All durations in milliseconds. Validated (with floors)
 * by the pool spec before any workflow starts; the workflow trusts it.
 */
export interface WorkerLifecycleSettings {
  image: string;
  args?: string[];
  /** Literal values or Secret references (never a secret's value: decision 0021). */
  env?: Record<string, WorkerEnvValue>;
  port?: number;
  /** The pool's worker protocol (absent in runs started before it existed: corral.worker/v2 where corral has a key). */
  workerProtocol?: WorkerProtocolName;
  healthPath?: string;
  resources: WorkerResources;
  /** From asking the runtime for a pod to the pod being ready, per spawn attempt. */
  spawnDeadlineMs: number;
  /** From ready to the worker having accepted its identity. */
  activationDeadlineMs: number;
  /** An unclaimed worker is retired after this long (null: kept until its max lifetime). */
  idleTtlMs: number | null;
  /** A released worker stays reserved for its tenant this long, then is retired. */
  hotIdleTtlMs: number;
  credentialTtlMs: number;
  /** Credentials are refreshed this long before they expire. */
  credentialRefreshLeadMs: number;
  /** From the first spawn; then the worker drains, whatever its state. */
  maxLifetimeMs: number;
  maxSpawnAttempts: number;
  /** How often a serving worker's `/healthz` is probed; null for images without the hook. */
  healthIntervalMs: number | null;
  /** Consecutive failed probes before a serving worker is declared lost. */
  healthFailureThreshold: number;
  /** How long a claimed worker asked to drain keeps its tenant before it is drained anyway. */
  drainTimeoutMs: number;
  releasePolicy: ReleasePolicy;
}

/**
 * A claim a cold-path worker is spawned for. Once the worker took its first identity, the registry
 * binds it to that claim if the claim still waits (activating → claimed, epoch + 1, `bindColdClaim`),
 * else the worker joins the pool idle. (Runs recorded before registry claims bound it themselves.)
 */
export interface BoundClaim {
  tenant: string;
  requestId: string;
}

/** Deadlines as absolute epoch milliseconds (workflow time), so a continue-as-new keeps them exact. */
export interface LifecycleDeadlines {
  spawnBy: number | null;
  activateBy: number | null;
  idleUntil: number | null;
  hotIdleUntil: number | null;
  refreshAt: number | null;
  drainBy: number | null;
  retireAt: number;
}

/**
 * Everything the workflow knows, as plain JSON (no Map/Set, no Date, no class): it is what a
 * continue-as-new carries to the next run.
 */
export interface LifecycleState {
  state: WorkerState;
  epoch: number;
  spawnAttempt: number;
  podName: string | null;
  endpoint: string | null;
  tenant: string | null;
  claimRequestId: string | null;
  credential: { version: number; expiresAt: number } | null;
  failureReason: WorkerFailureReason | 'row_missing' | null;
  drainRequested: boolean;
  deadlines: LifecycleDeadlines;
  bornAt: number;
}

export interface WorkerLifecycleInput {
  workerId: string;
  pool: string;
  settings: WorkerLifecycleSettings;
  boundClaim?: BoundClaim | null;
  /**
   * Continue as new once history reaches this many events, as well as when the server suggests
   * it. Tests set it low to exercise run boundaries; production leaves it unset.
   */
  continueAsNewAfterEvents?: number;
  /** Set only by the workflow itself when it continues as new. */
  carried?: LifecycleState;
}

export interface WorkerLifecycleResult {
  workerId: string;
  state: 'retired' | 'lost';
  epoch: number;
  failureReason: string | null;
}

/** A tenant's fencing token and where to reach its worker. */
export interface WorkerLease {
  workerId: string;
  epoch: number;
  endpoint: string;
  tenant: string;
}

export interface ClaimRequest {
  tenant: string;
  /** Idempotency key: the same requestId gets the same lease. */
  requestId: string;
}

export interface ReleaseRequest {
  workerId: string;
  epoch: number;
}

export interface ReleaseResult {
  state: WorkerState;
  epoch: number;
}

export interface DrainRequest {
  /** Overrides the pool's drainTimeoutMs for a claimed worker. */
  timeoutMs?: number;
}

/** The `describe` answer: the state as an operator reads it (times as ISO strings). */
export interface WorkerDescription {
  workerId: string;
  pool: string;
  image: string;
  state: WorkerState;
  epoch: number;
  spawnAttempt: number;
  podName: string | null;
  endpoint: string | null;
  tenant: string | null;
  claimRequestId: string | null;
  credential: { version: number; expiresAt: string } | null;
  failureReason: string | null;
  drainRequested: boolean;
  deadlines: { [K in keyof LifecycleDeadlines]: string | null };
  bornAt: string;
}

/** Why an update was refused: the ApplicationFailure `type` a client sees (defined with the other failure types). */
export { lifecycleRejections, type LifecycleRejection } from './failure-types';

/**
 * Legacy: claims and releases as updates of the worker's workflow. Kept, unchanged, only for runs
 * recorded before registry claims (`corral-registry-claims`): since then the corral API decides
 * claims and releases in the registry and tells the workflow with `registryChangedSignal`, and a
 * new run registers no handler for these (the SDK rejects them).
 */
export const claimUpdate = defineUpdate<WorkerLease, [ClaimRequest]>('claim');
/** Legacy, as `claimUpdate`: only runs recorded before registry claims handle it. */
export const releaseUpdate = defineUpdate<ReleaseResult, [ReleaseRequest]>('release');
export const drainUpdate = defineUpdate<WorkerDescription, [DrainRequest]>('drain');
export const describeQuery = defineQuery<WorkerDescription>('describe');
/**
 * Legacy, as `claimUpdate`: only runs recorded before registry claims handle it (the registry
 * now reclaims an unacknowledged claim itself). The caller of a claim gave up (its timeout passed). A cold worker spawned for it joins the
 * pool as idle instead; a worker already claimed for it is released back to idle, since nobody
 * holds that lease.
 */
export const abandonClaimSignal = defineSignal<[{ requestId: string }]>('abandonClaim');

/**
 * The registry moved this worker on the claim path (claim, release, reclaim of an
 * unacknowledged claim, a failed hand-over): the corral API decided it in one SQL transaction and
 * tells the worker's workflow afterwards. Notifications are coalesced per worker (at most one
 * signal per worker per notification window, carrying the latest row), so several changes can
 * arrive as one. The workflow adopts a change whose epoch is above its own and ignores the rest:
 * the epoch is the registry's order of events, so a late or duplicated signal is harmless.
 */
export interface WorkerRowChange {
  epoch: number;
  state: WorkerState;
  tenant: string | null;
  claimRequestId: string | null;
  /** When the row entered `state` (ISO): the idle and hot-idle TTLs count from here. */
  stateSince: string;
  failureReason: string | null;
}
export const registryChangedSignal = defineSignal<[WorkerRowChange]>('registryChanged');

/**
 * A pod runtime's health watcher (one per corral worker: the pod informer, the process prober)
 * found this worker's pod dead or failing its health check. Sent once per verdict per pod by the
 * replicas that watch this worker; the workflow acts on one for its current pod while the worker
 * serves and ignores the rest, so duplicates and late arrivals are harmless.
 */
export interface HealthVerdictNotice {
  podName: string;
  reason: WorkerFailureReason;
  detail: string;
}
export const healthVerdictSignal = defineSignal<[HealthVerdictNotice]>('healthVerdict');

/** A run continues as new after this many updates, far below the server's 2,000 per run. */
export const maxUpdatesPerRun = 1_000;

export function workerLifecycleWorkflowId(pool: string, workerId: string): string {
  return `corral/${pool}/worker/${workerId}`;
}
