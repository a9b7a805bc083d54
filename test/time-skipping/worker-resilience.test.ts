// workerLifecycleWorkflow's resilience (patch corral-resilience) on the time-skipping test server,
// activities mocked (LifecycleWorld): a drain cuts a start short instead of waiting for it; a
// serving worker is asked to drain with its id and epoch and waited for up to the drain timeout;
// a registry or runtime outage longer than the old 10-minute bound loses no worker and fails no
// workflow. docs/decisions/0019-prompt-drains-and-failover.md
//
// Outages here last 12 minutes of workflow time: past `localRetryThreshold` the workflow waits
// between attempts on timers, which the test server skips; on the landed code (a 10-minute
// schedule-to-close on every registry call, rotation failures lost at once) these tests fail.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowUpdateStage } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { waitFor } from '../../src/embedded/wait';
import { drainUpdate } from '../../src/common';
import {
  hour,
  minute,
  newWorkerId,
  recordHistory,
  startLifecycle,
  useLifecycleTimeSkipping,
  waitForEpoch,
  waitForState,
  type LifecycleHandle,
} from '../harness/lifecycle-env';
import type { LifecycleWorld } from '../harness/lifecycle-world';

const taskQueue = 'lifecycle-resilience';
let env: TestWorkflowEnvironment;
let world: LifecycleWorld;
let stop: () => Promise<void>;

before(async () => {
  ({ env, world, stop } = await useLifecycleTimeSkipping(taskQueue));
});
after(async () => {
  await stop?.();
});

const ops = (workerId: string) =>
  world.trail(workerId).map((t) => `${t.from ?? '∅'}→${t.to}:${t.operation}@${t.epochAfter}`);
const podsOf = (workerId: string) => [...world.pods.values()].filter((p) => p.workerId === workerId);

async function endLife(handle: LifecycleHandle): Promise<void> {
  await handle.cancel();
  await assert.rejects(handle.result(), /cancel/i);
}

/** Waits until the workflow has made `count` calls of `name` for `workerId` (it is inside the last one). */
async function waitForCalls(name: Parameters<LifecycleWorld['callsOf']>[0], workerId: string, count = 1) {
  await waitFor(() => world.callsOf(name, workerId).length >= count, {
    what: `${count} ${name} call(s) for ${workerId}`,
    timeoutMs: 60_000,
    intervalMs: 20,
  });
}

describe('a drain cuts a start short', () => {
  // Every spawn waits an hour for its deadline here: only the drain can end these starts promptly.
  const slowStart = { spawnDeadlineMs: hour, activationDeadlineMs: hour };

  test('while the create hangs: the create is cancelled and awaited, what exists deleted, the row retired', async () => {
    const workerId = newWorkerId();
    world.spawns.set(workerId, ['hang']);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: slowStart });
    await waitForCalls('spawnWorkerPod', workerId);
    const answer = await handle.executeUpdate(drainUpdate, { args: [{}] });
    assert.equal(answer.drainRequested, true);
    const result = await handle.result();
    assert.equal(result.state, 'retired');
    assert.deepEqual(ops(workerId), ['∅→spawning:create@1', 'spawning→draining:drain@1', 'draining→retired:retire@1']);
    assert.equal(world.callsOf('spawnWorkerPod', workerId).length, 1, 'the cancelled create is not retried');
    await recordHistory(handle, 'resilient-drain-while-starting');
    assert.ok(world.callsOf('deleteWorkerPod', workerId).length >= 1, 'what the attempt made is deleted');
    assert.deepEqual(podsOf(workerId), []);
  });

  test('while the pod is not ready: the wait is cancelled and the pod deleted, without waiting for the deadline', async () => {
    const workerId = newWorkerId();
    world.readiness.set(workerId, [{ status: 'hang' }]);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: slowStart });
    await waitForCalls('awaitWorkerReady', workerId);
    await handle.executeUpdate(drainUpdate, { args: [{}] });
    assert.equal((await handle.result()).state, 'retired');
    assert.deepEqual(ops(workerId).slice(1), ['spawning→draining:drain@1', 'draining→retired:retire@1']);
    assert.deepEqual(podsOf(workerId), [], 'the pod that never became ready is gone');
    assert.equal(
      world.trail(workerId).some((t) => t.operation === 'respawn'),
      false,
      'a drained start is not a failed spawn',
    );
  });

  test('while the worker will not take its identity: activating → draining → retired', async () => {
    const workerId = newWorkerId();
    world.activations.set(workerId, ['hang']);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: slowStart });
    await waitForState(handle, 'activating');
    await waitForCalls('activateWorker', workerId);
    await handle.executeUpdate(drainUpdate, { args: [{}] });
    assert.equal((await handle.result()).state, 'retired');
    assert.deepEqual(ops(workerId).slice(-3), [
      'spawning→activating:activate@1',
      'activating→draining:drain@1',
      'draining→retired:retire@1',
    ]);
    assert.deepEqual(podsOf(workerId), []);
  });
});

