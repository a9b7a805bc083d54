// workerLifecycleWorkflow on the time-skipping test server, activities mocked (LifecycleWorld):
// every timer path, every failure reason, the validators, the fence, cancellation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  nonRetryableFailureReasons,
  podFailureReasons,
  type PodFailureReason,
} from '../../src/lifecycle/failure-reasons';
import { waitFor } from '../../src/embedded/wait';
import { corralStateKey, corralTenantKey } from '../../src/workflows/search-attributes';
import { claimUpdate, describeQuery, drainUpdate, releaseUpdate } from '../../src/workflows/worker-lifecycle/messages';
import {
  day,
  hour,
  minute,
  newWorkerId,
  recordHistory,
  useLifecycleTimeSkipping,
  waitForState,
  rejectionOf,
  startLifecycle,
  type LifecycleHandle,
} from '../harness/lifecycle-env';
import type { LifecycleWorld } from '../harness/lifecycle-world';

const taskQueue = 'lifecycle-time-skipping';
let env: TestWorkflowEnvironment;
let world: LifecycleWorld;
let stop: () => Promise<void>;

before(async () => {
  ({ env, world, stop } = await useLifecycleTimeSkipping(taskQueue));
});
after(async () => {
  await stop?.();
});

/** Ends a test's worker through its own cancellation path, so its cleanup runs like any other. */
async function endLife(handle: LifecycleHandle): Promise<void> {
  await handle.cancel();
  await assert.rejects(handle.result(), /cancel/i);
}

const ops = (workerId: string) =>
  world.trail(workerId).map((t) => `${t.from ?? '∅'}→${t.to}:${t.operation}@${t.epochAfter}`);

describe('a worker life', () => {
  test('spawn → idle → claim → hot_idle → same-tenant reuse → hot-idle TTL → retired', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = (await handle.query(describeQuery)).workerId;
    await waitForState(handle, 'idle');

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

/** The lease a claim returned, for release. */
async function claim(handle: LifecycleHandle, tenant: string, requestId: string) {
  return handle.executeUpdate(claimUpdate, { args: [{ tenant, requestId }] });
}

async function workerIdOf(handle: LifecycleHandle): Promise<string> {
  return (await handle.query(describeQuery)).workerId;
}

const podsOf = (workerId: string) => [...world.pods.values()].filter((p) => p.workerId === workerId);

describe('cold path', () => {
  test('a worker spawned for a claim goes from activating straight to claimed, and keeps that claim', async () => {
    const handle = await startLifecycle(env, taskQueue, { boundClaim: { tenant: 'acme', requestId: 'cold-1' } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'claimed');
    assert.deepEqual(ops(workerId).slice(-1), ['activating→claimed:claim@2']);
    const lease = await claim(handle, 'acme', 'cold-1');
    assert.deepEqual([lease.epoch, lease.tenant], [2, 'acme'], 'the claim it was spawned for gets its lease');
    await endLife(handle);
  });
});

describe('validators', () => {
  test('claim, release and drain are refused with a typed reason, and nothing is written', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const writes = () => world.callsOf('transitionWorker', workerId).length;
    let before = writes();

    assert.equal(await rejectionOf(claim(handle, ' ', 'r1')), 'InvalidRequest');
    assert.equal(await rejectionOf(claim(handle, 'acme', '')), 'InvalidRequest');
    assert.equal(
      await rejectionOf(handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: 1 }] })),
      'WrongState',
      'an idle worker has nothing to release',
    );
    assert.equal(writes(), before, 'refused updates write nothing');

    const lease = await claim(handle, 'acme', 'r1');
    before = writes();
    assert.equal(await rejectionOf(claim(handle, 'globex', 'r2')), 'WrongState');
    assert.equal(await rejectionOf(claim(handle, 'acme', 'r2')), 'WrongState', 'a second claim by the same tenant');
    assert.equal(
      await rejectionOf(handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: lease.epoch - 1 }] })),
      'StaleLease',
    );
    assert.equal(
      await rejectionOf(
        handle.executeUpdate(releaseUpdate, { args: [{ workerId: 'someoneelse', epoch: lease.epoch }] }),
      ),
      'InvalidRequest',
    );
    assert.equal(await rejectionOf(handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: -1 }] })), 'InvalidRequest');
    assert.equal(writes(), before, 'refused updates write nothing');

    const draining = await handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: hour }] });
    assert.equal(draining.state, 'claimed', 'the tenant keeps its worker until release or the drain timeout');
    assert.equal(draining.drainRequested, true);
    assert.equal(await rejectionOf(handle.executeUpdate(drainUpdate, { args: [{}] })), 'Draining');
    assert.equal(await rejectionOf(claim(handle, 'acme', 'r3')), 'Draining');

    // Release of a worker asked to drain retires it, whatever the pool's release policy.
    assert.deepEqual(await handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: lease.epoch }] }), {
      state: 'draining',
      epoch: lease.epoch + 1,
    });
    assert.equal((await handle.result()).state, 'retired');
    assert.deepEqual(podsOf(workerId), []);
  });

  test('concurrent claims: exactly one wins, the others are refused, one claim written', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const outcomes = await Promise.allSettled(
      ['acme', 'globex', 'initech', 'umbrella'].map((tenant) => claim(handle, tenant, `req-${tenant}`)),
    );
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    assert.equal(won.length, 1, JSON.stringify(outcomes.map((o) => o.status)));
    for (const lost of outcomes.filter((o) => o.status === 'rejected')) {
      assert.equal(await rejectionOf(Promise.reject((lost as PromiseRejectedResult).reason)), 'WrongState');
    }
    assert.equal(world.trail(workerId).filter((t) => t.operation === 'claim').length, 1);
    await endLife(handle);
  });

  test('a hot_idle worker is reused by its tenant and refused to any other', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { hotIdleTtlMs: 2 * hour } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const lease = await claim(handle, 'acme', 'r1');
    await handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: lease.epoch }] });
    assert.equal(await rejectionOf(claim(handle, 'globex', 'g1')), 'WrongState');
    const reused = await claim(handle, 'acme', 'r2');
    assert.equal(reused.tenant, 'acme');
    await endLife(handle);
  });

  test('recycle returns a released worker to idle, unbound from its tenant', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { releasePolicy: 'recycle' } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const lease = await claim(handle, 'acme', 'r1');
    assert.deepEqual(await handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: lease.epoch }] }), {
      state: 'idle',
      epoch: lease.epoch + 1,
    });
    const described = await handle.query(describeQuery);
    assert.equal(described.tenant, null);
    assert.equal((await handle.describe()).typedSearchAttributes.get(corralTenantKey), undefined);
    const other = await claim(handle, 'globex', 'g1');
    assert.equal(other.tenant, 'globex');
    await endLife(handle);
  });
});

