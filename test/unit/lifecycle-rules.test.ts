import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lifecycleRejections, type WorkerRowChange } from '../../src/common';
import {
  adoptRegistryRow,
  checkClaim,
  checkDrain,
  checkRelease,
  initialLifecycleState,
  isNewerChange,
  nextDeadline,
} from '../../src/workflows/worker-lifecycle/lifecycle-rules';
import { testSettings } from '../harness/lifecycle-env';

const { invalidRequest, wrongState, staleLease, draining } = lifecycleRejections;

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
  assert.equal(checkClaim(idle, { tenant: 'x'.repeat(129), requestId: 'r1' })?.type, invalidRequest);
  const claimed = { ...at('claimed'), epoch: 2, tenant: 'acme', claimRequestId: 'r1' };
  assert.equal(checkClaim(claimed, { tenant: 'acme', requestId: 'r1' }), null, 'a repeated request is served');
  assert.equal(checkClaim(claimed, { tenant: 'globex', requestId: 'r1' })?.type, wrongState);
  assert.equal(checkRelease(claimed, 'w1', { workerId: 'w1', epoch: 1 })?.type, staleLease);
  assert.equal(checkRelease(claimed, 'w1', { workerId: 'w1', epoch: 2.5 })?.type, invalidRequest);
  assert.equal(checkRelease(claimed, 'w1', { workerId: 'w1', epoch: 2 }), null);
  assert.equal(checkDrain(at('lost'), {})?.type, wrongState);
  assert.equal(checkDrain({ ...claimed, drainRequested: true }, {})?.type, draining);
  assert.equal(
    checkClaim({ ...claimed, state: 'idle', drainRequested: true }, { tenant: 'a', requestId: 'b' })?.type,
    draining,
  );
});

const change = (patch: Partial<WorkerRowChange>): WorkerRowChange => ({
  epoch: 2,
  state: 'claimed',
  tenant: 'acme',
  claimRequestId: 'r1',
  stateSince: new Date(1_000).toISOString(),
  failureReason: null,
  ...patch,
});

test('an adopted registry row re-plans the deadlines of its state from its stateSince', () => {
  const now = 5_000;
  const idle = at('idle', { idleUntil: 99, refreshAt: 500 });
  adoptRegistryRow(idle, change({}), testSettings, now);
  assert.deepEqual([idle.state, idle.epoch, idle.tenant, idle.claimRequestId], ['claimed', 2, 'acme', 'r1']);
  assert.deepEqual([idle.deadlines.idleUntil, idle.deadlines.hotIdleUntil, idle.deadlines.drainBy], [null, null, null]);
  assert.equal(idle.deadlines.refreshAt, 500, 'credentials keep their own clock');

  const released = { ...idle, deadlines: { ...idle.deadlines } };
  adoptRegistryRow(released, change({ epoch: 3, state: 'hot_idle', claimRequestId: null }), testSettings, now);
  assert.equal(released.deadlines.hotIdleUntil, 1_000 + testSettings.hotIdleTtlMs, 'from stateSince, not from now');

  const recycled = { ...idle, deadlines: { ...idle.deadlines } };
  adoptRegistryRow(recycled, change({ epoch: 3, state: 'idle', tenant: null }), testSettings, now);
  assert.equal(recycled.deadlines.idleUntil, 1_000 + (testSettings.idleTtlMs ?? 0));
  const keepIdle = { ...idle, deadlines: { ...idle.deadlines } };
  adoptRegistryRow(keepIdle, change({ epoch: 3, state: 'idle' }), { ...testSettings, idleTtlMs: null }, now);
  assert.equal(keepIdle.deadlines.idleUntil, null, 'a pool that keeps idle workers has no idle TTL');

  const draining = { ...at('idle'), drainRequested: true };
  adoptRegistryRow(draining, change({}), testSettings, now);
  assert.equal(draining.deadlines.drainBy, now + testSettings.drainTimeoutMs, 'a claim of a worker asked to drain');

  const lost = at('claimed');
  adoptRegistryRow(lost, change({ epoch: 3, state: 'lost', failureReason: 'activation_failed' }), testSettings, now);
  assert.deepEqual([lost.state, lost.failureReason], ['lost', 'activation_failed']);
});

test('only a change above the epoch the workflow holds is news', () => {
  const s = { ...at('claimed'), epoch: 3 };
  assert.equal(isNewerChange(s, change({ epoch: 4 })), true);
  assert.equal(isNewerChange(s, change({ epoch: 3 })), false, 'a duplicate');
  assert.equal(isNewerChange(s, change({ epoch: 2 })), false, 'late, from another replica');
});
