import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bumpsEpoch,
  allowedTransitions,
  canTransition,
  nonTerminalStates,
  terminalStates,
  workerStates,
} from '../../src/common';

test('terminal states go nowhere; every non-terminal state can drain, be lost or be reaped', () => {
  for (const s of terminalStates) assert.deepEqual(allowedTransitions[s], []);
  for (const s of nonTerminalStates) {
    for (const to of ['lost', 'retired'] as const) assert.ok(canTransition(s, to), `${s} → ${to}`);
    if (s !== 'draining') assert.ok(canTransition(s, 'draining'), `${s} → draining`);
  }
  for (const s of workerStates) for (const to of allowedTransitions[s]) assert.ok(workerStates.includes(to));
});

test('state machine edges: no claim from spawning/draining, no way back from draining, hot reuse only via hot_idle', () => {
  assert.equal(canTransition('spawning', 'claimed'), false);
  assert.equal(canTransition('draining', 'claimed'), false);
  assert.equal(canTransition('draining', 'idle'), false);
  assert.equal(canTransition('idle', 'hot_idle'), false);
  assert.equal(canTransition('claimed', 'hot_idle'), true);
  assert.equal(canTransition('hot_idle', 'claimed'), true);
});

test('the epoch moves on a change of holder and on terminal decisions by anyone but the worker workflow', () => {
  assert.equal(bumpsEpoch('claim', 'client', 'claimed'), true);
  assert.equal(bumpsEpoch('release', 'lifecycle_workflow', 'hot_idle'), true);
  assert.equal(bumpsEpoch('refresh_credentials', 'lifecycle_workflow', 'idle'), true);
  // A refresh during a claim keeps the tenant's lease valid: same holder, same epoch.
  assert.equal(bumpsEpoch('refresh_credentials', 'lifecycle_workflow', 'claimed'), false);
  assert.equal(bumpsEpoch('reap', 'janitor', 'retired'), true);
  assert.equal(bumpsEpoch('mark_lost', 'janitor', 'lost'), true);
  assert.equal(bumpsEpoch('retire', 'lifecycle_workflow', 'retired'), false);
  assert.equal(bumpsEpoch('ready', 'lifecycle_workflow', 'idle'), false);
});
