// Tells worker workflows (and their pools) what the registry decided on the claim path, coalesced
// so a tight claim → release loop does not cost a workflow task per step
// (docs/decisions/0012-registry-claims-and-the-corral-api.md):
// - per worker, at most one `registryChanged` signal in flight and at most one per `windowMs`;
//   a change arriving meanwhile replaces the pending one (only the latest row is sent: the
//   workflow adopts the highest epoch it hears of, so skipping intermediate rows loses nothing);
// - per pool, at most one wake per `windowMs` (a claim lowered its idle count: refill).
// Best effort with a bound: a signal that fails is retried a few times, then dropped; the
// workflow's next compare-and-set fence-misses, re-reads the row and adopts it anyway.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { WorkerSnapshot } from '../registry/lifecycle-store';
import { poolWorkflowId, workerChangedSignal } from '../workflows/pool/messages';
import {
  registryChangedSignal,
  workerLifecycleWorkflowId,
  type WorkerRowChange,
} from '../workflows/worker-lifecycle/messages';

export const defaultNotifyWindowMs = 1_000;
const signalTimeoutMs = 5_000;
const maxSignalAttempts = 3;

interface Slot {
  pending: (() => Promise<void>) | null;
  inFlight: boolean;
  lastSentAt: number;
  /** A send waiting for the window to pass. */
  timer: NodeJS.Timeout | null;
  /** Forgets the slot once a window has passed with nothing to send. */
  expiry: NodeJS.Timeout | null;
}

export class WorkflowNotifier {
  private readonly slots = new Map<string, Slot>();
  private closed = false;
  private readonly idle: (() => void)[] = [];

  constructor(
    private readonly temporal: Client,
    private readonly options: { windowMs?: number; log?: (line: string) => void } = {},
  ) {}

  /** The worker's workflow learns its row (the latest one wins if several are waiting). */
  workerChanged(pool: string, workerId: string, change: WorkerRowChange): void {
    const handle = this.temporal.workflow.getHandle(workerLifecycleWorkflowId(pool, workerId));
    this.enqueue(`worker:${workerId}`, () => handle.signal(registryChangedSignal, change));
  }

  workerRowChanged(worker: WorkerSnapshot): void {
    this.workerChanged(worker.pool, worker.id, {
      epoch: worker.epoch,
      state: worker.state,
      tenant: worker.tenant,
      claimRequestId: worker.claimRequestId,
      stateSince: worker.stateSince.toISOString(),
      failureReason: worker.failureReason,
    });
  }

  /** The pool workflow wakes and re-reads the registry (a claim took an idle worker). */
  poolChanged(pool: string, workerId: string): void {
    const handle = this.temporal.workflow.getHandle(poolWorkflowId(pool));
    this.enqueue(`pool:${pool}`, () => handle.signal(workerChangedSignal, { workerId, event: 'claimed' }));
  }

  /** Resolves once nothing is pending or in flight (tests, shutdown). */
  async settled(): Promise<void> {
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Sends what is pending now, then stops taking more. */
  async close(): Promise<void> {
    for (const [key, slot] of this.slots) {
      if (slot.expiry) clearTimeout(slot.expiry);
      if (slot.timer) {
        clearTimeout(slot.timer);
        slot.timer = null;
        void this.send(key, slot);
      }
    }
    await this.settled();
    this.closed = true;
  }

  private enqueue(key: string, signal: () => Promise<void>): void {
    if (this.closed) return;
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { pending: null, inFlight: false, lastSentAt: 0, timer: null, expiry: null };
      this.slots.set(key, slot);
    }
    if (slot.expiry) {
      clearTimeout(slot.expiry);
      slot.expiry = null;
    }
    slot.pending = signal;
    this.schedule(key, slot);
  }

  private schedule(key: string, slot: Slot): void {
    if (slot.inFlight || slot.timer || !slot.pending) return;
    const wait = slot.lastSentAt + (this.options.windowMs ?? defaultNotifyWindowMs) - Date.now();
    if (wait <= 0) {
      void this.send(key, slot);
      return;
    }
    slot.timer = setTimeout(() => {
      slot.timer = null;
      void this.send(key, slot);
    }, wait);
  }

  private async send(key: string, slot: Slot): Promise<void> {
    const signal = slot.pending;
    if (!signal || slot.inFlight) return;
    slot.pending = null;
    slot.inFlight = true;
    slot.lastSentAt = Date.now();
    try {
      for (let attempt = 1; attempt <= maxSignalAttempts; attempt++) {
        try {
          await this.temporal.connection.withDeadline(Date.now() + signalTimeoutMs, signal);
          break;
        } catch (err) {
          // A workflow that has ended needs no news; anything else is retried, then left to the fence.
          if (err instanceof WorkflowNotFoundError) break;
          if (attempt === maxSignalAttempts) {
            this.options.log?.(`notify ${key}: ${err instanceof Error ? err.message : String(err)} (dropped)`);
          }
        }
      }
    } finally {
      slot.inFlight = false;
      if (slot.pending) this.schedule(key, slot);
      else {
        // Kept for one window, so the next change of this worker waits out the window too.
        slot.expiry = setTimeout(() => {
          if (!slot.pending && !slot.inFlight && !slot.timer) this.slots.delete(key);
        }, this.options.windowMs ?? defaultNotifyWindowMs);
        slot.expiry.unref();
      }
      if (this.isIdle()) for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private isIdle(): boolean {
    for (const slot of this.slots.values()) if (slot.inFlight || slot.pending || slot.timer) return false;
    return true;
  }
}
