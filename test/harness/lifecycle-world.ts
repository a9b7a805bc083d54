// The world a workerLifecycle workflow sees, mocked for time-skipping tests of the workflow's own
// logic: an in-memory registry that keeps the real fence (same transition table, same epoch
// rule, FenceMiss failures shaped like the real activity's), scripted pods (each spawn attempt's
// readiness, each activation and the health monitor's verdict are chosen by the test), and a
// stand-in for the corral API: it claims, releases, reclaims and fails hand-overs in the registry,
// activates the worker at the new epoch itself, then signals the workflow (`registryChanged`),
// at once or later, coalesced or out of order, as the test says.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { CorralActivities } from '../../src/activities';
import type { FenceMissDetails, TransitionWorkerInput, WorkerView } from '../../src/activities/registry-activities';
import {
  type PodFailureReason,
  type WorkerFailureReason,
  registryFailureTypes,
  runtimeFailureTypes,
  bumpsEpoch,
  canTransition,
  type WorkerState,
  type HealthVerdictNotice,
  type ReleasePolicy,
  type WorkerRowChange,
  type WorkerPodRef,
} from '../../src/common';
import type { ReadinessOutcome } from '../../src/runtime/pod-runtime';

export type ReadinessScript = { status: 'ready' } | { status: 'failed'; reason: PodFailureReason } | { status: 'hang' };
export type ActivationScript = 'ok' | 'type_mismatch' | 'refused' | 'hang';

export interface AuditEntry {
  from: string | null;
  to: string;
  epochBefore: number | null;
  epochAfter: number;
  operation: string;
  failureReason: string | null;
}

export interface ActivityCall {
  name: string;
  input: unknown;
}

/** Options of the corral API stand-in: `notify: false` changes the row without telling the workflow yet. */
export interface ApiOptions {
  notify?: boolean;
  /**
   * The change's time. Hooks run inside activities and pass it, so no call reaches the test
   * server from an activity (one waiting there while the test skips time has stalled both).
   */
  at?: number;
}

/** Resolves when cancelled (heartbeating so the cancellation reaches the activity), never otherwise. */
async function hangUntilCancelled(): Promise<never> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), 50);
  try {
    await context.cancelled;
  } finally {
    clearInterval(beat);
  }
  throw new Error('unreachable');
}

export function rowChange(row: WorkerView): WorkerRowChange {
  return {
    epoch: row.epoch,
    state: row.state,
    tenant: row.tenant,
    claimRequestId: row.claimRequestId,
    stateSince: row.stateSince,
    failureReason: row.failureReason,
  };
}

export class LifecycleWorld {
  readonly rows = new Map<string, WorkerView>();
  readonly audit = new Map<string, AuditEntry[]>();
  /** The workflow's activity calls (the API stand-in's own work is not in here). */
  readonly calls: ActivityCall[] = [];
  /** Readiness per spawn attempt, by worker id; attempts beyond the script are ready. */
  readonly readiness = new Map<string, ReadinessScript[]>();
  /** Per worker, per spawn attempt: `hang` makes the create itself never return (until cancelled). */
  readonly spawns = new Map<string, ('ok' | 'hang')[]>();
  /**
   * How every activation of a spawn attempt answers, by worker id and attempt (index 0 is
   * attempt 1); beyond the script: ok. Per attempt, not per call, so retries see the same answer.
   */
  readonly activations = new Map<string, ActivationScript[]>();
  /** Calls that fail as in an outage (a retryable store error) until removed from the set. */
  readonly unavailable = new Set<keyof CorralActivities>();
  /** How many drain requests each worker answers "still draining" before it says drained (default 0). */
  readonly drainsBeforeDrained = new Map<string, number>();
  /** Pods that exist now (name → epoch written on its credentials). */
  readonly pods = new Map<string, { workerId: string; credentialVersion: number }>();
  /** As a real worker: the highest epoch each pod (by endpoint) was activated at; lower ones are refused. */
  readonly activatedEpochs = new Map<string, number>();
  /** Workers a drain was asked of (the registry's drain_requested). */
  readonly drainMarked = new Set<string>();
  /** Cold claims by request id: their tenant and whether the caller still waits. */
  readonly coldClaims = new Map<string, { tenant: string; waiting: boolean }>();
  /** Called (once) when the next transitionWorker of that worker arrives, before it applies. */
  readonly beforeTransition = new Map<string, () => void | Promise<void>>();
  /** Called (once) when the next call of an activity (`name:workerId`) arrives, before it runs. */
  readonly beforeCall = new Map<string, () => void | Promise<void>>();
  /**
   * The registry's clock (stateSince). Tests on the time-skipping server set it to the server's
   * time, which is the workflows' clock too.
   */
  now: () => number | Promise<number> = () => Date.now();
  /**
   * The registry's clock inside the world's activities, which never call the test server (one
   * waiting there while the test skips time has stalled both): real time. Only rows the workflow
   * writes itself carry it, and no test reads their stateSince.
   */
  private readonly activityNow = () => Date.now();
  /** How the API stand-in signals a workflow; set by the test environment. */
  notifier: ((row: WorkerView, change: WorkerRowChange) => Promise<void>) | null = null;
  /** How the runtime's health watcher stand-in signals a workflow; set by the test environment. */
  healthNotifier: ((row: WorkerView, notice: HealthVerdictNotice) => Promise<void>) | null = null;

