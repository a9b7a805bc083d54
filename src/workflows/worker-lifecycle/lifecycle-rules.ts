// The workerLifecycle workflow's decisions as pure functions of its state: which deadline comes
// next, whether a message may be accepted, how a registry row is adopted. No Temporal calls
// here, so the rules are unit-tested directly and the workflow file stays about sequencing.
import {
  isPodFailureReason,
  workerFailureReasons,
  type WorkerFailureReason,
  lifecycleRejections,
  type LifecycleRejection,
  type BoundClaim,
  type ClaimRequest,
  type DrainRequest,
  type LifecycleDeadlines,
  type LifecycleState,
  type ReleaseRequest,
  type WorkerDescription,
  type WorkerLifecycleInput,
  type WorkerLifecycleSettings,
  type WorkerRowChange,
} from '../../common';
import type { WorkerView } from '../../activities/registry-activities';

export type DeadlineKind = keyof LifecycleDeadlines;

/** A refused message: its typed reason and one sentence for the caller. */
export interface Rejection {
  type: LifecycleRejection;
  message: string;
}

export function initialLifecycleState(input: WorkerLifecycleInput, nowMs: number): LifecycleState {
  return {
    state: 'spawning',
    epoch: 1,
    spawnAttempt: 1,
    podName: null,
    endpoint: null,
    tenant: null,
    claimRequestId: null,
    credential: null,
    failureReason: null,
    drainRequested: false,
    deadlines: {
      spawnBy: null,
      activateBy: null,
      idleUntil: null,
      hotIdleUntil: null,
      refreshAt: null,
      drainBy: null,
      retireAt: nowMs + input.settings.maxLifetimeMs,
    },
    bornAt: nowMs,
  };
}

/**
 * The deadlines that matter in the current state; the workflow sleeps until the earliest.
 * (Spawn and activation deadlines are raced inside those steps, not here.)
 */
export function nextDeadline(s: LifecycleState): { kind: DeadlineKind; at: number } | null {
  const d = s.deadlines;
  const candidates: Array<[DeadlineKind, number | null]> = [['retireAt', d.retireAt]];
  switch (s.state) {
    case 'idle':
      candidates.push(['idleUntil', d.idleUntil], ['refreshAt', d.refreshAt]);
      break;
    case 'hot_idle':
      candidates.push(['hotIdleUntil', d.hotIdleUntil], ['refreshAt', d.refreshAt]);
      break;
    case 'claimed':
      candidates.push(['refreshAt', d.refreshAt], ['drainBy', s.drainRequested ? d.drainBy : null]);
      break;
    default:
      return null;
  }
  let next: { kind: DeadlineKind; at: number } | null = null;
  for (const [kind, at] of candidates) {
    if (at != null && (next === null || at < next.at)) next = { kind, at };
  }
  return next;
}

const isBlank = (v: unknown) => typeof v !== 'string' || v.trim().length === 0 || v.length > 128;

export function checkClaim(s: LifecycleState, req: ClaimRequest, bound: BoundClaim | null = null): Rejection | null {
  if (isBlank(req?.tenant))
    return { type: lifecycleRejections.invalidRequest, message: 'tenant must be 1-128 characters' };
  if (isBlank(req.requestId)) {
    return { type: lifecycleRejections.invalidRequest, message: 'requestId must be 1-128 characters' };
  }
  // The claim a cold worker was spawned for waits (in the handler) until the worker is ready.
  if (bound && bound.requestId === req.requestId && (s.state === 'spawning' || s.state === 'activating')) {
    if (bound.tenant === req.tenant) return null;
    return { type: lifecycleRejections.invalidRequest, message: 'this request id was made for another tenant' };
  }
  // A repeated request for the claim this worker already serves gets the same lease.
  if (s.state === 'claimed' && s.claimRequestId === req.requestId && s.tenant === req.tenant) return null;
  if (s.drainRequested || s.state === 'draining') {
    return { type: lifecycleRejections.draining, message: 'the worker is draining and takes no claims' };
  }
  if (s.state === 'idle') return null;
  if (s.state === 'hot_idle') {
    if (s.tenant === req.tenant) return null;
    return { type: lifecycleRejections.wrongState, message: 'the worker is hot_idle for another tenant' };
  }
  return { type: lifecycleRejections.wrongState, message: `the worker is ${s.state}, not idle` };
}

export function checkRelease(s: LifecycleState, workerId: string, req: ReleaseRequest): Rejection | null {
  if (req?.workerId !== workerId || !Number.isSafeInteger(req.epoch) || req.epoch < 1) {
    return {
      type: lifecycleRejections.invalidRequest,
      message: `a lease for worker ${workerId} with a positive epoch`,
    };
  }
  if (req.epoch !== s.epoch) {
    return {
      type: lifecycleRejections.staleLease,
      message: `lease epoch ${req.epoch} is stale; the worker is at epoch ${s.epoch}`,
    };
  }
  if (s.state !== 'claimed') return { type: lifecycleRejections.wrongState, message: `the worker is ${s.state}` };
  return null;
}

