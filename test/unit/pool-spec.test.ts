import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lifecycleSettingsFor, parsePoolSpec, PoolSpecError, workerProtocolOf } from '../../src/config/pool-spec';

const minimal = { name: 'demo', runtime: 'process', image: '/usr/local/bin/worker', minIdle: 3, maxWorkers: 10 };

/** The field a bad spec is refused for, and its message. */
function refusal(spec: unknown): [string, string] {
  try {
    parsePoolSpec(spec);
  } catch (err) {
    assert.ok(err instanceof PoolSpecError, String(err));
    return [err.field, err.reason];
  }
  assert.fail('the spec was accepted');
}

test('a minimal spec gets the documented defaults, durations in milliseconds', () => {
  const spec = parsePoolSpec({ ...minimal, deadlines: { spawn: '45s', idleTtl: '2h' }, credentials: { ttl: '30m' } });
  assert.equal(spec.deadlines.spawn, 45_000);
  assert.equal(spec.deadlines.idleTtl, 2 * 3_600_000);
  assert.equal(spec.deadlines.activation, 30_000);
  assert.equal(spec.credentials.ttl, 30 * 60_000);
  assert.equal(spec.credentials.refreshLead, 5 * 60_000);
  assert.equal(spec.releasePolicy, 'hot_idle');
  assert.equal(spec.breaker.failureThreshold, 5);
  const settings = lifecycleSettingsFor(spec);
  assert.equal(settings.spawnDeadlineMs, 45_000);
  assert.equal(settings.healthIntervalMs, 10_000);
  assert.equal(lifecycleSettingsFor(parsePoolSpec({ ...minimal, healthPath: null })).healthIntervalMs, null);
});

test('floors and cross-field rules are refused naming the field', () => {
  assert.deepEqual(refusal({ ...minimal, deadlines: { spawn: '5s' } }), ['deadlines.spawn', 'must be at least 10s']);
  assert.deepEqual(refusal({ ...minimal, health: { interval: 500 } }), ['health.interval', 'must be at least 1s']);
  assert.deepEqual(refusal({ ...minimal, credentials: { ttl: '4m' } }), ['credentials.ttl', 'must be at least 5m']);
  assert.equal(refusal({ ...minimal, credentials: { ttl: '10m', refreshLead: '10m' } })[0], 'credentials.refreshLead');
  assert.equal(refusal({ ...minimal, minIdle: 11 })[0], 'minIdle');
  assert.equal(refusal({ ...minimal, maxWorkers: 0 })[0], 'maxWorkers');
  assert.equal(refusal({ ...minimal, deadlines: { spawn: 'soon' } })[0], 'deadlines.spawn');
  assert.equal(refusal({ ...minimal, releasePolicy: 'keep' })[0], 'releasePolicy');
  assert.equal(refusal({ ...minimal, name: 'Demo_Pool' })[0], 'name');
  assert.equal(refusal({ ...minimal, runtime: 'docker' })[0], 'runtime');
  assert.equal(refusal({ ...minimal, maxSpawnAttempts: 0 })[0], 'maxSpawnAttempts');
  assert.equal(refusal({ ...minimal, breaker: { cooldown: '0s' } })[0], 'breaker.cooldown');
  assert.deepEqual(refusal({ ...minimal, surprise: true }), ['surprise', 'is not a known field']);
  assert.equal(
    refusal({
      ...minimal,
      resources: { requests: { cpuMillis: 500, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
    })[0],
    'resources.limits.cpuMillis',
  );
});

test('workerProtocol: v2 unless the pool opts into v1; carried to every worker; anything else refused', () => {
  assert.equal(parsePoolSpec(minimal).workerProtocol, 'corral.worker/v2');
  assert.equal(lifecycleSettingsFor(parsePoolSpec(minimal)).workerProtocol, 'corral.worker/v2');
  const legacy = parsePoolSpec({ ...minimal, workerProtocol: 'corral.worker/v1' });
  assert.equal(lifecycleSettingsFor(legacy).workerProtocol, 'corral.worker/v1');
  assert.equal(refusal({ ...minimal, workerProtocol: 'v1' })[0], 'workerProtocol');
  // A spec stored before the field existed is a v2 pool.
  assert.equal(workerProtocolOf({} as Parameters<typeof workerProtocolOf>[0]), 'corral.worker/v2');
});

test('tenant quotas: none unless set; maxPerTenant and tenantQuotas checked against maxWorkers, the field named', () => {
  const plain = parsePoolSpec(minimal);
  assert.equal(plain.maxPerTenant, undefined);
  assert.equal('tenantQuotas' in plain, false, 'a spec without quotas stores none (older specs read the same)');
  const quoted = parsePoolSpec({ ...minimal, maxPerTenant: 2, tenantQuotas: { big: 10, barred: 0 } });
  assert.deepEqual([quoted.maxPerTenant, quoted.tenantQuotas], [2, { big: 10, barred: 0 }]);
  assert.deepEqual(refusal({ ...minimal, maxPerTenant: 11 }), ['maxPerTenant', 'must not exceed maxWorkers (10)']);
  assert.equal(refusal({ ...minimal, maxPerTenant: 0 })[0], 'maxPerTenant');
  assert.deepEqual(refusal({ ...minimal, tenantQuotas: { big: 11 } }), [
    'tenantQuotas.big',
    'must not exceed maxWorkers (10)',
  ]);
  assert.equal(refusal({ ...minimal, tenantQuotas: { big: -1 } })[0], 'tenantQuotas.big');
  assert.equal(refusal({ ...minimal, tenantQuotas: { big: 1.5 } })[0], 'tenantQuotas.big');
});
