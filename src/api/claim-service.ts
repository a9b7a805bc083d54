// Claims, releases and lease checks as the corral API serves them (docs/architecture.md, "The life of a claim";
// docs/decisions/0012-registry-claims-and-the-corral-api.md). The registry decides: a warm claim
// is one transaction (corral_claim). The API then hands the worker its lease (POST /activate at
// the new epoch: the worker knows its tenant before the caller does), answers, and only then
// tells the worker's workflow (coalesced). No workflow task is on a warm claim's path, so a slow
// or wedged worker workflow cannot hold claims up.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { CorralError } from '../client/errors';
import { newWorkerId, startWorkerLifecycle } from '../client/worker-workflows';
import { parseDuration } from '../config/duration';
import { lifecycleSettingsFor, workerProtocolOf } from '../config/pool-spec';
import type { PoolMetrics } from '../metrics/pool-metrics';
import type { ClaimStore, GrantedLease } from '../registry/claim-store';
import type { WorkerLifecycleStore, WorkerSnapshot } from '../registry/lifecycle-store';
import type { PoolStore } from '../registry/pool-store';
import { workerProtocolV1, workerProtocolV2, type WorkerProtocolName } from '../common';
import { postActivation } from '../runtime/worker-protocol-client';
import { deriveWorkerKey } from '../runtime/worker-protocol-proof';
import type { ClaimBody, ClaimResponse, LeaseCheckResponse, ReleaseResponse } from './api-schemas';
import { defaultClaimTimeoutMs } from './api-schemas';
import type { HolderView, WorkflowNotifier } from './workflow-notifier';
import { CapacityWakeups } from './capacity-wakeups';
import { WorkerEvictions } from './worker-evictions';

/** A hand-over the worker does not answer within this is a failed hand-over: the claim tries another worker. */
export const defaultHandOverTimeoutMs = 2_000;
/** Workers a claim tries when hand-overs fail before it answers `worker_unavailable`. */
const maxHandOverAttempts = 3;
/** How often a caller waiting for a cold worker reads its claim. */
const coldPollMs = 100;
/**
 * How often a waiting claim asks the registry again (decision 0034): capacity freed by another
 * replica, a refill or a retirement is found within this; a release in this process wakes it at once.
 * Well inside the registry's 5 s liveness window for waiting claims.
 */
const waitPollMs = 250;
/** A pending claim stays its caller's this long past the caller's timeout before a repeat takes it over. */
const pendingGraceMs = 5_000;

export interface ClaimServiceOptions {
  claims: ClaimStore;
  workers: WorkerLifecycleStore;
  pools: PoolStore;
  temporal: Client;
  taskQueue: string;
  notifier: WorkflowNotifier;
  /** A grant whose answer did not reach its caller is reclaimed this long after it was made. */
  ackWindowMs: number;
  handOverTimeoutMs?: number;
  /**
   * corral's worker-protocol master key: hand-overs are signed (corral.worker/v2) with the worker's
   * derived key, except in pools whose spec opted into v1 (`workerProtocol`). Without it: v1, unsigned.
   */
  workerProtocolKey?: Buffer;
  metrics?: PoolMetrics;
  log?: (line: string) => void;
}

type HandOver = 'accepted' | 'moved_on' | 'failed';

export class ClaimService {
  private readonly acks: { pool: string; requestId: string }[] = [];
  private ackFlush: Promise<void> | null = null;
  private readonly wakeups = new CapacityWakeups();
  private readonly evictions: WorkerEvictions;

  constructor(private readonly o: ClaimServiceOptions) {
    this.evictions = new WorkerEvictions(o.temporal, o.log);
  }