describe('timers', () => {
  test('idle TTL: an unclaimed worker is retired when its TTL ends', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const { deadlines } = await handle.query(describeQuery);
    assert.ok(deadlines.idleUntil, 'the idle deadline is an absolute time');
    const result = await handle.result();
    assert.equal(result.state, 'retired');
    assert.ok((await env.currentTimeMs()) >= Date.parse(deadlines.idleUntil));
    // Credentials (1 h TTL, 5 min lead) were refreshed every 55 min of the 6 h, each a new epoch.
    const refreshes = world.trail(workerId).filter((t) => t.operation === 'refresh_credentials');
    assert.equal(refreshes.length, 6);
    assert.deepEqual(ops(workerId).slice(-2), ['idle→draining:drain@7', 'draining→retired:retire@7']);
    assert.deepEqual(podsOf(workerId), []);
  });

  test('max lifetime drains even a claimed worker', async () => {
    const handle = await startLifecycle(env, taskQueue, {
      settings: { maxLifetimeMs: 2 * hour, idleTtlMs: null, credentialTtlMs: 4 * hour },
    });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await claim(handle, 'acme', 'r1');
    const result = await handle.result();
    assert.equal(result.state, 'retired');
    assert.deepEqual(ops(workerId).slice(-2), ['claimed→draining:drain@2', 'draining→retired:retire@2']);
  });

  test('drain timeout: a claimed worker asked to drain and never released is drained when it ends', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await claim(handle, 'acme', 'r1');
    const described = await handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: 10 * minute }] });
    assert.ok(described.deadlines.drainBy);
    assert.equal((await handle.result()).state, 'retired');
    assert.ok((await env.currentTimeMs()) >= Date.parse(described.deadlines.drainBy));
    assert.deepEqual(ops(workerId).slice(-2), ['claimed→draining:drain@2', 'draining→retired:retire@2']);
  });

  test('credential refresh: before expiry; idle moves the epoch, a claim keeps its lease', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const first = await handle.query(describeQuery);
    assert.equal(first.credential?.version, 1);
    assert.equal(
      Date.parse(first.deadlines.refreshAt ?? ''),
      Date.parse(first.credential?.expiresAt ?? '') - 5 * minute,
      'refreshed the lead time before expiry',
    );

    await env.sleep(56 * minute);
    const refreshed = await handle.query(describeQuery);
    assert.equal(refreshed.credential?.version, 2);
    assert.equal(refreshed.epoch, 2, 'an idle refresh bumps the epoch');
    const rotations = world
      .callsOf('rotateCredentials', workerId)
      .map((c) => c.input as { epoch: number; version: number });
    assert.deepEqual(
      rotations.map((r) => [r.epoch, r.version]),
      [[2, 2]],
    );
    const lastActivation = world.callsOf('activateWorker', workerId).at(-1)?.input as { epoch: number };
    assert.equal(lastActivation.epoch, 2, 're-activated with the new epoch');

    const lease = await claim(handle, 'acme', 'r1');
    await env.sleep(hour);
    const duringClaim = await handle.query(describeQuery);
    assert.equal(duringClaim.credential?.version, 3, 'refreshed during the claim');
    assert.equal(duringClaim.epoch, lease.epoch, "the tenant's lease stays valid");
    assert.deepEqual(await handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: lease.epoch }] }), {
      state: 'hot_idle',
      epoch: lease.epoch + 1,
    });
    assert.ok(!JSON.stringify(await handle.fetchHistory()).includes('token'), 'no token field anywhere in history');
    await recordHistory(handle, 'credential-refresh');
    await endLife(handle);
  });

  test('spawn deadline: a pod never ready is deadline_exceeded and respawned', async () => {
    const workerId = newWorkerId();
    world.readiness.set(workerId, [{ status: 'hang' }]);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: { spawnDeadlineMs: 3_000 } });
    await waitForState(handle, 'idle');
    const respawn = world.trail(workerId).find((t) => t.operation === 'respawn');
    assert.equal(respawn?.failureReason, 'deadline_exceeded');
    assert.equal((await handle.query(describeQuery)).spawnAttempt, 2);
    assert.deepEqual(
      podsOf(workerId).map(() => 'pod'),
      ['pod'],
      'the first pod was deleted before the respawn',
    );
    await endLife(handle);
  });

  test('activation deadline: a worker that never takes its identity is activation_failed and respawned', async () => {
    const workerId = newWorkerId();
    world.activations.set(workerId, ['hang']);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: { activationDeadlineMs: 2_000 } });
    await waitForState(handle, 'idle');
    assert.deepEqual(
      world
        .trail(workerId)
        .map((t) => `${t.from}→${t.to}:${t.failureReason}`)
        .slice(1, 4),
      ['spawning→activating:null', 'activating→spawning:activation_failed', 'spawning→activating:activation_failed'],
    );
    await endLife(handle);
  });
});

