// Evictions for room (docs/decisions/0034-waiting-claims.md): at maxWorkers, a waiting claim's
// corral_claim marks another tenant's least recently used hot_idle worker (drain requested, so no
// claim takes it); the API then asks that worker's workflow to drain it — the workflow owns the
// pod, so it retires it like any drained worker and its slot goes to the queue. Asked at once,
// then at most every `reaskMs` while the registry still hands it back (a request lost with a
// crashed replica is asked again). Never awaited on a claim's path; every call bounded.
import { WorkflowUpdateStage, type Client } from '@temporalio/client';
import { drainUpdate, workerLifecycleWorkflowId } from '../common';

const askTimeoutMs = 5_000;
const reaskMs = 5_000;

export class WorkerEvictions {
  private readonly asked = new Map<string, number>();

  constructor(
    private readonly temporal: Client,
    private readonly log?: (line: string) => void,
  ) {}

  /** Asks the worker's workflow to drain it, unless this process asked within the last few seconds. */
  request(pool: string, workerId: string): void {
    const now = Date.now();
    const last = this.asked.get(workerId);
    if (last !== undefined && now - last < reaskMs) return;
    this.asked.set(workerId, now);
    for (const [id, at] of this.asked) if (now - at > 10 * reaskMs) this.asked.delete(id);
    const handle = this.temporal.workflow.getHandle(workerLifecycleWorkflowId(pool, workerId));
    // Acceptance only: a refusal (already draining or ended) is a handle with a failed outcome, not a throw.
    this.temporal
      .withDeadline(now + askTimeoutMs, () =>
        handle.startUpdate(drainUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED }),
      )
      .catch((err: unknown) =>
        this.log?.(
          `asking worker ${workerId} of pool ${pool} to drain for a waiting claim failed (asked again while it waits): ${
            err instanceof Error ? err.message : String(err)
          }`,
        ),
      );
  }
}
