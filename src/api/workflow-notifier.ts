// Tells worker workflows (and their pools) what the registry decided on the claim path, coalesced
// so claims and releases do not cost a workflow task each
// (docs/decisions/0012-registry-claims-and-the-corral-api.md):
// - per worker, changes are held until the row has been quiet for `quietMs` (at most `maxDelayMs`
//   after the first one), then only the latest row is sent, as one `registryChanged` signal; at
//   most one is in flight per worker. The workflow adopts the highest epoch it hears of, so
//   skipping intermediate rows loses nothing.
// - a burst that leaves the worker in the state and with the tenant it had before it (a claim
//   and its release under `recycle`, a hot-idle reuse and its release) is not sent at all: the
//   workflow's timers and search attributes are already right, and its epoch is caught up by
//   its next compare-and-set (a fence miss, re-read and adopted, deadlines re-planned).
// - per pool, at most one wake per `maxDelayMs` (a claim lowered its idle count: refill).
// Best effort with a bound: a signal that fails is retried a few times, then dropped; the
// workflow's next compare-and-set fence-misses and adopts the row anyway.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  type WorkerState,
  poolWorkflowId,
  workerChangedSignal,
  registryChangedSignal,
  workerLifecycleWorkflowId,
  type WorkerRowChange,
} from '../common';
import type { WorkerSnapshot } from '../registry/lifecycle-store';

export const defaultNotifyQuietMs = 500;
export const defaultNotifyMaxDelayMs = 1_500;
const signalTimeoutMs = 5_000;
const maxSignalAttempts = 3;

/** What a worker's workflow holds (or was last told): the part that drives its timers and the Web UI. */
export interface HolderView {
  state: WorkerState;
  tenant: string | null;
}

interface Slot {
  send: (change: WorkerRowChange) => Promise<void>;
  /** What the workflow knew before the first pending change. */
  baseline: HolderView | null;
  pending: WorkerRowChange | null;
  firstPendingAt: number;
  inFlight: boolean;
  timer: NodeJS.Timeout | null;
}

export class WorkflowNotifier {
  private readonly workers = new Map<string, Slot>();
  private readonly poolWakes = new Map<string, { timer: NodeJS.Timeout | null; lastAt: number; workerId: string }>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly idle: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly temporal: Client,
    private readonly options: { quietMs?: number; maxDelayMs?: number; log?: (line: string) => void } = {},
  ) {}

  private get quietMs(): number {
    return this.options.quietMs ?? defaultNotifyQuietMs;
  }

  private get maxDelayMs(): number {
    return this.options.maxDelayMs ?? defaultNotifyMaxDelayMs;
  }

  /** The worker's row changed from `before` to `change` (the latest one wins if several are waiting). */
  workerChanged(pool: string, workerId: string, before: HolderView, change: WorkerRowChange): void {
    if (this.closed) return;
    let slot = this.workers.get(workerId);
    if (!slot) {
      const handle = this.temporal.workflow.getHandle(workerLifecycleWorkflowId(pool, workerId));
      slot = {
        send: (latest) => handle.signal(registryChangedSignal, latest),
        baseline: null,
        pending: null,
        firstPendingAt: 0,
        inFlight: false,
        timer: null,
      };
      this.workers.set(workerId, slot);
    }
    if (slot.pending === null) {
      slot.firstPendingAt = Date.now();
      slot.baseline ??= before;
    }
    if (slot.pending === null || change.epoch > slot.pending.epoch) slot.pending = change;
    this.schedule(workerId, slot);
  }

  workerRowChanged(worker: WorkerSnapshot, before: HolderView): void {
    this.workerChanged(worker.pool, worker.id, before, {
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
    if (this.closed) return;
    let wake = this.poolWakes.get(pool);
    if (!wake) {
      wake = { timer: null, lastAt: 0, workerId };
      this.poolWakes.set(pool, wake);
    }
    wake.workerId = workerId;
    if (wake.timer) return;
    const current = wake;
    current.timer = setTimeout(
      () => {
        current.timer = null;
        current.lastAt = Date.now();
        const handle = this.temporal.workflow.getHandle(poolWorkflowId(pool));
        void this.track(`pool ${pool}`, () =>
          handle.signal(workerChangedSignal, { workerId: current.workerId, event: 'claimed' }),
        );
      },
      Math.max(0, current.lastAt + this.maxDelayMs - Date.now()),
    );
  }

  /** Resolves once nothing is pending or in flight (tests, shutdown). */
  async settled(): Promise<void> {
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Sends what is pending now, then stops taking more. */
  async close(): Promise<void> {
    for (const [workerId, slot] of this.workers) {
      if (slot.timer) {
        clearTimeout(slot.timer);
        slot.timer = null;
        this.flush(workerId, slot);
      }
    }
    for (const wake of this.poolWakes.values()) {
      if (wake.timer) clearTimeout(wake.timer);
      wake.timer = null;
    }
    this.closed = true;
    await this.settled();
  }

  private schedule(workerId: string, slot: Slot): void {
    if (slot.inFlight || slot.pending === null) return;
    if (slot.timer) clearTimeout(slot.timer);
    const wait = Math.min(this.quietMs, slot.firstPendingAt + this.maxDelayMs - Date.now());
    slot.timer = setTimeout(
      () => {
        slot.timer = null;
        this.flush(workerId, slot);
      },
      Math.max(0, wait),
    );
  }

  private flush(workerId: string, slot: Slot): void {
    const latest = slot.pending;
    if (latest === null || slot.inFlight) return;
    slot.pending = null;
    const baseline = slot.baseline;
    if (baseline && baseline.state === latest.state && baseline.tenant === latest.tenant) {
      this.forget(workerId, slot);
      return;
    }
    slot.baseline = { state: latest.state, tenant: latest.tenant };
    slot.inFlight = true;
    // track() never rejects: failures are counted and logged there.
    void this.track(`worker ${workerId}`, () => slot.send(latest)).then(() => {
      slot.inFlight = false;
      if (slot.pending) this.schedule(workerId, slot);
      else this.forget(workerId, slot);
    });
  }

  /**
   * A quiet worker's slot goes: the next change starts from what its caller says the row was,
   * which is what this process last sent or what the workflow has adopted since.
   */
  private forget(workerId: string, slot: Slot): void {
    if (slot.pending === null && !slot.inFlight && !slot.timer) this.workers.delete(workerId);
    this.notifyIdle();
  }

  private track(what: string, signal: () => Promise<void>): Promise<void> {
    const sending = (async () => {
      for (let attempt = 1; attempt <= maxSignalAttempts; attempt++) {
        try {
          await this.temporal.connection.withDeadline(Date.now() + signalTimeoutMs, signal);
          return;
        } catch (err) {
          // A workflow that has ended needs no news; anything else is retried, then left to the fence.
          if (err instanceof WorkflowNotFoundError) return;
          if (attempt === maxSignalAttempts) {
            this.options.log?.(`notify ${what}: ${err instanceof Error ? err.message : String(err)} (dropped)`);
          }
        }
      }
    })();
    this.inFlight.add(sending);
    return sending.finally(() => {
      this.inFlight.delete(sending);
      this.notifyIdle();
    });
  }

  private isIdle(): boolean {
    if (this.inFlight.size > 0) return false;
    for (const slot of this.workers.values()) if (slot.pending || slot.timer || slot.inFlight) return false;
    return true;
  }

  private notifyIdle(): void {
    if (this.isIdle()) for (const resolve of this.idle.splice(0)) resolve();
  }
}