describe('a drain that comes as the start finishes', () => {
  test('while the worker joins the pool (a write no drain can cut): it serves, then drains like any serving worker', async () => {
    const workerId = newWorkerId();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // The first write (spawning → activating) passes and holds the second (activating → idle).
    world.before('transitionWorker', workerId, () => world.before('transitionWorker', workerId, () => gate));
    const handle = await startLifecycle(env, taskQueue, { workerId });
    await waitForCalls('transitionWorker', workerId, 2);
    const drain = await handle.startUpdate(drainUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED });
    release();
    const answer = await drain.result();
    assert.equal(answer.state, 'draining', 'the drain is not lost to the start that finished');
    assert.ok(world.drainMarked.has(workerId), 'the registry takes no claim on it meanwhile');
    assert.equal((await handle.result()).state, 'retired');
    assert.deepEqual(ops(workerId).slice(-3), [
      'activating→idle:ready@1',
      'idle→draining:drain@1',
      'draining→retired:retire@1',
    ]);
  });
});

describe('a serving worker is drained, then deleted', () => {
  test('asked with its id and epoch, and asked again until it reports drained; only then deleted', async () => {
    const workerId = newWorkerId();
    world.drainsBeforeDrained.set(workerId, 3);
    const handle = await startLifecycle(env, taskQueue, { workerId });
    await waitForState(handle, 'idle');
    await handle.executeUpdate(drainUpdate, { args: [{}] });
    assert.equal((await handle.result()).state, 'retired');
    const asked = world.callsOf('requestWorkerDrain', workerId).map((c) => c.input as Record<string, unknown>);
    assert.equal(asked.length, 4, 'three "still draining" answers, then drained');
    for (const request of asked) assert.deepEqual([request.workerId, request.epoch], [workerId, 1]);
    const order = world.calls
      .filter(
        (c) =>
          (c.name === 'requestWorkerDrain' || c.name === 'deleteWorkerPod') &&
          JSON.stringify(c.input).includes(workerId),
      )
      .map((c) => c.name);
    assert.equal(order.at(-1), 'deleteWorkerPod', 'the pod goes after the worker said it was drained');
    assert.equal(order.indexOf('deleteWorkerPod'), asked.length, 'not before');
    await recordHistory(handle, 'resilient-drain-waits-for-worker');
  });

  test('a worker that never finishes is deleted when the drain timeout ends', async () => {
    const workerId = newWorkerId();
    world.drainsBeforeDrained.set(workerId, Number.MAX_SAFE_INTEGER);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: { drainTimeoutMs: 2 * minute } });
    await waitForState(handle, 'idle');
    await handle.executeUpdate(drainUpdate, { args: [{}] });
    assert.equal((await handle.result()).state, 'retired');
    const asked = world.callsOf('requestWorkerDrain', workerId).length;
    // Backing off to 5 s: about 2 min / 5 s asks, never an unbounded loop.
    assert.ok(asked >= 5 && asked <= 40, `asked ${asked} times within the drain timeout`);
    assert.deepEqual(podsOf(workerId), []);
  });
});

describe('outages of any length', () => {
  test('a 12-minute registry outage over an idle TTL: the worker waits it out and retires, never lost', async () => {
    const workerId = newWorkerId();
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: { idleTtlMs: minute } });
    await waitForState(handle, 'idle');
    world.unavailable.add('transitionWorker').add('readWorker');
    const before = world.callsOf('transitionWorker', workerId).length;
    await env.sleep(12 * minute); // the TTL fires one minute in; its write fails for eleven more
    assert.ok(world.callsOf('transitionWorker', workerId).length > before + 1, 'the write was retried');
    // Read from the server and the registry, not by a query: time stands still between sleeps, so a
    // query could wait out a retry timer in real time.
    assert.equal((await handle.describe()).status.name, 'RUNNING', 'no workflow failed');
    assert.equal(world.row(workerId).state, 'idle');
    world.unavailable.clear();
    const result = await handle.result();
    assert.equal(result.state, 'retired');
    assert.equal(result.failureReason, null);
    assert.deepEqual(ops(workerId).slice(-2), ['idle→draining:drain@1', 'draining→retired:retire@1']);
    await recordHistory(handle, 'resilient-registry-outage');
  });

  test('a 12-minute runtime outage over a claimed worker’s credential refresh: the tenant keeps its worker', async () => {
    const workerId = newWorkerId();
    const handle = await startLifecycle(env, taskQueue, {
      workerId,
      settings: { credentialTtlMs: 10 * minute, credentialRefreshLeadMs: 5 * minute },
    });
    await waitForState(handle, 'idle');
    await world.apiClaim(workerId, 'acme', 'r-outage');
    await waitForEpoch(handle, 2);
    world.unavailable.add('rotateCredentials');
    await env.sleep(12 * minute); // the refresh is due 5 minutes in; the rotation fails for 7 more
    assert.ok(world.callsOf('rotateCredentials', workerId).length > 1, 'the rotation was retried');
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    const during = world.row(workerId);
    assert.deepEqual([during.state, during.tenant], ['claimed', 'acme'], 'a claimed worker is never lost to an outage');
    world.unavailable.clear();
    await env.sleep(2 * minute); // the next attempt (at most a minute away) goes through
    const after = world.row(workerId);
    assert.deepEqual([after.state, after.tenant], ['claimed', 'acme']);
    const versions = podsOf(workerId).map((p) => p.credentialVersion);
    assert.ok(versions.length === 1 && (versions[0] ?? 0) >= 2, `rotated once the runtime answered: ${versions}`);
    assert.equal(
      world.trail(workerId).some((t) => t.to === 'lost'),
      false,
    );
    await endLife(handle);
  });
});
