// Activity attempts that keep failing: workflows wait out registry and runtime outages of any
// length instead of failing, so a long outage shows here. Label: the activity type (a name in
// corral's code, a bounded set).
import { Counter, type Registry } from 'prom-client';

/** An attempt failing at or after this one counts as a prolonged retry (≈ 3 minutes of backoff to 60 s). */
export const prolongedRetryAttempt = 8;

export interface ActivityRetryMetrics {
  countProlongedRetry(activityType: string): void;
}

export function createActivityRetryMetrics(register: Registry): ActivityRetryMetrics {
  const prolonged = new Counter({
    name: 'corral_activity_prolonged_retries_total',
    help:
      `Activity attempts that failed at attempt ${prolongedRetryAttempt} or later (an outage being waited out), ` +
      'by activity type. Alert when it keeps rising.',
    labelNames: ['activity'] as const,
    registers: [register],
  });
  return { countProlongedRetry: (activityType) => prolonged.inc({ activity: activityType }) };
}
