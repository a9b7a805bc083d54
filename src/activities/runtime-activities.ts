// The pod runtime and the worker protocol as activities. Credentials are minted here and go
// straight into the runtime (Secret / 0600 file): what returns to the workflow is only their
// version and expiry. A worker that will never be ready is a *result* (its typed reason), so the
// workflow decides between respawn and escalation; failures of the call itself are typed
// ApplicationFailures, non-retryable where a retry cannot help.
import crypto from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import {
  failoverBounds,
  runtimeFailureTypes,
  workerProtocolV1,
  workerProtocolV2,
  type WorkerProtocolName,
  type WorkerPodRef,
} from '../common';
import {
  RuntimeForbiddenError,
  RuntimeInputError,
  RuntimeQuotaExceededError,
  RuntimeUnavailableError,
  StaleRuntimeWriteError,
  WorkerNameConflictError,
  WorkerPodNotFoundError,
} from '../runtime/errors';
import type { PodRuntime, ReadinessOutcome } from '../runtime/pod-runtime';
import type { WorkerPodSpecInput } from '../runtime/worker-pod-spec';
import {
  type CallSigning,
  postActivation,
  postDrain,
  readWorkerAnswer,
  type WorkerDrainAnswer,
} from '../runtime/worker-protocol-client';
import { deriveWorkerKey } from '../runtime/worker-protocol-proof';

export interface IssuedCredentials {
  version: number;
  expiresAt: string;
}

function asActivityFailure(err: unknown): unknown {
  const fail = (type: string, nonRetryable: boolean, details?: unknown) =>
    ApplicationFailure.create({
      type,
      message: (err as Error).message,
      nonRetryable,
      details: details ? [details] : [],
    });
  if (err instanceof RuntimeInputError) return fail(runtimeFailureTypes.invalidInput, true, { field: err.field });
  // A missing permission needs an operator; retrying for hours would only hide it.
  if (err instanceof RuntimeForbiddenError) {
    return fail(runtimeFailureTypes.forbidden, true, {
      verb: err.verb,
      resource: err.resource,
      namespace: err.namespace,
    });
  }
  if (err instanceof WorkerNameConflictError)
    return fail(runtimeFailureTypes.nameConflict, true, { name: err.resourceName });
  if (err instanceof WorkerPodNotFoundError)
    return fail(runtimeFailureTypes.podMissing, true, { name: err.resourceName });
  // A full namespace frees up: retried, and recorded as `quota_exceeded` (capacity), never `config_error`.
  if (err instanceof RuntimeQuotaExceededError) {
    return fail(runtimeFailureTypes.quotaExceeded, false, { resource: err.resource, namespace: err.namespace });
  }
  // Nothing was written; the sender is behind, and sending the same again cannot change that.
  if (err instanceof StaleRuntimeWriteError) {
    return fail(runtimeFailureTypes.staleWrite, true, {
      name: err.resourceName,
      stored: err.stored,
      attempted: err.attempted,
    });
  }
  if (err instanceof RuntimeUnavailableError) return fail(runtimeFailureTypes.unavailable, false);
  return err;
}

function parseExpiry(value: string, field: string): Date {
  const expiresAt = new Date(value);
  if (Number.isNaN(expiresAt.getTime())) {
    throw ApplicationFailure.create({
      type: runtimeFailureTypes.invalidInput,
      message: `${field} is not a timestamp: ${JSON.stringify(value)}`,
      nonRetryable: true,
      details: [{ field }],
    });
  }
  return expiresAt;
}

function mintToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * The material a worker's credentials file carries: a fresh token, and (with a master key, unless
 * the pool opted into v1) the worker's corral.worker/v2 key, derived again on every write (never
 * stored; docs/worker-protocol.md). A v1 pool's workers get no key: a worker holding one speaks v2.
 */
function mintMaterial(
  masterKey: Buffer | undefined,
  workerId: string,
  protocol: WorkerProtocolName | undefined,
): { token: string; protocolKey?: string } {
  const signing = signingFor(masterKey, workerId, protocol);
  return signing ? { token: mintToken(), protocolKey: signing.workerKey.toString('hex') } : { token: mintToken() };
}