  callsOf(name: keyof CorralActivities, workerId?: string): ActivityCall[] {
    return this.calls.filter(
      (c) => c.name === name && (workerId === undefined || JSON.stringify(c.input).includes(workerId)),
    );
  }

  trail(workerId: string): AuditEntry[] {
    return this.audit.get(workerId) ?? [];
  }

  row(workerId: string): WorkerView {
    const row = this.rows.get(workerId);
    if (!row) throw new Error(`no row ${workerId}`);
    return row;
  }

  /** `hook` runs once, when the workflow next calls activity `name` for `workerId`, before it applies. */
  before(name: keyof CorralActivities, workerId: string, hook: () => void | Promise<void>): void {
    this.beforeCall.set(`${name}:${workerId}`, hook);
  }

  /** The runtime's health watcher judges the worker's current pod: one verdict signal, as a replica sends it. */
  async failHealth(workerId: string, reason: WorkerFailureReason): Promise<void> {
    if (!this.healthNotifier) throw new Error('no health notifier: the test environment sets it');
    const row = this.row(workerId);
    if (!row.podName) throw new Error(`${workerId} has no pod`);
    await this.healthNotifier(row, { podName: row.podName, reason, detail: 'scripted' });
  }

  /** Someone other than the workflow (e.g. the janitor) moves the row, bumping the epoch. */
  moveBehindTheWorkflow(workerId: string, to: WorkerView['state']): void {
    const row = this.row(workerId);
    this.record(workerId, row.state, to, row.epoch, row.epoch + 1, 'reap', null);
    this.rows.set(workerId, { ...row, state: to, epoch: row.epoch + 1 });
  }

  // --- the corral API, played ---------------------------------------------------------------------

  /** A cold claim waits for the worker started for it (the API records it before starting the workflow). */
  openColdClaim(requestId: string, tenant: string): void {
    this.coldClaims.set(requestId, { tenant, waiting: true });
  }

  /** Warm claim: idle (or the tenant's hot_idle) → claimed at epoch + 1, the worker activated for the tenant. */
  async apiClaim(workerId: string, tenant: string, requestId: string, options: ApiOptions = {}) {
    const row = this.row(workerId);
    const claimable = row.state === 'idle' || (row.state === 'hot_idle' && row.tenant === tenant);
    if (!claimable || this.drainMarked.has(workerId)) {
      throw new Error(`the API would not claim ${workerId}: ${row.state} for ${row.tenant}`);
    }
    return this.apiMove(workerId, 'claimed', 'claim', { tenant, claimRequestId: requestId }, options);
  }

