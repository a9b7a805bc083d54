// What the worker counts for every activity it runs, so no activity has to remember it: attempts
// that failed after many retries (`corral_activity_prolonged_retries_total`). Workflows wait out
// registry and runtime outages of any length instead of failing (decision 0019), so an
// outage shows here rather than as failed workflows. Local activities pass through here too.
import type { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { prolongedRetryAttempt, type ActivityRetryMetrics } from '../metrics/activity-metrics';

class ProlongedRetryCounter implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly context: Context,
    private readonly metrics: ActivityRetryMetrics | undefined,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      const { attempt, activityType } = this.context.info;
      if (attempt >= prolongedRetryAttempt) this.metrics?.countProlongedRetry(activityType);
      throw err;
    }
  }
}

/** The `interceptors.activity` entry for Worker.create. */
export function corralActivityInterceptors(metrics?: ActivityRetryMetrics) {
  return [(context: Context) => ({ inbound: new ProlongedRetryCounter(context, metrics) })];
}
