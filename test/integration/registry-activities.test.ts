// The registry activities on a real Postgres: JSON-safe answers, and every miss typed as the
// workflow needs it — FenceMiss (non-retryable, with expected and actual), a missing row, a
// refused move or bad input (non-retryable), an unreachable store (retryable).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import {
  createRegistryActivities,
  type FenceMissDetails,
  type RegistryActivities,
} from '../../src/activities/registry-activities';
import { createRegistryPool } from '../../src/registry/database';
import { WorkerLifecycleStore } from '../../src/registry/lifecycle-store';
import { ClaimStore } from '../../src/registry/claim-store';
import { useTestRegistry, type TestRegistry } from '../harness/registry';

let registry: TestRegistry;
let activities: RegistryActivities;

before(async () => {
  registry = await useTestRegistry();
  activities = createRegistryActivities(registry.store, new ClaimStore(registry.db), { claimAckWindowMs: 15_000 });
});

after(async () => {
  await registry?.close();
});

function failureOf(type: string, nonRetryable: boolean) {
  return (err: unknown) => err instanceof ApplicationFailure && err.type === type && err.nonRetryable === nonRetryable;
}

test('register is idempotent and every answer survives a JSON round trip unchanged', async () => {
  const first = await activities.registerWorker({
    workerId: 'ra1',
    pool: 'p',
    image: 'img:1',
    origin: 'lifecycle_workflow',
  });
  const again = await activities.registerWorker({
    workerId: 'ra1',
    pool: 'p',
    image: 'img:1',
    origin: 'lifecycle_workflow',
  });
  assert.deepEqual(again, first);
  assert.deepEqual(JSON.parse(JSON.stringify(first)), first, 'plain JSON: what a workflow receives is what was sent');
  const expiry = new Date(Date.now() + 3_600_000).toISOString();
  const activating = await activities.transitionWorker({
    workerId: 'ra1',
    expected: { epoch: 1, states: ['spawning'] },
    to: 'activating',
    patch: { endpoint: 'http://127.0.0.1:9', credentialVersion: 1, credentialExpiresAt: expiry },
    operation: 'ready',
    origin: 'lifecycle_workflow',
  });
  assert.equal(activating.state, 'activating');
  assert.equal(activating.credentialExpiresAt, expiry);
  assert.deepEqual(await activities.readWorker('ra1'), activating);
  assert.equal(await activities.readWorker('nobody'), null);
});

test('a stale epoch or state is a non-retryable FenceMiss carrying expected, actual and the row', async () => {
  await registry.seedWorker({ id: 'ra2', state: 'idle', epoch: 5 });
  const attempt = (epoch: number, states: ('idle' | 'claimed')[]) =>
    activities.transitionWorker({
      workerId: 'ra2',
      expected: { epoch, states },
      to: 'draining',
      operation: 'drain',
      origin: 'lifecycle_workflow',
    });
  let caught: unknown;
  await attempt(4, ['idle']).catch((err: unknown) => (caught = err));
  assert.ok(failureOf('FenceMiss', true)(caught), String(caught));
  const { row, ...details } = (caught as ApplicationFailure).details?.[0] as FenceMissDetails;
  assert.deepEqual(details, {
    workerId: 'ra2',
    outcome: 'fence_miss_epoch',
    expected: { epoch: 4, states: ['idle'] },
    to: 'draining',
    actual: { epoch: 5, state: 'idle' },
  });
  // The row as read after the miss: the workflow adopts it without another round trip.
  assert.deepEqual(row, await activities.readWorker('ra2'));
  await assert.rejects(attempt(5, ['claimed']), (err: unknown) => {
    const d = (err as ApplicationFailure).details?.[0] as FenceMissDetails;
    return failureOf('FenceMiss', true)(err) && d.outcome === 'fence_miss_state' && d.actual.state === 'idle';
  });
  assert.equal((await activities.readWorker('ra2'))?.state, 'idle', 'nothing was overwritten');
});

test('a missing row, a refused move and bad input fail for good; each names what was wrong', async () => {
  await assert.rejects(
    activities.transitionWorker({
      workerId: 'ghost',
      expected: { epoch: 1, states: ['idle'] },
      to: 'draining',
      operation: 'drain',
      origin: 'janitor',
    }),
    failureOf('WorkerRowMissing', true),
  );
  await registry.seedWorker({ id: 'ra3', state: 'draining', epoch: 2 });
  await assert.rejects(
    activities.transitionWorker({
      workerId: 'ra3',
      expected: { epoch: 2, states: ['draining'] },
      to: 'idle',
      operation: 'release',
      origin: 'client',
    }),
    (err: unknown) =>
      failureOf('TransitionNotAllowedError', true)(err) && /draining → idle/.test((err as Error).message),
  );
  await assert.rejects(
    activities.transitionWorker({
      workerId: 'ra3',
      expected: { epoch: -1, states: ['draining'] },
      to: 'retired',
      operation: 'retire',
      origin: 'client',
    }),
    (err: unknown) =>
      failureOf('RegistryInputError', true)(err) &&
      ((err as ApplicationFailure).details?.[0] as { field: string }).field === 'expected.epoch',
  );
});

test('an unreachable registry is a retryable RegistryStoreError, for writes and reads', async () => {
  const down = createRegistryPool({ connectionString: 'postgres://corral@127.0.0.1:1/nowhere', maxConnections: 1 });
  const offline = createRegistryActivities(new WorkerLifecycleStore(down), new ClaimStore(down), {
    claimAckWindowMs: 15_000,
  });
  try {
    await assert.rejects(
      offline.transitionWorker({
        workerId: 'x',
        expected: { epoch: 1, states: ['idle'] },
        to: 'draining',
        operation: 'drain',
        origin: 'client',
      }),
      failureOf('RegistryStoreError', false),
    );
    await assert.rejects(offline.readWorker('x'), failureOf('RegistryStoreError', false));
  } finally {
    await down.end();
  }
});
