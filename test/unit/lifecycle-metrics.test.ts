import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createLifecycleMetrics } from '../../src/metrics/lifecycle-metrics';

test('an empty origin or image is counted as unknown, and a negative duration clamps to 0', async () => {
  const register = new Registry();
  const metrics = createLifecycleMetrics(register);
  metrics.recordTransition({ operation: 'claim', outcome: 'transitioned', image: '', origin: '', durationSeconds: -2 });
  metrics.recordTransition({
    operation: 'claim',
    outcome: 'transitioned',
    image: null,
    origin: undefined,
    durationSeconds: 0.002,
  });
  const counter = await register.getSingleMetric('corral_worker_lifecycle_transitions_total')!.get();
  assert.deepEqual(
    counter.values.map((v) => [v.labels, v.value]),
    [[{ operation: 'claim', outcome: 'transitioned', image: 'unknown', origin: 'unknown' }, 2]],
  );
  const histogram = await register.getSingleMetric('corral_worker_lifecycle_transition_duration_seconds')!.get();
  const sum = (histogram.values as { metricName?: string; value: number }[]).find((v) =>
    v.metricName?.endsWith('_sum'),
  )?.value;
  assert.equal(sum, 0.002, 'the negative sample contributed 0');
  const smallestBucket = histogram.values.find((v) => v.labels.le === 0.0005)?.value;
  assert.equal(smallestBucket, 1, 'the clamped sample fell in the lowest bucket');
});