describe('zombies', () => {
  test('retryable failures respawn with spawnAttempt + 1 within the budget', async () => {
    const workerId = newWorkerId();
    world.readiness.set(workerId, [
      { status: 'failed', reason: 'pod_crashed' },
      { status: 'failed', reason: 'image_pull_backoff' },
    ]);
    const handle = await startLifecycle(env, taskQueue, { workerId });
    await waitForState(handle, 'idle');
    assert.deepEqual(
      world
        .trail(workerId)
        .filter((t) => t.operation === 'respawn')
        .map((t) => t.failureReason),
      ['pod_crashed', 'image_pull_backoff'],
    );
    assert.deepEqual(
      world
        .callsOf('spawnWorkerPod', workerId)
        .map((c) => (c.input as { spec: { spawnAttempt: number } }).spec.spawnAttempt),
      [1, 2, 3],
    );
    assert.deepEqual(
      world.callsOf('deleteWorkerPod', workerId).map((c) => (c.input as { spawnAttempt: number }).spawnAttempt),
      [1, 2],
    );
    await recordHistory(handle, 'respawn-then-ready');
    await endLife(handle);
  });

  const retryable = podFailureReasons.filter((r) => !nonRetryableFailureReasons.includes(r));
  for (const reason of retryable) {
    test(`${reason}: respawned until maxSpawnAttempts, then lost with the reason`, async () => {
      const workerId = newWorkerId();
      world.readiness.set(workerId, [
        { status: 'failed', reason },
        { status: 'failed', reason },
      ]);
      const handle = await startLifecycle(env, taskQueue, { workerId, settings: { maxSpawnAttempts: 2 } });
      const result = await handle.result();
      assert.deepEqual(result, { workerId, state: 'lost', epoch: 1, failureReason: reason });
      assert.equal(world.callsOf('spawnWorkerPod', workerId).length, 2);
      assert.deepEqual(podsOf(workerId), [], 'every attempt cleaned up');
      assert.deepEqual(ops(workerId).slice(-2), ['spawning→spawning:respawn@1', 'spawning→lost:mark_lost@1']);
      if (reason === 'pod_oom_killed') await recordHistory(handle, 'lost-after-respawns');
    });
  }

  for (const reason of nonRetryableFailureReasons) {
    test(`${reason}: lost at once, no respawn`, async () => {
      const workerId = newWorkerId();
      if (reason === 'type_mismatch') world.activations.set(workerId, ['type_mismatch']);
      else world.readiness.set(workerId, [{ status: 'failed', reason: reason as PodFailureReason }]);
      const handle = await startLifecycle(env, taskQueue, { workerId, settings: { maxSpawnAttempts: 5 } });
      const result = await handle.result();
      assert.deepEqual(result, { workerId, state: 'lost', epoch: 1, failureReason: reason });
      assert.equal(world.callsOf('spawnWorkerPod', workerId).length, 1);
      assert.ok(!ops(workerId).some((o) => o.includes('respawn')));
      assert.deepEqual(podsOf(workerId), []);
    });
  }

  test('a failed health verdict ends a serving worker lost with its reason', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { healthIntervalMs: 10_000 } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await claim(handle, 'acme', 'r1');
    world.failHealth(workerId, 'pod_oom_killed');
    assert.deepEqual(await handle.result(), { workerId, state: 'lost', epoch: 2, failureReason: 'pod_oom_killed' });
    assert.deepEqual(podsOf(workerId), []);
    await recordHistory(handle, 'health-lost');
  });

  test('a worker asked to drain is not declared lost for failing probes', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { healthIntervalMs: 10_000 } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await claim(handle, 'acme', 'r1');
    await handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: day }] });
    world.failHealth(workerId, 'health_check_failed');
    assert.deepEqual(await handle.result(), { workerId, state: 'retired', epoch: 2, failureReason: null });
  });
});

