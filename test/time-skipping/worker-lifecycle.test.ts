// workerLifecycleWorkflow on the time-skipping test server, activities mocked (LifecycleWorld):
// every timer path, every failure reason, the validators, the fence, cancellation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { podFailureReasons, nonRetryableFailureReasons } from '../../src/lifecycle/failure-reasons';
import { corralStateKey, corralTenantKey } from '../../src/workflows/search-attributes';
import { claimUpdate, describeQuery, drainUpdate, releaseUpdate } from '../../src/workflows/worker-lifecycle/messages';
import {
  createLifecycleWorker,
  day,
  hour,
  minute,
  newWorkerId,
  recordHistory,
  registerSearchAttributes,
  rejectionOf,
  startLifecycle,
  type LifecycleHandle,
} from '../harness/lifecycle-env';
import { LifecycleWorld } from '../harness/lifecycle-world';
import { createTimeSkippingEnv } from '../harness/time-skipping';

const taskQueue = 'lifecycle-time-skipping';
let env: TestWorkflowEnvironment;
let world: LifecycleWorld;
let worker: Worker;
let running: Promise<void>;

before(async () => {
  env = await createTimeSkippingEnv();
  await registerSearchAttributes(env);
  world = new LifecycleWorld({
    unlock: () => env.connection.testService.unlockTimeSkipping({}),
    lock: () => env.connection.testService.lockTimeSkipping({}),
  });
  worker = await createLifecycleWorker(env, taskQueue, world);
  running = worker.run();
});
after(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
});

/** Waits (without skipping time) until the workflow reports `state`. */
async function until(handle: LifecycleHandle, state: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const d = await handle.query(describeQuery);
    if (d.state === state) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`worker never reached ${state}`);
}

const ops = (workerId: string) =>
  world.trail(workerId).map((t) => `${t.from ?? '∅'}→${t.to}:${t.operation}@${t.epochAfter}`);

describe('a worker life', () => {
  test('spawn → idle → claim → hot_idle → same-tenant reuse → hot-idle TTL → retired', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = (await handle.query(describeQuery)).workerId;
    await until(handle, 'idle');

    const lease = await handle.executeUpdate(claimUpdate, { args: [{ tenant: 'acme', requestId: 'r1' }] });
    assert.deepEqual(lease, { workerId, epoch: 2, endpoint: `http://web-${workerId}-1.test:8080`, tenant: 'acme' });
    const again = await handle.executeUpdate(claimUpdate, { args: [{ tenant: 'acme', requestId: 'r1' }] });
    assert.deepEqual(again, lease, 'the same requestId gets the same lease');

    const described = await handle.describe();
    assert.equal(described.typedSearchAttributes.get(corralStateKey), 'claimed');
    assert.equal(described.typedSearchAttributes.get(corralTenantKey), 'acme');

    assert.deepEqual(await handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: 2 }] }), {
      state: 'hot_idle',
      epoch: 3,
    });
    const reuse = await handle.executeUpdate(claimUpdate, { args: [{ tenant: 'acme', requestId: 'r2' }] });
    assert.equal(reuse.epoch, 4);
    await handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: 4 }] });

    const result = await handle.result(); // the hot-idle TTL (15 min) passes in skipped time
    assert.deepEqual(result, { workerId, state: 'retired', epoch: 5, failureReason: null });
    assert.deepEqual(ops(workerId), [
      '∅→spawning:create@1',
      'spawning→activating:activate@1',
      'activating→idle:ready@1',
      'idle→claimed:claim@2',
      'claimed→hot_idle:release@3',
      'hot_idle→claimed:claim@4',
      'claimed→hot_idle:release@5',
      'hot_idle→draining:drain@5',
      'draining→retired:retire@5',
    ]);
    const activations = world
      .callsOf('activateWorker', workerId)
      .map((c) => c.input as { epoch: number; tenant: string | null });
    assert.deepEqual(
      activations.map((a) => [a.epoch, a.tenant]),
      [
        [1, null],
        [2, 'acme'],
        [3, 'acme'],
        [4, 'acme'],
        [5, 'acme'],
      ],
      'every change of holder reaches the worker with its epoch',
    );
    assert.equal(world.pods.size === 0 || ![...world.pods.values()].some((p) => p.workerId === workerId), true);
    assert.equal(world.callsOf('requestWorkerDrain', workerId).length, 1);
    await recordHistory(handle, 'life-hot-idle-reuse');
  });
});