  /** Release per the pool's policy (draining whatever the policy once a drain was asked); epoch + 1. */
  async apiRelease(workerId: string, policy: ReleasePolicy, options: ApiOptions = {}) {
    const row = this.row(workerId);
    if (row.state !== 'claimed') throw new Error(`nothing to release: ${workerId} is ${row.state}`);
    const effective = this.drainMarked.has(workerId) ? 'retire' : policy;
    if (effective === 'hot_idle')
      return this.apiMove(workerId, 'hot_idle', 'release', { claimRequestId: null }, options);
    if (effective === 'recycle') {
      return this.apiMove(workerId, 'idle', 'release', { tenant: null, claimRequestId: null }, options);
    }
    return this.apiMove(workerId, 'draining', 'release', {}, options);
  }

  /** A claim nobody acknowledged is taken back: claimed → idle (draining once a drain was asked), epoch + 1. */
  async apiReclaim(workerId: string, options: ApiOptions = {}) {
    const row = this.row(workerId);
    if (row.state !== 'claimed') throw new Error(`nothing to reclaim: ${workerId} is ${row.state}`);
    const to = this.drainMarked.has(workerId) ? 'draining' : 'idle';
    return this.apiMove(workerId, to, 'release', { tenant: null, claimRequestId: null }, options);
  }

  /** The API's hand-over activation failed: claimed|idle → lost (activation_failed), epoch + 1. */
  async apiHandOverFailed(workerId: string, options: ApiOptions = {}) {
    const row = this.row(workerId);
    if (row.state !== 'claimed' && row.state !== 'idle') throw new Error(`${workerId} is ${row.state}`);
    return this.apiMove(workerId, 'lost', 'mark_lost', { failureReason: 'activation_failed' }, options);
  }

  /** Signals the workflow with `change`, or with the row as it is now (what a coalesced notification carries). */
  async notify(workerId: string, change: WorkerRowChange = rowChange(this.row(workerId))): Promise<void> {
    if (!this.notifier) throw new Error('no notifier: the test environment sets it');
    await this.notifier(this.row(workerId), change);
  }

  private async apiMove(
    workerId: string,
    to: WorkerState,
    operation: string,
    patch: Partial<WorkerView>,
    options: ApiOptions,
  ): Promise<WorkerRowChange> {
    const row = this.row(workerId);
    const stateSince = new Date(options.at ?? (await this.now())).toISOString();
    const next: WorkerView = { ...row, ...patch, state: to, epoch: row.epoch + 1, stateSince };
    this.rows.set(workerId, next);
    this.record(workerId, row.state, to, row.epoch, next.epoch, operation, next.failureReason);
    // The API activates the worker itself at the new epoch (not for a worker on its way out).
    if (next.endpoint && (to === 'claimed' || to === 'idle' || to === 'hot_idle')) {
      this.activatedEpochs.set(next.endpoint, Math.max(next.epoch, this.activatedEpochs.get(next.endpoint) ?? 0));
    }
    const change = rowChange(next);
    if (options.notify !== false) await this.notify(workerId, change);
    return change;
  }

  private record(
    workerId: string,
    from: string | null,
    to: string,
    epochBefore: number | null,
    epochAfter: number,
    operation: string,
    failureReason: string | null,
  ): void {
    const trail = this.audit.get(workerId) ?? [];
    trail.push({ from, to, epochBefore, epochAfter, operation, failureReason });
    this.audit.set(workerId, trail);
  }

  private async runHook(name: keyof CorralActivities, workerId: string): Promise<void> {
    if (this.unavailable.has(name)) {
      // What the real activities throw when Postgres or the runtime does not answer: retryable.
      throw ApplicationFailure.retryable(
        `${name}: the store is unavailable (scripted outage)`,
        registryFailureTypes.storeError,
      );
    }
    const key = `${name}:${workerId}`;
    const hook = this.beforeCall.get(key);
    if (hook) {
      this.beforeCall.delete(key);
      await hook();
    }
  }

  private fenceMiss(input: {
    workerId: string;
    expected: FenceMissDetails['expected'];
    to: WorkerState;
    row: WorkerView;
  }): ApplicationFailure {
    const details: FenceMissDetails = {
      workerId: input.workerId,
      outcome: input.row.epoch !== input.expected.epoch ? 'fence_miss_epoch' : 'fence_miss_state',
      expected: input.expected,
      to: input.to,
      actual: { epoch: input.row.epoch, state: input.row.state },
      // As the real activity: the row as read right after the miss.
      row: { ...input.row },
    };
    return ApplicationFailure.create({
      type: registryFailureTypes.fenceMiss,
      message: details.outcome,
      nonRetryable: true,
      details: [details],
    });
  }

