// The world a workerLifecycle workflow sees, mocked for time-skipping tests of the workflow's own
// logic: an in-memory registry that keeps the real fence (same transition table, same epoch
// rule, FenceMiss failures shaped like the real activity's), and scripted pods: each spawn
// attempt's readiness, each activation and the health monitor's verdict are chosen by the test.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { CorralActivities } from '../../src/activities';
import type { HealthVerdict } from '../../src/activities/health-activities';
import type { FenceMissDetails, TransitionWorkerInput, WorkerView } from '../../src/activities/registry-activities';
import type { PodFailureReason, WorkerFailureReason } from '../../src/lifecycle/failure-reasons';
import { bumpsEpoch } from '../../src/lifecycle/operations';
import { canTransition } from '../../src/lifecycle/states';
import type { ReadinessOutcome } from '../../src/runtime/pod-runtime';
import type { WorkerPodRef } from '../../src/runtime/worker-pod-spec';

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

export class LifecycleWorld {
  readonly rows = new Map<string, WorkerView>();
  readonly audit = new Map<string, AuditEntry[]>();
  readonly calls: ActivityCall[] = [];
  /** Readiness per spawn attempt, by worker id; attempts beyond the script are ready. */
  readonly readiness = new Map<string, ReadinessScript[]>();
  /**
   * How every activation of a spawn attempt answers, by worker id and attempt (index 0 is
   * attempt 1); beyond the script: ok. Per attempt, not per call, so retries see the same answer.
   */
  readonly activations = new Map<string, ActivationScript[]>();
  /** Pods that exist now (name → epoch written on its credentials). */
  readonly pods = new Map<string, { workerId: string; credentialVersion: number }>();
  /** Called (once) when the next transitionWorker of that worker arrives, before it applies. */
  readonly beforeTransition = new Map<string, () => void>();
  private readonly unhealthy = new Map<string, HealthVerdict>();
  private readonly monitorWaiters = new Map<string, () => void>();

  callsOf(name: keyof CorralActivities, workerId?: string): ActivityCall[] {
    return this.calls.filter(
      (c) => c.name === name && (workerId === undefined || JSON.stringify(c.input).includes(workerId)),
    );
  }

  trail(workerId: string): AuditEntry[] {
    return this.audit.get(workerId) ?? [];
  }

  /** The health monitor of `workerId` returns this verdict (now, or as soon as it runs). */
  failHealth(workerId: string, reason: WorkerFailureReason): void {
    this.unhealthy.set(workerId, { status: 'unhealthy', reason, detail: 'scripted', consecutiveFailures: 3 });
    this.monitorWaiters.get(workerId)?.();
  }

  /** Someone other than the workflow (e.g. the janitor) moves the row, bumping the epoch. */
  moveBehindTheWorkflow(workerId: string, to: WorkerView['state']): void {
    const row = this.rows.get(workerId);
    if (!row) throw new Error(`no row ${workerId}`);
    this.record(workerId, row.state, to, row.epoch, row.epoch + 1, 'reap', null);
    this.rows.set(workerId, { ...row, state: to, epoch: row.epoch + 1 });
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
        stateSince: new Date().toISOString(),
      };
      this.rows.set(input.workerId, row);
      this.record(input.workerId, null, 'spawning', null, 1, 'create', null);
      return row;
    },

    readWorker: async (workerId) => {
      this.calls.push({ name: 'readWorker', input: workerId });
      return this.rows.get(workerId) ?? null;
    },

    transitionWorker: async (input: TransitionWorkerInput) => {
      this.calls.push({ name: 'transitionWorker', input });
      const hook = this.beforeTransition.get(input.workerId);
      if (hook) {
        this.beforeTransition.delete(input.workerId);
        hook();
      }
      const row = this.rows.get(input.workerId);
      if (!row) throw ApplicationFailure.create({ type: 'WorkerRowMissing', message: 'no row', nonRetryable: true });
      for (const from of input.expected.states) {
        if (!canTransition(from, input.to)) {
          throw ApplicationFailure.create({
            type: 'TransitionNotAllowedError',
            message: `${from} → ${input.to}`,
            nonRetryable: true,
          });
        }
      }
      if (row.epoch !== input.expected.epoch || !input.expected.states.includes(row.state)) {
        const details: FenceMissDetails = {
          workerId: input.workerId,
          outcome: row.epoch !== input.expected.epoch ? 'fence_miss_epoch' : 'fence_miss_state',
          expected: input.expected,
          to: input.to,
          actual: { epoch: row.epoch, state: row.state },
        };
        throw ApplicationFailure.create({
          type: 'FenceMiss',
          message: details.outcome,
          nonRetryable: true,
          details: [details],
        });
      }
      const epoch = bumpsEpoch(input.operation, input.origin, input.to) ? row.epoch + 1 : row.epoch;
      const next: WorkerView = { ...row, ...input.patch, state: input.to, epoch } as WorkerView;
      if (row.state !== input.to) next.stateSince = new Date().toISOString();
      this.rows.set(input.workerId, next);
      this.record(input.workerId, row.state, input.to, row.epoch, epoch, input.operation, next.failureReason);
      return next;
    },

    spawnWorkerPod: async (input) => {
      this.calls.push({ name: 'spawnWorkerPod', input });
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
      const pod = this.pods.get(input.ref.name);
      if (pod) pod.credentialVersion = input.version;
      return { version: input.version, expiresAt: input.expiresAt };
    },

    activateWorker: async (input) => {
      this.calls.push({ name: 'activateWorker', input });
      const attempt = Number(/-(\d+)\.test:/.exec(input.endpoint)?.[1] ?? '1');
      const script = this.activations.get(input.workerId)?.[attempt - 1] ?? 'ok';
      if (script === 'hang') return hangUntilCancelled();
      if (script === 'type_mismatch') {
        throw ApplicationFailure.create({ type: 'TypeMismatch', message: 'not a corral worker', nonRetryable: true });
      }
      if (script === 'refused') {
        throw ApplicationFailure.create({ type: 'ActivationRefused', message: 'stale_epoch', nonRetryable: true });
      }
      return { credentialVersion: 1 };
    },

    requestWorkerDrain: async (input) => {
      this.calls.push({ name: 'requestWorkerDrain', input });
      return { acknowledged: true };
    },

    monitorWorkerHealth: async (input) => {
      this.calls.push({ name: 'monitorWorkerHealth', input });
      const context = Context.current();
      const verdict = this.unhealthy.get(input.workerId);
      if (verdict) {
        this.unhealthy.delete(input.workerId);
        return verdict;
      }
      // Waits for a scripted verdict or cancellation. While it runs the test server does not
      // skip time, so tests that need time to pass run with health probes off.
      const beat = setInterval(() => context.heartbeat(), 50);
      try {
        return await new Promise<HealthVerdict>((resolve, rejectMonitor) => {
          this.monitorWaiters.set(input.workerId, () => {
            const scripted = this.unhealthy.get(input.workerId);
            this.unhealthy.delete(input.workerId);
            if (scripted) resolve(scripted);
          });
          context.cancelled.catch((err: unknown) => rejectMonitor(err));
        });
      } finally {
        clearInterval(beat);
        this.monitorWaiters.delete(input.workerId);
      }
    },
  };
}