export function checkDrain(s: LifecycleState, req: DrainRequest): Rejection | null {
  if (req?.timeoutMs !== undefined && (!Number.isSafeInteger(req.timeoutMs) || req.timeoutMs < 0)) {
    return { type: lifecycleRejections.invalidRequest, message: 'timeoutMs must be a non-negative integer' };
  }
  if (s.state === 'retired' || s.state === 'lost') {
    return { type: lifecycleRejections.wrongState, message: `the worker is already ${s.state}` };
  }
  if (s.drainRequested || s.state === 'draining') {
    return { type: lifecycleRejections.draining, message: 'the worker is already draining' };
  }
  return null;
}

function asFailureReason(value: string | null): LifecycleState['failureReason'] {
  if (value === null) return null;
  if (value === 'row_missing' || isPodFailureReason(value)) return value;
  return (workerFailureReasons as readonly string[]).includes(value) ? (value as WorkerFailureReason) : null;
}

/**
 * Takes the registry's word for who holds the worker after a fence miss: its state, epoch and
 * holder replace the workflow's, so the next write carries the epoch that is really there.
 * (Deadlines untouched: what runs recorded before registry claims do; see adoptRegistryRow.)
 */
export function adoptRow(s: LifecycleState, row: WorkerView): void {
  s.state = row.state;
  s.epoch = row.epoch;
  s.tenant = row.tenant;
  s.claimRequestId = row.claimRequestId;
  s.failureReason = asFailureReason(row.failureReason) ?? s.failureReason;
  if (row.credentialVersion > 0 && row.credentialExpiresAt) {
    s.credential = { version: row.credentialVersion, expiresAt: Date.parse(row.credentialExpiresAt) };
  }
}

/** A registry row as the workflow adopts it: the corral API's notification, or a row it read itself. */
export type AdoptableRow = WorkerRowChange & Partial<Pick<WorkerView, 'credentialVersion' | 'credentialExpiresAt'>>;

/**
 * Adopts a row someone else wrote (the corral API's claim, release, reclaim or failed hand-over,
 * or whatever a fence miss found) and re-plans the deadlines of the adopted state from the row's
 * own `stateSince`, so a TTL counts from when the registry changed, not from when the workflow
 * heard of it:
 * - claimed: no idle or hot-idle TTL; a worker already asked to drain gets its drain timeout;
 * - idle: idle TTL from stateSince (none when the pool keeps idle workers);
 * - hot_idle: hot-idle TTL from stateSince;
 * - draining, retired, lost: the main loop finishes the drain or ends the life.
 */
export function adoptRegistryRow(
  s: LifecycleState,
  row: AdoptableRow,
  settings: Pick<WorkerLifecycleSettings, 'idleTtlMs' | 'hotIdleTtlMs' | 'drainTimeoutMs'>,
  nowMs: number,
): void {
  s.state = row.state;
  s.epoch = row.epoch;
  s.tenant = row.tenant;
  s.claimRequestId = row.claimRequestId;
  s.failureReason = asFailureReason(row.failureReason) ?? s.failureReason;
  if (row.credentialVersion !== undefined && row.credentialVersion > 0 && row.credentialExpiresAt) {
    s.credential = { version: row.credentialVersion, expiresAt: Date.parse(row.credentialExpiresAt) };
  }
  const parsed = Date.parse(row.stateSince);
  const since = Number.isFinite(parsed) ? parsed : nowMs;
  const d = s.deadlines;
  switch (row.state) {
    case 'claimed':
      d.idleUntil = null;
      d.hotIdleUntil = null;
      if (s.drainRequested && d.drainBy === null) d.drainBy = nowMs + settings.drainTimeoutMs;
      break;
    case 'idle':
      d.idleUntil = settings.idleTtlMs === null ? null : since + settings.idleTtlMs;
      d.hotIdleUntil = null;
      break;
    case 'hot_idle':
      d.hotIdleUntil = since + settings.hotIdleTtlMs;
      d.idleUntil = null;
      break;
    default:
      break;
  }
}

/** Whether a notified change is news: the registry's epoch orders its changes, so anything else is stale. */
export function isNewerChange(s: Pick<LifecycleState, 'epoch'>, change: Pick<WorkerRowChange, 'epoch'>): boolean {
  return change.epoch > s.epoch;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function describeWorker(s: LifecycleState, input: WorkerLifecycleInput): WorkerDescription {
  const d = s.deadlines;
  return {
    workerId: input.workerId,
    pool: input.pool,
    image: input.settings.image,
    state: s.state,
    epoch: s.epoch,
    spawnAttempt: s.spawnAttempt,
    podName: s.podName,
    endpoint: s.endpoint,
    tenant: s.tenant,
    claimRequestId: s.claimRequestId,
    credential: s.credential && {
      version: s.credential.version,
      expiresAt: new Date(s.credential.expiresAt).toISOString(),
    },
    failureReason: s.failureReason,
    drainRequested: s.drainRequested,
    deadlines: {
      spawnBy: iso(d.spawnBy),
      activateBy: iso(d.activateBy),
      idleUntil: iso(d.idleUntil),
      hotIdleUntil: iso(d.hotIdleUntil),
      refreshAt: iso(d.refreshAt),
      drainBy: iso(d.drainBy),
      retireAt: iso(d.retireAt),
    },
    bornAt: new Date(s.bornAt).toISOString(),
  };
}