  private rowMissing(): ApplicationFailure {
    return ApplicationFailure.create({ type: registryFailureTypes.rowMissing, message: 'no row', nonRetryable: true });
  }

  readonly activities: CorralActivities = {
    registerWorker: async (input) => {
      this.calls.push({ name: 'registerWorker', input });
      const existing = this.rows.get(input.workerId);
      if (existing) return existing;
      const row: WorkerView = {
        id: input.workerId,
        pool: input.pool,
        image: input.image,
        state: 'spawning',
        epoch: 1,
        tenant: null,
        podName: null,
        endpoint: null,
        spawnAttempt: 1,
        failureReason: null,
        credentialVersion: 0,
        credentialExpiresAt: null,
        claimRequestId: null,
        stateSince: new Date(this.activityNow()).toISOString(),
      };
      this.rows.set(input.workerId, row);
      this.record(input.workerId, null, 'spawning', null, 1, 'create', null);
      return row;
    },

    readWorker: async (workerId) => {
      this.calls.push({ name: 'readWorker', input: workerId });
      await this.runHook('readWorker', workerId);
      return this.rows.get(workerId) ?? null;
    },

    transitionWorker: async (input: TransitionWorkerInput) => {
      this.calls.push({ name: 'transitionWorker', input });
      const hook = this.beforeTransition.get(input.workerId);
      if (hook) {
        this.beforeTransition.delete(input.workerId);
        await hook();
      }
      await this.runHook('transitionWorker', input.workerId);
      const row = this.rows.get(input.workerId);
      if (!row) throw this.rowMissing();
      for (const from of input.expected.states) {
        if (!canTransition(from, input.to)) {
          throw ApplicationFailure.create({
            type: registryFailureTypes.transitionNotAllowed,
            message: `${from} → ${input.to}`,
            nonRetryable: true,
          });
        }
      }
      if (row.epoch !== input.expected.epoch || !input.expected.states.includes(row.state)) {
        throw this.fenceMiss({ workerId: input.workerId, expected: input.expected, to: input.to, row });
      }
      const epoch = bumpsEpoch(input.operation, input.origin, input.to) ? row.epoch + 1 : row.epoch;
      const next: WorkerView = { ...row, ...input.patch, state: input.to, epoch } as WorkerView;
      if (row.state !== input.to) next.stateSince = new Date(this.activityNow()).toISOString();
      this.rows.set(input.workerId, next);
      this.record(input.workerId, row.state, input.to, row.epoch, epoch, input.operation, next.failureReason);
      return next;
    },

    bindColdClaim: async (input) => {
      this.calls.push({ name: 'bindColdClaim', input });
      await this.runHook('bindColdClaim', input.workerId);
      const row = this.rows.get(input.workerId);
      if (!row) throw this.rowMissing();
      const expected = { epoch: input.epoch, states: ['activating' as const] };
      if (row.epoch !== input.epoch || row.state !== 'activating') {
        throw this.fenceMiss({ workerId: input.workerId, expected, to: 'claimed', row });
      }
      const stateSince = new Date(this.activityNow()).toISOString();
      const claim = this.coldClaims.get(input.requestId);
      let next: WorkerView;
      if (this.drainMarked.has(input.workerId)) {
        next = { ...row, state: 'draining', stateSince };
        this.record(input.workerId, row.state, next.state, row.epoch, next.epoch, 'drain', null);
      } else if (claim?.waiting) {
        claim.waiting = false;
        next = {
          ...row,
          state: 'claimed',
          epoch: row.epoch + 1,
          tenant: claim.tenant,
          claimRequestId: input.requestId,
          stateSince,
        };
        this.record(input.workerId, row.state, next.state, row.epoch, next.epoch, 'claim', null);
      } else {
        next = { ...row, state: 'idle', stateSince };
        this.record(input.workerId, row.state, next.state, row.epoch, next.epoch, 'ready', null);
      }
      this.rows.set(input.workerId, next);
      return { outcome: next.state === 'claimed' ? 'bound' : 'not_bound', worker: next };
    },

    markDrainRequested: async (input) => {
      this.calls.push({ name: 'markDrainRequested', input });
      await this.runHook('markDrainRequested', input.workerId);
      const row = this.rows.get(input.workerId);
      if (!row) throw this.rowMissing();
      this.drainMarked.add(input.workerId);
      return row;
    },

    spawnWorkerPod: async (input) => {
      this.calls.push({ name: 'spawnWorkerPod', input });
      if (this.spawns.get(input.spec.workerId)?.[input.spec.spawnAttempt - 1] === 'hang') await hangUntilCancelled();
      const name = `${input.spec.pool}-${input.spec.workerId}-${input.spec.spawnAttempt}`;
      const created = !this.pods.has(name);
      this.pods.set(name, { workerId: input.spec.workerId, credentialVersion: input.credentialVersion });
      const ref: WorkerPodRef = {
        workerId: input.spec.workerId,
        pool: input.spec.pool,
        spawnAttempt: input.spec.spawnAttempt,
        name,
      };
      return {
        ref,
        created,
        credentials: {
          version: input.credentialVersion,
          expiresAt: input.credentialExpiresAt,
        },
      };
    },

    awaitWorkerReady: async (input): Promise<ReadinessOutcome> => {
      this.calls.push({ name: 'awaitWorkerReady', input });
      await this.runHook('awaitWorkerReady', input.ref.workerId);
      const script = this.readiness.get(input.ref.workerId)?.[input.ref.spawnAttempt - 1] ?? { status: 'ready' };
      const diagnostics = { reconnects: 0, relists: 0 };
      if (script.status === 'hang') return hangUntilCancelled();
      if (script.status === 'failed')
        return { status: 'failed', reason: script.reason, detail: 'scripted', diagnostics };
      return { status: 'ready', endpoint: `http://${input.ref.name}.test:8080`, diagnostics };
    },

    deleteWorkerPod: async (ref) => {
      this.calls.push({ name: 'deleteWorkerPod', input: ref });
      this.pods.delete(ref.name);
    },

    rotateCredentials: async (input) => {
      this.calls.push({ name: 'rotateCredentials', input });
      await this.runHook('rotateCredentials', input.ref.workerId);
      const pod = this.pods.get(input.ref.name);
      if (pod) pod.credentialVersion = input.version;
      return { version: input.version, expiresAt: input.expiresAt };
    },

    activateWorker: async (input) => {
      this.calls.push({ name: 'activateWorker', input });
      await this.runHook('activateWorker', input.workerId);
      const attempt = Number(/-(\d+)\.test:/.exec(input.endpoint)?.[1] ?? '1');
      const script = this.activations.get(input.workerId)?.[attempt - 1] ?? 'ok';
      if (script === 'hang') return hangUntilCancelled();
      if (script === 'type_mismatch') {
        throw ApplicationFailure.create({
          type: runtimeFailureTypes.typeMismatch,
          message: 'not a corral worker',
          nonRetryable: true,
        });
      }
      const highest = this.activatedEpochs.get(input.endpoint) ?? 0;
      if (script === 'refused' || input.epoch < highest) {
        throw ApplicationFailure.create({
          type: runtimeFailureTypes.activationRefused,
          message: 'stale_epoch',
          nonRetryable: true,
          details: [{ error: 'stale_epoch', status: 409, highestEpoch: highest }],
        });
      }
      this.activatedEpochs.set(input.endpoint, input.epoch);
      return { credentialVersion: 1 };
    },

    requestWorkerDrain: async (input) => {
      this.calls.push({ name: 'requestWorkerDrain', input });
      const workerId = input.workerId ?? '';
      const left = this.drainsBeforeDrained.get(workerId) ?? 0;
      if (left > 0) {
        this.drainsBeforeDrained.set(workerId, left - 1);
        return { outcome: 'draining', acknowledged: true, drained: false };
      }
      return { outcome: 'drained', acknowledged: true, drained: true };
    },

    monitorWorkerHealth: async (input) => {
      // Only runs recorded before shared health schedule it; the world starts none of those.
      throw new Error(`legacy health monitor scheduled for ${input.workerId}`);
    },
  };
}
