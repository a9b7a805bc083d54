// What every activity a corral replica runs gets from the worker itself, so no activity has to
// remember it (docs/decisions/0019-prompt-drains-and-failover.md):
// - heartbeats while it runs, for the runtime calls that have no progress of their own to report
//   (a create, a delete): with a heartbeat timeout set by the workflow, a replica killed mid-call
//   is noticed within the failover budget instead of at the call's start-to-close timeout;
// - a count of attempts that failed after many retries (`corral_activity_prolonged_retries_total`):
//   workflows wait out outages of any length, so an outage shows here rather than as failures.
import { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { failoverBounds } from '../lifecycle/failover-bounds';
import { prolongedRetryAttempt, type ActivityRetryMetrics } from '../metrics/activity-metrics';

/** Activities that report no progress of their own; the worker heartbeats for them while they run. */
const silentActivities: ReadonlySet<string> = new Set(['spawnWorkerPod', 'deleteWorkerPod']);

class CorralActivityInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly context: Context,
    private readonly metrics: ActivityRetryMetrics | undefined,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const { info } = this.context;
    const beat =
      info.heartbeatTimeoutMs && silentActivities.has(info.activityType)
        ? setInterval(() => this.context.heartbeat(), failoverBounds.activityHeartbeatIntervalMs)
        : undefined;
    try {
      if (beat) this.context.heartbeat();
      return await next(input);
    } catch (err) {
      if (info.attempt >= prolongedRetryAttempt) this.metrics?.countProlongedRetry(info.activityType);
      throw err;
    } finally {
      clearInterval(beat);
    }
  }
}

/** The `interceptors.activity` entry for Worker.create. */
export type { ActivityRetryMetrics };

export function corralActivityInterceptors(metrics?: ActivityRetryMetrics) {
  return [(context: Context) => ({ inbound: new CorralActivityInterceptor(context, metrics) })];
}
