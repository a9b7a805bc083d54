// The health watcher of one corral worker replica: the runtime's one shared watcher (pod informer
// or process prober) produces verdicts, and each becomes one `healthVerdict` signal to the
// worker's workflow, which decides (docs/architecture.md, "Health, pools, the janitor"; decision 0013). No activity, timer or history event per
// worker while it is healthy. Workers are sharded across replicas (ReplicaMembership: two
// watchers each), so a verdict may be signalled twice; the workflow acts on the first for its
// current pod and ignores the rest.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { WorkerMetrics } from '../metrics/worker-metrics';
import type { ReplicaMembership } from '../registry/replica-membership';
import type { PodHealthVerdict, PodHealthWatch, PodRuntime } from '../runtime/pod-runtime';
import { healthVerdictSignal, workerLifecycleWorkflowId } from '../common';

export interface HealthWatcherOptions {
  runtime: PodRuntime;
  temporal: Client;
  membership: ReplicaMembership;
  metrics?: WorkerMetrics;
  log?: (line: string) => void;
}

/** One signal call's bound, and how many times a transient failure is retried. */
const signalTimeoutMs = 5_000;
const signalAttempts = 5;

export class HealthWatcher {
  private watch: PodHealthWatch | undefined;
  private closed = false;

  constructor(private readonly o: HealthWatcherOptions) {}

  start(): void {
    this.watch = this.o.runtime.watchHealth({
      onVerdict: (verdict) => void this.deliver(verdict),
      watches: (workerId) => this.o.membership.watches(workerId),
      onProbe: (result, image) => this.o.metrics?.countHealthCheck(result, image),
      log: this.o.log,
    });
  }

  /** Signals the worker's workflow; a workflow that has ended needs no verdict. */
  private async deliver(verdict: PodHealthVerdict): Promise<void> {
    const { ref, reason, detail } = verdict;
    const handle = this.o.temporal.workflow.getHandle(workerLifecycleWorkflowId(ref.pool, ref.workerId));
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        await this.o.temporal.withDeadline(Date.now() + signalTimeoutMs, () =>
          handle.signal(healthVerdictSignal, { podName: ref.name, reason, detail }),
        );
        this.o.metrics?.countHealthVerdict(reason, 'signalled');
        return;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          this.o.metrics?.countHealthVerdict(reason, 'workflow_gone');
          return;
        }
        if (attempt >= signalAttempts) {
          // The janitor and the workflow's own timers still end such a worker; say so loudly.
          this.o.log?.(`health verdict for ${ref.name} (${reason}) not delivered: ${messageOf(err)}`);
          this.o.metrics?.countHealthVerdict(reason, 'undelivered');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** attempt)).unref());
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.close();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