describe('the fence', () => {
  test('a FenceMiss converges on the registry row: no retry, no overwrite', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    // The janitor reaps the row (epoch 1 → 2) behind the workflow's back, just as a claim arrives.
    world.beforeTransition.set(workerId, () => world.moveBehindTheWorkflow(workerId, 'retired'));
    assert.equal(await rejectionOf(claim(handle, 'acme', 'r1')), 'StaleLease');
    assert.deepEqual(await handle.result(), { workerId, state: 'retired', epoch: 2, failureReason: null });
    const writes = world.callsOf('transitionWorker', workerId).map((c) => c.input as { expected: { epoch: number } });
    assert.equal(writes.at(-1)?.expected.epoch, 1, 'the missed write was the last write: nothing after it');
    assert.equal(world.callsOf('readWorker', workerId).length, 1, 're-read once');
    assert.deepEqual(ops(workerId).slice(-1), ['idle→retired:reap@2'], "the janitor's decision stands");
    assert.deepEqual(podsOf(workerId), [], 'the pod goes with the reaped row');
    await recordHistory(handle, 'fence-miss');
  });

  test('after adopting a newer epoch the workflow carries on with it', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    world.beforeTransition.set(workerId, () => world.moveBehindTheWorkflow(workerId, 'idle'));
    assert.equal(await rejectionOf(claim(handle, 'acme', 'r1')), 'StaleLease');
    const lease = await claim(handle, 'acme', 'r2');
    assert.equal(lease.epoch, 3, 'claimed from the adopted epoch 2');
    await endLife(handle);
  });
});

describe('cancellation', () => {
  test('cancelled during a spawn: the pod and secret still go and the row ends retired', async () => {
    const workerId = newWorkerId();
    world.readiness.set(workerId, [{ status: 'hang' }]);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: { spawnDeadlineMs: 10 * minute } });
    await waitFor(() => world.callsOf('awaitWorkerReady', workerId).length > 0, {
      what: 'the readiness wait to start',
      timeoutMs: 30_000,
      intervalMs: 20,
    });
    await handle.cancel();
    await assert.rejects(handle.result(), /cancel/i);
    assert.deepEqual(podsOf(workerId), []);
    assert.equal(world.rows.get(workerId)?.state, 'retired');
    await recordHistory(handle, 'cancel-during-spawn');
  });

  test('cancelled while idle: the pod goes and the row ends retired', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await handle.cancel();
    await assert.rejects(handle.result(), /cancel/i);
    assert.deepEqual(podsOf(workerId), []);
    assert.deepEqual(ops(workerId).slice(-1), ['idle→retired:retire@1']);
  });
});
