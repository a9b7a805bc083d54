// The registry as workflows see it: every write is the store's compare-and-set, and every
// answer is plain JSON (dates as ISO strings; credentials only as version + expiry). A fence
// miss is a non-retryable `FenceMiss` ApplicationFailure carrying what the caller expected and
// what it found, so the workflow re-reads and converges instead of retrying a stale write.
import { ApplicationFailure } from '@temporalio/common';
import { registryFailureTypes, type LifecycleOperation, type TransitionOrigin, type WorkerState } from '../common';
import type { TransitionObserver } from '../metrics/transition-observer';
import { RegistryInputError, RegistryUnavailableError, TransitionNotAllowedError } from '../registry/errors';
import type { ClaimStore } from '../registry/claim-store';
import type {
  TransitionExpectation,
  WorkerLifecycleStore,
  WorkerPatch,
  WorkerSnapshot,
} from '../registry/lifecycle-store';

/** A worker row as a workflow may hold it: JSON-safe (dates as ISO strings), no secrets. */
export type WorkerView = Omit<WorkerSnapshot, 'credentialExpiresAt' | 'stateSince' | 'createdAt' | 'updatedAt'> & {
  credentialExpiresAt: string | null;
  stateSince: string;
};

/** The `details[0]` of a FenceMiss failure. */
export interface FenceMissDetails {
  workerId: string;
  outcome: 'fence_miss_epoch' | 'fence_miss_state';
  expected: TransitionExpectation;
  to: WorkerState;
  actual: { epoch: number; state: WorkerState };
  /**
   * The row as read right after the miss (absent if that read failed, and in failures recorded
   * before it was added): the workflow adopts it without another registry round trip.
   */
  row?: WorkerView;
}

export interface TransitionWorkerInput {
  workerId: string;
  expected: TransitionExpectation;
  to: WorkerState;
  /** As WorkerPatch, with the credential expiry as an ISO string (payloads are JSON). */
  patch?: Omit<WorkerPatch, 'credentialExpiresAt'> & { credentialExpiresAt?: string | null };
  operation: LifecycleOperation;
  origin: TransitionOrigin;
}

export function toWorkerView(worker: WorkerSnapshot): WorkerView {
  return {
    id: worker.id,
    pool: worker.pool,
    image: worker.image,
    state: worker.state,
    epoch: worker.epoch,
    tenant: worker.tenant,
    podName: worker.podName,
    endpoint: worker.endpoint,
    spawnAttempt: worker.spawnAttempt,
    failureReason: worker.failureReason,
    credentialVersion: worker.credentialVersion,
    credentialExpiresAt: worker.credentialExpiresAt?.toISOString() ?? null,
    claimRequestId: worker.claimRequestId,
    stateSince: worker.stateSince.toISOString(),
  };
}

/** Input and state-machine errors cannot heal by retrying: fail the activity for good, typed. */
function asActivityFailure(err: unknown): unknown {
  if (err instanceof RegistryInputError) {
    return ApplicationFailure.create({
      type: registryFailureTypes.invalidInput,
      message: err.message,
      nonRetryable: true,
      details: [{ field: err.field }],
    });
  }
  if (err instanceof TransitionNotAllowedError) {
    return ApplicationFailure.create({
      type: registryFailureTypes.transitionNotAllowed,
      message: err.message,
      nonRetryable: true,
      details: [{ from: err.from, to: err.to }],
    });
  }
  if (err instanceof RegistryUnavailableError) {
    return ApplicationFailure.create({
      type: registryFailureTypes.storeError,
      message: err.message,
      nonRetryable: false,
    });
  }
  return err;
}

/**
 * `observer` derives worker metrics (spawn failures, zombies, activation, drain, claim latency)
 * from each applied transition: workflows record no metrics, their histories are replayed.
 */