  /**
   * A worker for `tenant`, exactly once per `requestId`. `acknowledge` must be called once the
   * answer has reached the caller; until then the grant is reclaimed after the ack window.
   */
  async claim(pool: string, body: ClaimBody, aborted: AbortSignal): Promise<ClaimResponse> {
    const started = performance.now();
    const timeoutMs = claimTimeoutMs(body.timeout);
    const deadline = Date.now() + timeoutMs;
    const { tenant, requestId } = body;
    // Set once the claim first waits in the pool's queue: the answer says how long it waited.
    let waitStarted: number | null = null;
    const waited = (served: boolean) => {
      if (waitStarted === null) return 0;
      const ms = Math.round(performance.now() - waitStarted);
      this.o.metrics?.observeWait(pool, served ? 'served' : 'timed_out', ms / 1000);
      return ms;
    };
    for (let handOvers = 0; ; ) {
      const decision = await this.o.claims.claim({
        pool,
        requestId,
        tenant,
        newWorkerId: newWorkerId(),
        pendingMs: timeoutMs + pendingGraceMs,
        ackMs: this.o.ackWindowMs,
        origin: 'api',
      });
      switch (decision.outcome) {
        case 'pool_not_found':
          throw new CorralError('pool_not_found', `no pool named ${pool}`);
        case 'pool_draining':
          throw new CorralError('pool_draining', `pool ${pool} is draining and takes no claims`);
        case 'tenant_mismatch':
          throw new CorralError('invalid_request', `requestId ${requestId} was used for another tenant`, 'requestId');
        case 'lease_ended':
          throw leaseEnded(pool, tenant, requestId, decision);
        case 'at_capacity':
          this.o.metrics?.countWarmCapacityMiss(pool, 'at_capacity');
          throw new CorralError(
            'at_capacity',
            `pool ${pool} has no warm worker and is at maxWorkers (${decision.maxWorkers})`,
          );
        case 'quota_exceeded':
          this.o.metrics?.countQuotaRefusal(pool);
          throw new CorralError(
            'quota_exceeded',
            `tenant ${tenant} holds ${decision.held} worker(s) of pool ${pool}, its quota is ${decision.quota}`,
            undefined,
            { held: decision.held, quota: decision.quota },
          );
        case 'waiting': {
          if (waitStarted === null) {
            waitStarted = performance.now();
            this.o.metrics?.countWarmCapacityMiss(pool, 'at_capacity');
          }
          if (decision.eviction) {
            if (decision.eviction.fresh) this.o.metrics?.countEviction(pool);
            this.evictions.request(pool, decision.eviction.workerId);
          }
          const left = deadline - Date.now();
          if (left <= 0 || aborted.aborted) {
            // Its caller is gone or out of time: it leaves the queue (a caller that merely lost its
            // connection may come back with the same requestId before its timeout and keeps its place).
            if (left <= 0) await this.o.claims.abandonWait({ pool, requestId });
            const waitedMs = waited(false);
            throw new CorralError(
              'at_capacity',
              `pool ${pool} is at maxWorkers and no worker was freed for this claim within its timeout ` +
                `(waited ${(waitedMs / 1000).toFixed(1)} s, position ${decision.position} in the queue)`,
              undefined,
              { waitedMs, position: decision.position },
            );
          }
          await this.wakeups.wait(pool, Math.min(waitPollMs, left), aborted);
          continue;
        }
        case 'breaker_open':
          this.o.metrics?.countWarmCapacityMiss(pool, 'breaker_open');
          throw new CorralError('worker_unavailable', `pool ${pool} is not spawning: its spawn breaker is open`);
        case 'granted':
        case 'repeat': {
          const outcome = await this.handOver(pool, decision, tenant);
          if (outcome === 'accepted') {
            if (decision.outcome === 'granted') {
              // What the workflow held before: idle and unbound, or hot_idle for this tenant.
              const before = { state: decision.fromState, tenant: decision.fromState === 'hot_idle' ? tenant : null };
              this.notifyClaimed(pool, decision, before, tenant, requestId);
              this.o.notifier.poolChanged(pool, decision.workerId);
            }
            this.o.metrics?.observeClaim(pool, decision.path, (performance.now() - started) / 1000);
            return {
              pool,
              workerId: decision.workerId,
              epoch: decision.epoch,
              endpoint: decision.endpoint,
              tenant,
              path: decision.path,
              waitedMs: waited(true),
            };
          }
          if (outcome === 'moved_on') throw leaseEnded(pool, tenant, requestId, decision);
          await this.o.claims.reopenClaim({ pool, requestId, workerId: decision.workerId, epoch: decision.epoch });
          if (++handOvers >= maxHandOverAttempts || Date.now() >= deadline) {
            throw new CorralError(
              'worker_unavailable',
              `${handOvers} worker(s) of pool ${pool} failed to take the lease`,
            );
          }
          continue;
        }
        case 'cold':
          this.o.metrics?.countWarmCapacityMiss(pool, 'no_idle_worker');
          await this.startColdWorker(pool, decision.workerId, { tenant, requestId });
          break;
        case 'in_progress':
          // A cold worker is being made for this request id (by this call or an earlier one): wait for it.
          if (decision.state === 'spawning') await this.startColdWorker(pool, decision.workerId, { tenant, requestId });
          break;
      }
      const lease = await this.awaitColdGrant(pool, requestId, deadline, aborted);
      if (lease === null) continue; // the pending claim went away (its worker joined the pool): decide again
      const outcome = await this.handOver(pool, lease, tenant);
      if (outcome === 'accepted') {
        // The workflow bound this claim itself (corral_bind_cold_claim): nothing to tell it.
        this.o.metrics?.observeClaim(pool, 'cold', (performance.now() - started) / 1000);
        return {
          pool,
          workerId: lease.workerId,
          epoch: lease.epoch,
          endpoint: lease.endpoint,
          tenant,
          path: lease.path,
          waitedMs: waited(true),
        };
      }
      if (outcome === 'moved_on') throw leaseEnded(pool, tenant, requestId, lease);
      await this.o.claims.reopenClaim({ pool, requestId, workerId: lease.workerId, epoch: lease.epoch });
      if (++handOvers >= maxHandOverAttempts || Date.now() >= deadline) {
        throw new CorralError('worker_unavailable', `the worker made for claim ${requestId} failed to take the lease`);
      }
    }
  }

