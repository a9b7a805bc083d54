import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePoolSpec, PoolSpecError } from '../../src/config/pool-spec';
import { defaultSpawnSeconds, warmCapacityTarget, type DemandObservation } from '../../src/config/warm-capacity';

const base = { name: 'demo', runtime: 'process', image: '/bin/worker', minIdle: 1, maxWorkers: 50 };
const demand = (warmCapacity: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  parsePoolSpec({ ...base, ...extra, warmCapacity: { mode: 'demand', coolDown: '10m', ...warmCapacity } });
const observed = (over: Partial<DemandObservation> = {}): DemandObservation => ({
  claimsLastTenSeconds: 0,
  claimsLastMinute: 0,
  peakClaimsPerMinute: 0,
  spawnSeconds: 5,
  reactionSeconds: null,
  ...over,
});

test('static pools keep minIdle whatever the demand', () => {
  const spec = parsePoolSpec(base);
  assert.equal(spec.warmCapacity.mode, 'static');
  const busy = observed({
    claimsLastTenSeconds: 100,
    claimsLastMinute: 600,
    peakClaimsPerMinute: 6_000,
    spawnSeconds: 30,
  });
  assert.deepEqual(warmCapacityTarget(spec, busy), {
    effectiveTarget: 1,
    headroom: 0,
    claimRate: 0,
    forecast: 0,
    leadSeconds: 30,
    spawnSeconds: 30,
    reactionSeconds: 0,
    recheckInMs: null,
  });
});

test('demand: forecast = rate × lead time (reaction + spawn), target = ceil(forecast + burst × √forecast), clamped to [minIdle, maxIdle]', () => {
  // 120 claims in the last minute (2/s), 9 s spawns after a 1 s reaction: forecast 20,
  // target ceil(20 + 2 × √20) = ceil(28.94) = 29, headroom 29 − 20 = 9.
  const busy = warmCapacityTarget(
    demand(),
    observed({ claimsLastMinute: 120, peakClaimsPerMinute: 120, spawnSeconds: 9, reactionSeconds: 1 }),
  );
  assert.deepEqual(
    [busy.claimRate, busy.leadSeconds, busy.forecast, busy.headroom, busy.effectiveTarget],
    [2, 10, 20, 9, 29],
  );
  assert.equal(busy.recheckInMs, null, 'set by the minute windows: the usual turns look again');
  assert.equal(warmCapacityTarget(demand({ maxIdle: 12 }), observed({ claimsLastMinute: 120 })).effectiveTarget, 12);
  assert.equal(
    warmCapacityTarget(demand({ burst: 0 }), observed({ claimsLastMinute: 120, spawnSeconds: 10 })).effectiveTarget,
    20,
  );
  assert.equal(warmCapacityTarget(demand({}, { minIdle: 3 }), observed()).effectiveTarget, 3, 'never below minIdle');
  // One rounding: a trickle (1 claim a minute, 0.5 s lead: forecast 1/120) asks for one idle worker, not two.
  const trickle = warmCapacityTarget(demand({}, { minIdle: 0 }), observed({ claimsLastMinute: 1, spawnSeconds: 0.5 }));
  assert.deepEqual([trickle.effectiveTarget, trickle.headroom], [1, 0]);
});

test('demand: a rising rate counts within 10 s, before the minute window sees it', () => {
  // 20 claims in the last 10 s (2/s) but only 25 in the last minute: λ = 2/s, not 25/60.
  const rising = warmCapacityTarget(
    demand({}, { minIdle: 0 }),
    observed({ claimsLastTenSeconds: 20, claimsLastMinute: 25, peakClaimsPerMinute: 25, spawnSeconds: 1 }),
  );
  assert.deepEqual(
    [rising.claimRate, rising.forecast, rising.effectiveTarget],
    [2, 2, Math.ceil(2 + 2 * Math.sqrt(2))],
  );
});

test('demand: up within a minute of a burst, held while it is inside the cool-down window, to zero when idle with minIdle 0', () => {
  const spec = demand({}, { minIdle: 0 });
  // A burst: 60 claims in the last minute.
  const burst = warmCapacityTarget(spec, observed({ claimsLastMinute: 60, peakClaimsPerMinute: 60, spawnSeconds: 10 }));
  // Five minutes later: none in the last minute, the burst's minute still inside the 10-minute window.
  const cooling = warmCapacityTarget(spec, observed({ peakClaimsPerMinute: 60, spawnSeconds: 10 }));
  // Once it has left the window.
  const idle = warmCapacityTarget(spec, observed({ spawnSeconds: 10 }));
  assert.equal(burst.effectiveTarget, Math.ceil(10 + 2 * Math.sqrt(10)));
  assert.deepEqual(cooling, burst, 'held for the cool-down');
  assert.deepEqual([idle.effectiveTarget, idle.headroom], [0, 0]);
  const unknown = warmCapacityTarget(spec, observed({ claimsLastMinute: 6, spawnSeconds: null }));
  assert.deepEqual([unknown.spawnSeconds, unknown.reactionSeconds], [defaultSpawnSeconds, 0]);
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