/**
 * Runs a runtime call while heartbeating: a server-side cancellation (a drain cutting a spawn
 * short) reaches an activity only through its heartbeats, and a replica that dies mid-call is
 * noticed within the heartbeat timeout. The call gets the activity's cancellation signal.
 */
async function heartbeating<T>(intervalMs: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(), intervalMs);
  try {
    context.heartbeat();
    return await call(context.cancellationSignal);
  } finally {
    clearInterval(beat);
  }
}

export interface RuntimeActivityOptions {
  heartbeatIntervalMs?: number;
  /**
   * corral's worker-protocol master key (CORRAL_WORKER_PROTOCOL_KEY). With it, every call to a
   * worker is signed with that worker's derived key (corral.worker/v2) and a worker answering v1
   * only is a `TypeMismatch`, unless the call says its pool opted into v1. Without it: v1.
   */
  workerProtocolKey?: Buffer;
}

/** The signing of a call to `workerId`, or none (v1: no master key, or the pool opted into v1). */
function signingFor(
  masterKey: Buffer | undefined,
  workerId: string | undefined,
  protocol: WorkerProtocolName | undefined,
): CallSigning | undefined {
  if (!masterKey || workerId === undefined || protocol === workerProtocolV1) return undefined;
  return { workerKey: deriveWorkerKey(masterKey, workerId) };
}

