// The spawn circuit breaker's rules, driven directly (the pool workflow only calls these).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  advanceBreaker,
  breakerWakeAt,
  closedBreaker,
  recordSpawnFailure,
  recordSpawnSuccess,
  spawnAllowance,
} from '../../src/workflows/pool/spawn-breaker';
import type { SpawnBreaker } from '../../src/common';

const settings = { failureThreshold: 3, cooldownMs: 60_000, successThreshold: 2 };

test('closed → open after N consecutive failures; a success in between resets the count', () => {
  let b = closedBreaker();
  b = recordSpawnFailure(b, settings, 'a', 0, 1);
  b = recordSpawnFailure(b, settings, 'b', 0, 1);
  b = recordSpawnSuccess(b, settings, 'c');
  assert.equal(b.consecutiveFailures, 0);
  for (const id of ['d', 'e']) b = recordSpawnFailure(b, settings, id, 1_000, 1);
  assert.equal(b.state, 'closed');
  b = recordSpawnFailure(b, settings, 'f', 2_000, 1);
  assert.deepEqual([b.state, b.openedAt, spawnAllowance(b)], ['open', 2_000, 0]);
  assert.equal(breakerWakeAt(b, settings), 62_000);
});

test('open → half-open after the cooldown, or at once for a new spec generation', () => {
  const opened = { ...closedBreaker(), state: 'open' as const, openedAt: 0, openedAtGeneration: 1 };
  assert.equal(advanceBreaker(opened, settings, 59_999, 1).state, 'open');
  assert.equal(advanceBreaker(opened, settings, 60_000, 1).state, 'half_open');
  assert.equal(advanceBreaker(opened, settings, 1, 2).state, 'half_open', 'a fixed spec earns a probe now');
});

test('half-open allows exactly one probe; only its verdict counts; M successes close, a failure re-opens', () => {
  let b = advanceBreaker(
    { ...closedBreaker(), state: 'open', openedAt: 0, openedAtGeneration: 1 },
    settings,
    60_000,
    1,
  );
  assert.equal(spawnAllowance(b), 1);
  b = { ...b, probeWorkerId: 'p1' };
  assert.equal(spawnAllowance(b), 0, 'no second spawn while the probe runs');
  b = recordSpawnFailure(b, settings, 'straggler', 61_000, 1);
  assert.equal(b.state, 'half_open', 'a worker from before the breaker opened does not decide');
  b = recordSpawnSuccess(b, settings, 'p1');
  assert.deepEqual([b.state, b.probeSuccesses, spawnAllowance(b)], ['half_open', 1, 1]);
  b = recordSpawnSuccess({ ...b, probeWorkerId: 'p2' }, settings, 'p2');
  assert.equal(b.state, 'closed');

  let again: SpawnBreaker = {
    ...advanceBreaker({ ...closedBreaker(), state: 'open', openedAt: 0, openedAtGeneration: 1 }, settings, 60_000, 1),
    probeWorkerId: 'p3',
  };
  again = recordSpawnFailure(again, settings, 'p3', 70_000, 1);
  assert.deepEqual([again.state, again.openedAt], ['open', 70_000]);
});