  /** The answer reached its caller: the grant is never reclaimed. Batched, off the claim's path. */
  acknowledge(pool: string, requestId: string): void {
    this.acks.push({ pool, requestId });
    this.ackFlush ??= this.flushAcks();
  }

  /** Gives the worker back; the pool's release policy decides what happens to it. */
  async release(workerId: string, body: { epoch: number; tenant?: string }): Promise<ReleaseResponse> {
    const decision = await this.o.claims.release({
      workerId,
      epoch: body.epoch,
      tenant: body.tenant ?? null,
      origin: 'api',
    });
    switch (decision.outcome) {
      case 'row_missing':
        throw new CorralError('not_found', `worker ${workerId} does not exist`);
      case 'wrong_tenant':
        throw new CorralError(
          'stale_lease',
          `the lease of worker ${workerId} at epoch ${body.epoch} is not ${body.tenant}'s`,
        );
      case 'stale_lease':
        throw new CorralError(
          'stale_lease',
          `worker ${workerId} is ${decision.state} at epoch ${decision.epoch}; the lease at epoch ${body.epoch} is not current`,
        );
      case 'already_released':
        return { workerId, state: decision.state, epoch: decision.epoch };
      case 'released': {
        const { worker } = decision;
        // Claims waiting on this pool in this process ask again now (the worker may be theirs).
        this.wakeups.wake(worker.pool);
        // The worker learns the new epoch, so the old holder is refused by the worker too.
        const handedOver =
          worker.state === 'idle' || worker.state === 'hot_idle'
            ? await this.handOver(
                worker.pool,
                { workerId, epoch: worker.epoch, endpoint: worker.endpoint ?? '' },
                worker.tenant,
              )
            : 'accepted';
        if (handedOver !== 'failed')
          this.o.notifier.workerRowChanged(worker, { state: 'claimed', tenant: worker.tenant });
        return { workerId, state: worker.state, epoch: worker.epoch };
      }
    }
  }

