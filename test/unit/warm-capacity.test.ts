import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePoolSpec, PoolSpecError } from '../../src/config/pool-spec';
import { defaultSpawnSeconds, warmCapacityTarget } from '../../src/config/warm-capacity';

const base = { name: 'demo', runtime: 'process', image: '/bin/worker', minIdle: 1, maxWorkers: 50 };
const demand = (warmCapacity: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  parsePoolSpec({ ...base, ...extra, warmCapacity: { mode: 'demand', coolDown: '10m', ...warmCapacity } });
const quiet = { claimsLastMinute: 0, peakClaimsPerMinute: 0, spawnSeconds: 5 };

test('static pools keep minIdle whatever the demand', () => {
  const spec = parsePoolSpec(base);
  assert.equal(spec.warmCapacity.mode, 'static');
  assert.deepEqual(warmCapacityTarget(spec, { claimsLastMinute: 600, peakClaimsPerMinute: 6_000, spawnSeconds: 30 }), {
    effectiveTarget: 1,
    headroom: 0,
    claimRate: 0,
    forecast: 0,
    spawnSeconds: 30,
  });
});

test('demand: forecast = rate × spawn time, headroom = ceil(burst × √forecast), clamped to [minIdle, maxIdle]', () => {
  // 120 claims in the last minute (2/s), 10 s spawns: forecast 20, headroom ceil(2 × √20) = 9.
  const busy = warmCapacityTarget(demand(), { claimsLastMinute: 120, peakClaimsPerMinute: 120, spawnSeconds: 10 });
  assert.deepEqual([busy.claimRate, busy.forecast, busy.headroom, busy.effectiveTarget], [2, 20, 9, 29]);
  assert.equal(warmCapacityTarget(demand({ maxIdle: 12 }), { ...quiet, claimsLastMinute: 120 }).effectiveTarget, 12);
  assert.equal(
    warmCapacityTarget(demand({ burst: 0 }), { ...quiet, claimsLastMinute: 120, spawnSeconds: 10 }).effectiveTarget,
    20,
  );
  assert.equal(warmCapacityTarget(demand({}, { minIdle: 3 }), quiet).effectiveTarget, 3, 'never below minIdle');
});

test('demand: up within a minute of a burst, held while it is inside the cool-down window, to zero when idle with minIdle 0', () => {
  const spec = demand({}, { minIdle: 0 });
  // A burst: 60 claims in the last minute.
  const burst = warmCapacityTarget(spec, { claimsLastMinute: 60, peakClaimsPerMinute: 60, spawnSeconds: 10 });
  // Five minutes later: none in the last minute, the burst's minute still inside the 10-minute window.
  const cooling = warmCapacityTarget(spec, { claimsLastMinute: 0, peakClaimsPerMinute: 60, spawnSeconds: 10 });
  // Once it has left the window.
  const idle = warmCapacityTarget(spec, { claimsLastMinute: 0, peakClaimsPerMinute: 0, spawnSeconds: 10 });
  assert.equal(burst.effectiveTarget, 10 + Math.ceil(2 * Math.sqrt(10)));
  assert.deepEqual(cooling, burst, 'held for the cool-down');
  assert.deepEqual([idle.effectiveTarget, idle.headroom], [0, 0]);
  assert.equal(
    warmCapacityTarget(spec, { claimsLastMinute: 6, peakClaimsPerMinute: 6, spawnSeconds: null }).spawnSeconds,
    defaultSpawnSeconds,
  );
});

test('warmCapacity is checked: maxIdle between minIdle and maxWorkers, coolDown ≥ 1m, burst 0–10, the field named', () => {
  const refusal = (spec: unknown) => {
    try {
      parsePoolSpec(spec);
    } catch (err) {
      assert.ok(err instanceof PoolSpecError);
      return err.field;
    }
    return assert.fail('accepted');
  };
  assert.equal(refusal({ ...base, minIdle: 5, warmCapacity: { mode: 'demand', maxIdle: 4 } }), 'warmCapacity.maxIdle');
  assert.equal(refusal({ ...base, warmCapacity: { mode: 'demand', maxIdle: 51 } }), 'warmCapacity.maxIdle');
  assert.equal(refusal({ ...base, warmCapacity: { mode: 'demand', coolDown: '30s' } }), 'warmCapacity.coolDown');
  assert.equal(refusal({ ...base, warmCapacity: { mode: 'demand', burst: 11 } }), 'warmCapacity.burst');
  assert.equal(refusal({ ...base, warmCapacity: { mode: 'sometimes' } }), 'warmCapacity.mode');
});