export function createRegistryActivities(
  store: WorkerLifecycleStore,
  claims: ClaimStore,
  options: { observer?: TransitionObserver; claimAckWindowMs: number },
) {
  const { observer } = options;
  return {
    /** Creates the worker's row (spawning, epoch 1); idempotent, so a retried attempt gets the same row. */
    async registerWorker(input: {
      workerId: string;
      pool: string;
      image: string;
      origin: TransitionOrigin;
      /** Ignored: sent by workflows recorded before the corral API counted warm-capacity misses. */
      coldClaim?: boolean;
    }): Promise<WorkerView> {
      try {
        const { worker } = await store.createWorker({
          id: input.workerId,
          pool: input.pool,
          image: input.image,
          origin: input.origin,
        });
        return toWorkerView(worker);
      } catch (err) {
        throw asActivityFailure(err);
      }
    },

    async readWorker(workerId: string): Promise<WorkerView | null> {
      try {
        const worker = await store.getWorker(workerId);
        return worker ? toWorkerView(worker) : null;
      } catch (err) {
        throw asActivityFailure(err);
      }
    },

    /**
     * Cold path: after the worker's first activation (row `activating` at `epoch`), hands it to the
     * claim it was spawned for if that claim still waits (claimed at epoch + 1 for the claim's
     * tenant, the grant recorded), else the row goes idle (or draining if a drain was asked).
     */
    async bindColdClaim(input: {
      workerId: string;
      pool: string;
      requestId: string;
      epoch: number;
    }): Promise<{ outcome: 'bound' | 'not_bound'; worker: WorkerView }> {
      const result = await claims
        .bindColdClaim({ ...input, ackMs: options.claimAckWindowMs })
        .catch((err: unknown) => Promise.reject(asActivityFailure(err)));
      if (result.outcome === 'bound' || result.outcome === 'not_bound') {
        return { outcome: result.outcome, worker: toWorkerView(result.worker) };
      }
      if (result.outcome === 'row_missing') {
        throw ApplicationFailure.create({
          type: registryFailureTypes.rowMissing,
          message: `worker ${input.workerId} has no registry row`,
          nonRetryable: true,
        });
      }
      const details: FenceMissDetails = {
        workerId: input.workerId,
        outcome: result.outcome,
        expected: { epoch: input.epoch, states: ['activating'] },
        to: 'claimed',
        actual: result.actual,
      };
      throw ApplicationFailure.create({
        type: registryFailureTypes.fenceMiss,
        message: `${result.outcome}: expected epoch ${input.epoch} in activating, found epoch ${result.actual.epoch} in ${result.actual.state}`,
        nonRetryable: true,
        details: [details],
      });
    },

    /** No claim takes this worker from now on, and its release goes to draining (no state or epoch change). */
    async markDrainRequested(input: { workerId: string }): Promise<WorkerView> {
      let worker;
      try {
        worker = await claims.markDrainRequested(input.workerId);
      } catch (err) {
        throw asActivityFailure(err);
      }
      if (!worker) {
        throw ApplicationFailure.create({
          type: registryFailureTypes.rowMissing,
          message: `worker ${input.workerId} has no registry row`,
          nonRetryable: true,
        });
      }
      return toWorkerView(worker);
    },

    async transitionWorker(input: TransitionWorkerInput): Promise<WorkerView> {
      const { credentialExpiresAt, ...rest } = input.patch ?? {};
      const patch: WorkerPatch =
        credentialExpiresAt === undefined
          ? rest
          : { ...rest, credentialExpiresAt: credentialExpiresAt === null ? null : new Date(credentialExpiresAt) };
      let result;
      try {
        result = await store.transition({ ...input, patch });
      } catch (err) {
        throw asActivityFailure(err);
      }
      switch (result.outcome) {
        case 'transitioned':
          // Not awaited: a duration read must not slow the transition (observe never rejects).
          void observer?.observe({
            from: input.expected.states.length === 1 ? input.expected.states[0]! : null,
            to: input.to,
            operation: input.operation,
            worker: result.worker,
          });
          return toWorkerView(result.worker);
        case 'fence_miss_epoch':
        case 'fence_miss_state': {
          // Read now, in this activity: the workflow's next step is to adopt the row, and one
          // local activity fewer is what decides how soon a verdict or a refresh lands.
          const current = await store.getWorker(input.workerId).catch(() => null);
          const details: FenceMissDetails = {
            workerId: input.workerId,
            outcome: result.outcome,
            expected: input.expected,
            to: input.to,
            actual: result.actual,
            ...(current ? { row: toWorkerView(current) } : {}),
          };
          throw ApplicationFailure.create({
            type: registryFailureTypes.fenceMiss,
            message: `${result.outcome}: expected epoch ${input.expected.epoch} in [${input.expected.states.join(', ')}], found epoch ${result.actual.epoch} in ${result.actual.state}`,
            nonRetryable: true,
            details: [details],
          });
        }
        case 'row_missing':
          throw ApplicationFailure.create({
            type: registryFailureTypes.rowMissing,
            message: `worker ${input.workerId} has no registry row`,
            nonRetryable: true,
          });
        case 'store_error':
          // Outcome unknown: the retry may find its own write applied (a fence miss at the new
          // epoch), which the workflow resolves by re-reading.
          throw ApplicationFailure.create({
            type: registryFailureTypes.storeError,
            message: result.message,
            nonRetryable: false,
          });
      }
    },
  };
}

export type RegistryActivities = ReturnType<typeof createRegistryActivities>;