  /** Anyone may check a lease: valid only while the worker is claimed at exactly that epoch. */
  async checkLease(workerId: string, epoch: number): Promise<LeaseCheckResponse> {
    const check = await this.o.workers.checkLease({ workerId, epoch });
    switch (check.status) {
      case 'valid':
        return {
          valid: true,
          status: 'valid',
          state: 'claimed',
          epoch,
          tenant: check.worker.tenant,
          endpoint: check.worker.endpoint,
        };
      case 'stale_lease':
        return {
          valid: false,
          status: 'stale_lease',
          state: check.state,
          epoch: check.actualEpoch,
          tenant: null,
          endpoint: null,
        };
      case 'not_claimed':
        return { valid: false, status: 'not_claimed', state: check.state, epoch, tenant: null, endpoint: null };
      case 'row_missing':
        return { valid: false, status: 'row_missing', state: null, epoch: null, tenant: null, endpoint: null };
    }
  }

  /** After corral_reclaim_unacknowledged: the workers learn their new epoch, their workflows the row. */
  async afterReclaim(reclaimed: { worker: WorkerSnapshot; tenant: string | null }[]): Promise<void> {
    await Promise.all(
      reclaimed.map(async ({ worker, tenant }) => {
        const handedOver =
          worker.state === 'idle'
            ? await this.handOver(
                worker.pool,
                { workerId: worker.id, epoch: worker.epoch, endpoint: worker.endpoint ?? '' },
                null,
              )
            : 'accepted';
        if (handedOver !== 'failed') this.o.notifier.workerRowChanged(worker, { state: 'claimed', tenant });
      }),
    );
  }

  async close(): Promise<void> {
    await this.ackFlush;
  }

  /**
   * The pool's worker protocol, read at each hand-over (one primary-key lookup beside an HTTP call
   * to the worker): a pool drained and applied again may speak the other protocol seconds later,
   * and a stale answer would sign for a worker that holds no key (or not sign for one that does).
   */
  private async protocolOf(pool: string): Promise<WorkerProtocolName> {
    const record = await this.o.pools.getPool(pool);
    return record ? workerProtocolOf(record.spec) : workerProtocolV2;
  }

  /**
   * Activates the worker at the lease's epoch for `tenant` (null: unbound). A worker that does not
   * take it in time is lost (`activation_failed`, epoch + 1: it is never handed to anyone at that
   * epoch again); one that has seen a higher epoch has moved on. The workflow is told either way.
   */
  private async handOver(
    pool: string,
    lease: Pick<GrantedLease, 'workerId' | 'epoch' | 'endpoint'>,
    tenant: string | null,
  ): Promise<HandOver> {
    const started = performance.now();
    const key = this.o.workerProtocolKey;
    const signing =
      key && (await this.protocolOf(pool)) !== workerProtocolV1
        ? { workerKey: deriveWorkerKey(key, lease.workerId) }
        : undefined;
    const answer = await postActivation(
      lease.endpoint,
      { workerId: lease.workerId, epoch: lease.epoch, tenant },
      AbortSignal.timeout(this.o.handOverTimeoutMs ?? defaultHandOverTimeoutMs),
      signing,
    );
    this.o.metrics?.observeHandOver(pool, (performance.now() - started) / 1000);
    if (answer.outcome === 'accepted') return 'accepted';
    if (answer.outcome === 'refused' && answer.highestEpoch !== null && answer.highestEpoch > lease.epoch) {
      return 'moved_on';
    }
    const detail = answer.outcome === 'failed' ? answer.detail : `refused: ${answer.error ?? `HTTP ${answer.status}`}`;
    this.o.log?.(`hand-over of worker ${lease.workerId} at epoch ${lease.epoch} failed (${detail}): marking it lost`);
    const row = await this.o.workers.getWorker(lease.workerId);
    if (
      row &&
      row.epoch === lease.epoch &&
      (row.state === 'claimed' || row.state === 'idle' || row.state === 'hot_idle')
    ) {
      const result = await this.o.workers.transition({
        workerId: lease.workerId,
        expected: { epoch: lease.epoch, states: [row.state] },
        to: 'lost',
        patch: { failureReason: 'activation_failed' },
        operation: 'mark_lost',
        origin: 'api',
      });
      if (result.outcome === 'transitioned') {
        this.o.notifier.workerRowChanged(result.worker, { state: row.state, tenant: row.tenant });
      }
    }
    return 'failed';
  }