export function createRuntimeActivities(runtime: PodRuntime, options: RuntimeActivityOptions = {}) {
  // Well inside the workflows' heartbeat timeout (failover-bounds.ts): a dead replica is noticed in seconds.
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? failoverBounds.activityHeartbeatIntervalMs;
  return {
    /**
     * Mints the first credentials, then creates (or adopts) the worker's pod with them in place.
     * The expiry is the workflow's (one clock decides every deadline of a worker).
     */
    async spawnWorkerPod(input: {
      spec: WorkerPodSpecInput;
      credentialVersion: number;
      credentialExpiresAt: string;
      /** The pool's protocol: 'corral.worker/v1' only where the pool opted into it (insecure). */
      protocol?: WorkerProtocolName;
    }): Promise<{ ref: WorkerPodRef; created: boolean; credentials: IssuedCredentials }> {
      const expiresAt = parseExpiry(input.credentialExpiresAt, 'credentialExpiresAt');
      try {
        // The activity's cancellation reaches every request: a cancelled create leaves no pod behind.
        const { ref, created } = await heartbeating(heartbeatIntervalMs, (signal) =>
          runtime.create(
            input.spec,
            {
              epoch: input.spec.epoch,
              version: input.credentialVersion,
              expiresAt,
              ...mintMaterial(options.workerProtocolKey, input.spec.workerId, input.protocol),
            },
            { signal },
          ),
        );
        return { ref, created, credentials: { version: input.credentialVersion, expiresAt: expiresAt.toISOString() } };
      } catch (err) {
        throw asActivityFailure(err);
      }
    },

    /** Waits for readiness, heartbeating so a lost corral worker is noticed, and stopping on cancellation. */
    async awaitWorkerReady(input: { ref: WorkerPodRef; timeoutMs: number }): Promise<ReadinessOutcome> {
      const context = Context.current();
      const beat = setInterval(() => context.heartbeat(), heartbeatIntervalMs);
      try {
        context.heartbeat();
        return await runtime.awaitReady(input.ref, { timeoutMs: input.timeoutMs, signal: context.cancellationSignal });
      } catch (err) {
        throw asActivityFailure(err);
      } finally {
        clearInterval(beat);
      }
    },

    async deleteWorkerPod(ref: WorkerPodRef): Promise<void> {
      try {
        await heartbeating(heartbeatIntervalMs, (signal) => runtime.delete(ref, { signal }));
      } catch (err) {
        throw asActivityFailure(err);
      }
    },

    /**
     * A credential refresh: new material at the given epoch, written where the worker reads it.
     * The expiry comes from the caller (the workflow already recorded it in the registry). Never
     * backwards: if the runtime holds a higher epoch or version, nothing is written and the answer
     * is a non-retryable `RuntimeStaleWrite` (an attempt that lost the race to a newer one).
     */
    async rotateCredentials(input: {
      ref: WorkerPodRef;
      epoch: number;
      version: number;
      expiresAt: string;
      /** As spawnWorkerPod's. */
      protocol?: WorkerProtocolName;
    }): Promise<IssuedCredentials> {
      const expiresAt = parseExpiry(input.expiresAt, 'expiresAt');
      try {
        await runtime.writeCredentials(
          input.ref,
          {
            epoch: input.epoch,
            version: input.version,
            expiresAt,
            ...mintMaterial(options.workerProtocolKey, input.ref.workerId, input.protocol),
          },
          { signal: Context.current().cancellationSignal },
        );
        return { version: input.version, expiresAt: expiresAt.toISOString() };
      } catch (err) {
        throw asActivityFailure(err);
      }
    },

    /**
     * Hands the worker its identity at an epoch and its tenant (null while unclaimed). Checks
     * the protocol first, so an impostor on the endpoint is `TypeMismatch`, never activated.
     */
    async activateWorker(input: {
      endpoint: string;
      workerId: string;
      epoch: number;
      tenant: string | null;
      timeoutMs?: number;
      /** The pool's protocol: 'corral.worker/v1' only where the pool opted into it (insecure). */
      protocol?: WorkerProtocolName;
    }): Promise<{ credentialVersion: number }> {
      const timeoutMs = input.timeoutMs ?? 10_000;
      const signal = AbortSignal.any([Context.current().cancellationSignal, AbortSignal.timeout(timeoutMs)]);
      const signing = signingFor(options.workerProtocolKey, input.workerId, input.protocol);
      const expected = signing ? workerProtocolV2 : workerProtocolV1;
      const mismatch = (detail: string) =>
        ApplicationFailure.create({
          type: runtimeFailureTypes.typeMismatch,
          message: `the endpoint does not answer as corral worker ${input.workerId} speaking ${expected} (${detail})`,
          nonRetryable: true,
        });
      const health = await fetch(`${input.endpoint}/healthz`, { signal, redirect: 'manual' });
      // Read bounded: a worker's answer never reaches history or logs whole.
      const healthBody = await readWorkerAnswer(health);
      // v2's health names no worker: the signed activation's answer proves who answers.
      const identified = signing !== undefined || healthBody.workerId === input.workerId;
      if (!health.ok || healthBody.protocol !== expected || !identified) throw mismatch(`HTTP ${health.status}`);
      const answer = await postActivation(
        input.endpoint,
        { workerId: input.workerId, epoch: input.epoch, tenant: input.tenant },
        signal,
        signing,
      );
      if (answer.outcome === 'accepted') return { credentialVersion: answer.credentialVersion };
      if (answer.outcome === 'failed' && answer.unproven) throw mismatch(answer.detail);
      if (answer.outcome === 'refused') {
        throw ApplicationFailure.create({
          type: runtimeFailureTypes.activationRefused,
          message: `the worker refused activation at epoch ${input.epoch}: ${answer.error ?? `HTTP ${answer.status}`}`,
          nonRetryable: true,
          details: [{ error: answer.error, status: answer.status, highestEpoch: answer.highestEpoch }],
        });
      }
      // Unreachable or 5xx (e.g. credentials not mounted yet): worth another attempt.
      throw ApplicationFailure.create({
        type: runtimeFailureTypes.activationFailed,
        message: answer.detail,
        nonRetryable: false,
      });
    },

    /**
     * Asks the worker to stop taking work before its pod is deleted (POST /drain with its id and
     * epoch, so a neighbour behind a reused address or a stale actor cannot be drained). Answers
     * whether the worker finished its work; the workflow asks again until it has or the drain
     * timeout ends. Never retried: every failure is an answer (a worker that cannot be reached has
     * nothing left to finish, and is deleted anyway).
     */
    async requestWorkerDrain(input: {
      endpoint: string;
      workerId?: string;
      epoch?: number;
      timeoutMs?: number;
      /** As activateWorker's. */
      protocol?: WorkerProtocolName;
    }): Promise<WorkerDrainAnswer> {
      const signal = AbortSignal.any([
        Context.current().cancellationSignal,
        AbortSignal.timeout(input.timeoutMs ?? 5_000),
      ]);
      const signing = signingFor(options.workerProtocolKey, input.workerId, input.protocol);
      return postDrain(input.endpoint, { workerId: input.workerId, epoch: input.epoch }, signal, signing);
    },
  };
}

export type RuntimeActivities = ReturnType<typeof createRuntimeActivities>;
