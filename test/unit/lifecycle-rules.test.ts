import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkClaim,
  checkDrain,
  checkRelease,
  initialLifecycleState,
  nextDeadline,
} from '../../src/workflows/worker-lifecycle/lifecycle-rules';
import { testSettings } from '../harness/lifecycle-env';

const input = { workerId: 'w1', pool: 'web', settings: testSettings };
const at = (state: Parameters<typeof nextDeadline>[0]['state'], patch: object = {}) => {
  const s = initialLifecycleState(input, 0);
  return { ...s, state, deadlines: { ...s.deadlines, ...patch } };
};

test('the timer follows the earliest deadline that matters in the current state', () => {
  const deadlines = { idleUntil: 50, hotIdleUntil: 40, refreshAt: 60, drainBy: 10 };
  assert.deepEqual(nextDeadline(at('idle', deadlines)), { kind: 'idleUntil', at: 50 });
  assert.deepEqual(nextDeadline(at('hot_idle', deadlines)), { kind: 'hotIdleUntil', at: 40 });
  assert.deepEqual(nextDeadline(at('claimed', deadlines)), { kind: 'refreshAt', at: 60 }, 'drainBy only once asked');
  assert.deepEqual(nextDeadline({ ...at('claimed', deadlines), drainRequested: true }), { kind: 'drainBy', at: 10 });
  assert.deepEqual(nextDeadline(at('idle', { idleUntil: null, refreshAt: null })), {
    kind: 'retireAt',
    at: testSettings.maxLifetimeMs,
  });
  assert.equal(nextDeadline(at('draining')), null);
  assert.equal(nextDeadline(at('spawning')), null, 'spawn deadlines are raced inside the spawn step');
});

test('validators name the reason', () => {
  const idle = at('idle');
  assert.equal(checkClaim(idle, { tenant: 'acme', requestId: 'r1' }), null);
  assert.equal(checkClaim(idle, { tenant: 'x'.repeat(129), requestId: 'r1' })?.type, 'InvalidRequest');
  const claimed = { ...at('claimed'), epoch: 2, tenant: 'acme', claimRequestId: 'r1' };
  assert.equal(checkClaim(claimed, { tenant: 'acme', requestId: 'r1' }), null, 'a repeated request is served');
  assert.equal(checkClaim(claimed, { tenant: 'globex', requestId: 'r1' })?.type, 'WrongState');
  assert.equal(checkRelease(claimed, 'w1', { workerId: 'w1', epoch: 1 })?.type, 'StaleLease');
  assert.equal(checkRelease(claimed, 'w1', { workerId: 'w1', epoch: 2.5 })?.type, 'InvalidRequest');
  assert.equal(checkRelease(claimed, 'w1', { workerId: 'w1', epoch: 2 }), null);
  assert.equal(checkDrain(at('lost'), {})?.type, 'WrongState');
  assert.equal(checkDrain({ ...claimed, drainRequested: true }, {})?.type, 'Draining');
  assert.equal(
    checkClaim({ ...claimed, state: 'idle', drainRequested: true }, { tenant: 'a', requestId: 'b' })?.type,
    'Draining',
  );
});