  private notifyClaimed(
    pool: string,
    lease: GrantedLease,
    before: HolderView,
    tenant: string,
    requestId: string,
  ): void {
    this.o.notifier.workerChanged(pool, lease.workerId, before, {
      epoch: lease.epoch,
      state: 'claimed',
      tenant,
      claimRequestId: requestId,
      // Only idle and hot-idle TTLs count from stateSince; a claimed worker's deadlines do not.
      stateSince: new Date().toISOString(),
      failureReason: null,
    });
  }

  private async startColdWorker(pool: string, workerId: string, claim: { tenant: string; requestId: string }) {
    const record = await this.o.pools.getPool(pool);
    if (!record) throw new CorralError('pool_not_found', `no pool named ${pool}`);
    // The worker runs this spec: its row says which template generation (rolling replacement).
    await this.o.pools.recordWorkerGeneration(workerId, record.templateGeneration);
    await startWorkerLifecycle(this.o.temporal, {
      pool,
      workerId,
      settings: lifecycleSettingsFor(record.spec),
      taskQueue: this.o.taskQueue,
      boundClaim: claim,
    });
  }

  /**
   * Waits (reading the claim row) until the cold worker is bound to the claim; null if the claim
   * went away. Throws `worker_unavailable` if the worker failed, `timeout` at the deadline: the
   * claim then stays pending, its worker is still bound to it when ready, and the same request id
   * retried gets that lease (unretried, it is reclaimed after the ack window).
   */
  private async awaitColdGrant(pool: string, requestId: string, deadline: number, aborted: AbortSignal) {
    for (;;) {
      const status = await this.o.claims.pendingClaimStatus({ pool, requestId });
      if (status.status === 'granted') return status;
      if (status.status === 'gone') return null;
      if (status.workerState === 'lost' || status.workerState === 'retired' || status.workerState === null) {
        throw new CorralError(
          'worker_unavailable',
          `the worker spawned for claim ${requestId} failed before it was ready`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0 || aborted.aborted) {
        throw new CorralError(
          'timeout',
          `no worker for claim ${requestId} within its timeout; retry it with the same requestId`,
        );
      }
      await sleep(Math.min(coldPollMs, left), undefined, { signal: aborted }).catch(() => undefined);
    }
  }

  private async flushAcks(): Promise<void> {
    try {
      while (this.acks.length > 0) {
        const batch = this.acks.splice(0, 500);
        try {
          await this.o.claims.acknowledge(batch);
        } catch (err) {
          // Bounded: the window is long against a flush; what cannot be written is reclaimed.
          this.o.log?.(
            `acknowledging ${batch.length} claim(s) failed: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
      }
    } finally {
      this.ackFlush = null;
    }
  }
}

function claimTimeoutMs(timeout: ClaimBody['timeout']): number {
  if (timeout === undefined) return defaultClaimTimeoutMs;
  return typeof timeout === 'number' ? timeout : (parseDuration(timeout) ?? defaultClaimTimeoutMs);
}

function leaseEnded(pool: string, tenant: string, requestId: string, lease: GrantedLease): CorralError {
  return new CorralError(
    'lease_ended',
    `the lease claim ${requestId} got (worker ${lease.workerId} at epoch ${lease.epoch}) has ended; claim again with a new requestId`,
    undefined,
    { lease: { pool, workerId: lease.workerId, epoch: lease.epoch, endpoint: lease.endpoint, tenant } },
  );
}
