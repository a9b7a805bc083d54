// workerLifecycleWorkflow on the time-skipping test server, activities mocked (LifecycleWorld):
// every timer path, every failure reason, the drain validator, the fence, cancellation, and claims
// and releases as the corral API makes them (in the registry, then a `registryChanged` signal the
// workflow adopts). The legacy claim/release updates exist only for histories recorded before
// registry claims; test/time-skipping/replay.test.ts keeps those honest, and
// legacy-messages.test.ts checks that a new run refuses them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowUpdateStage } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  nonRetryableFailureReasons,
  podFailureReasons,
  type PodFailureReason,
  lifecycleRejections,
  corralStateKey,
  corralTenantKey,
  describeQuery,
  drainUpdate,
  type WorkerDescription,
} from '../../src/common';
import { waitFor } from '../../src/embedded/wait';
import {
  day,
  hour,
  minute,
  newWorkerId,
  recordHistory,
  rejectionOf,
  startLifecycle,
  useLifecycleTimeSkipping,
  waitForDescription,
  waitForEpoch,
  waitForState,
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

async function workerIdOf(handle: LifecycleHandle): Promise<string> {
  return (await handle.query(describeQuery)).workerId;
}

const podsOf = (workerId: string) => [...world.pods.values()].filter((p) => p.workerId === workerId);

/** The workflow's own activity calls for a worker (the API stand-in's work is not among them). */
const callsFor = (workerId: string) => world.calls.filter((c) => JSON.stringify(c.input).includes(workerId));

const activationsOf = (workerId: string) =>
  world
    .callsOf('activateWorker', workerId)
    .map((c) => c.input as { epoch: number; tenant: string | null })
    .map((a) => [a.epoch, a.tenant]);

async function searchAttributes(handle: LifecycleHandle): Promise<[unknown, unknown]> {
  const attributes = (await handle.describe()).typedSearchAttributes;
  return [attributes.get(corralStateKey), attributes.get(corralTenantKey)];
}

/**
 * Resolves once the workflow has handled every message sent before it: a drain update its
 * validator refuses writes nothing and is handled after the signals that came before it.
 */
async function handledSoFar(handle: LifecycleHandle): Promise<void> {
  assert.equal(
    await rejectionOf(handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: -1 }] })),
    lifecycleRejections.invalidRequest,
  );
}

const ms = (iso: string | null | undefined) => Date.parse(iso ?? '');

describe('a worker life, claims decided by the registry', () => {
  test('spawn → idle → claim adopted → release adopted → same-tenant reuse → hot-idle TTL → retired', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const workflowCalls = callsFor(workerId).length;

    await world.apiClaim(workerId, 'acme', 'r1');
    const claimed = await waitForEpoch(handle, 2);
    assert.deepEqual([claimed.state, claimed.tenant, claimed.claimRequestId], ['claimed', 'acme', 'r1']);
    assert.equal(claimed.deadlines.idleUntil, null, 'a claimed worker has no idle TTL');
    assert.deepEqual(await searchAttributes(handle), ['claimed', 'acme'], 'the Web UI sees the claim');

    await world.apiRelease(workerId, 'hot_idle');
    const released = await waitForEpoch(handle, 3);
    assert.deepEqual([released.state, released.tenant, released.claimRequestId], ['hot_idle', 'acme', null]);
    assert.equal(ms(released.deadlines.hotIdleUntil), ms(world.row(workerId).stateSince) + 15 * minute);
    assert.deepEqual(await searchAttributes(handle), ['hot_idle', 'acme']);

    await world.apiClaim(workerId, 'acme', 'r2'); // the tenant's own hot_idle worker
    assert.equal((await waitForEpoch(handle, 4)).state, 'claimed');
    await world.apiRelease(workerId, 'hot_idle');
    await waitForEpoch(handle, 5);
    assert.equal(callsFor(workerId).length, workflowCalls, 'adopting a claim or a release costs no activity');

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
    assert.deepEqual(activationsOf(workerId), [[1, null]], 'the API activated the worker for every change of holder');
    assert.deepEqual(podsOf(workerId), []);
    assert.equal(world.callsOf('requestWorkerDrain', workerId).length, 1);
    await recordHistory(handle, 'registry-claim-release');
  });
});

describe('registry changes', () => {
  test('coalesced claim → release → claim: only the final row is adopted, with no activity', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const workflowCalls = callsFor(workerId).length;

    await world.apiClaim(workerId, 'acme', 'r1', { notify: false });
    await world.apiRelease(workerId, 'recycle', { notify: false });
    await world.apiClaim(workerId, 'globex', 'g1', { notify: false });
    await world.notify(workerId); // one signal, carrying the latest row

    const adopted = await waitForEpoch(handle, 4);
    assert.deepEqual([adopted.state, adopted.tenant, adopted.claimRequestId], ['claimed', 'globex', 'g1']);
    assert.deepEqual(await searchAttributes(handle), ['claimed', 'globex']);
    assert.equal(callsFor(workerId).length, workflowCalls, 'no activity');
    const history = await handle.fetchHistory();
    const signals = history.events?.filter((e) => e.workflowExecutionSignaledEventAttributes) ?? [];
    assert.equal(signals.length, 1);
    const shown = (history.events ?? []).flatMap((e) =>
      Object.values(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).map((p) =>
        JSON.stringify(defaultPayloadConverter.fromPayload(p)),
      ),
    );
    assert.ok(shown.some((v) => v.includes('globex')));
    assert.ok(!shown.some((v) => v.includes('acme')), 'the intermediate claim was never shown');
    assert.deepEqual(ops(workerId).slice(-3), [
      'idle→claimed:claim@2',
      'claimed→idle:release@3',
      'idle→claimed:claim@4',
    ]);
    await recordHistory(handle, 'registry-coalesced');
    await endLife(handle);
  });

  test('a stale (lower-epoch) or repeated notification is ignored', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const claim = await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
    const release = await world.apiRelease(workerId, 'hot_idle');
    await waitForEpoch(handle, 3);

    await world.notify(workerId, claim); // from a slower API replica, after the release
    await world.notify(workerId, release); // and a duplicate
    await handledSoFar(handle);
    const now = await handle.query(describeQuery);
    assert.deepEqual([now.state, now.epoch, now.tenant], ['hot_idle', 3, 'acme']);
    assert.deepEqual(await searchAttributes(handle), ['hot_idle', 'acme']);
    await endLife(handle);
  });

  test('the hot-idle TTL counts from the release (stateSince), not from when the workflow heard of it', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
    const release = await world.apiRelease(workerId, 'hot_idle', { notify: false });
    await env.sleep(5 * minute); // the notification is late
    const heardAt = await env.currentTimeMs();
    await world.notify(workerId);
    const adopted = await waitForEpoch(handle, 3);
    assert.equal(ms(adopted.deadlines.hotIdleUntil), ms(release.stateSince) + 15 * minute);
    assert.ok(ms(adopted.deadlines.hotIdleUntil) < heardAt + 15 * minute, 'not a TTL from hearing of it');

    assert.equal((await handle.result()).state, 'retired');
    const drained = world.trail(workerId).findIndex((t) => t.to === 'draining');
    assert.equal(world.trail(workerId)[drained]?.from, 'hot_idle');
  });

  test('recycle: a release to idle unbinds the tenant and its idle TTL counts from the release', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { releasePolicy: 'recycle' } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
    const release = await world.apiRelease(workerId, 'recycle');
    const adopted = await waitForEpoch(handle, 3);
    assert.deepEqual([adopted.state, adopted.tenant], ['idle', null]);
    assert.equal(ms(adopted.deadlines.idleUntil), ms(release.stateSince) + 6 * hour);
    assert.deepEqual(await searchAttributes(handle), ['idle', undefined]);
    await endLife(handle);
  });

  test('a claim nobody acknowledged, reclaimed by the registry, leaves the worker idle', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await world.apiClaim(workerId, 'acme', 'r1', { notify: false });
    await world.apiReclaim(workerId); // one signal: the worker is idle again, at epoch 3
    const adopted = await waitForEpoch(handle, 3);
    assert.deepEqual([adopted.state, adopted.tenant, adopted.claimRequestId], ['idle', null, null]);
    assert.deepEqual(await searchAttributes(handle), ['idle', undefined]);
    await endLife(handle);
  });

  test('a failed hand-over: the registry says lost (activation_failed); the workflow ends and deletes the pod', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await world.apiClaim(workerId, 'acme', 'r1', { notify: false });
    await world.apiHandOverFailed(workerId);
    assert.deepEqual(await handle.result(), { workerId, state: 'lost', epoch: 3, failureReason: 'activation_failed' });
    assert.deepEqual(podsOf(workerId), [], 'the pod goes with the adopted end');
    assert.ok(!world.callsOf('transitionWorker', workerId).some((c) => (c.input as { to: string }).to === 'lost'));
  });
});

describe('cold path', () => {
  test('bound: the worker spawned for a claim is claimed at epoch 2 for its tenant and activated for it', async () => {
    const requestId = `cold-${newWorkerId()}`;
    world.openColdClaim(requestId, 'acme');
    const handle = await startLifecycle(env, taskQueue, { boundClaim: { tenant: 'acme', requestId } });
    const workerId = await workerIdOf(handle);
    const claimed = await waitForDescription(handle, 'claimed', (d) => d.state === 'claimed');
    assert.deepEqual([claimed.epoch, claimed.tenant, claimed.claimRequestId], [2, 'acme', requestId]);
    assert.deepEqual(ops(workerId).slice(-1), ['activating→claimed:claim@2']);
    assert.deepEqual(activationsOf(workerId), [
      [1, null],
      [2, 'acme'],
    ]);
    assert.ok(
      !world.callsOf('transitionWorker', workerId).some((c) => (c.input as { to: string }).to === 'claimed'),
      'the registry binds the claim, not a workflow transition',
    );
    assert.deepEqual(await searchAttributes(handle), ['claimed', 'acme']);
    assert.equal(
      (world.callsOf('registerWorker', workerId)[0]?.input as { coldClaim?: boolean }).coldClaim,
      undefined,
      'the API counts warm-capacity misses now',
    );
    await recordHistory(handle, 'registry-cold-claim');
    await endLife(handle);
  });

  test('not bound: the claim no longer waits, so the worker joins the pool idle, its TTL from now', async () => {
    const requestId = `cold-${newWorkerId()}`; // never opened: its caller gave up (or it was answered elsewhere)
    const handle = await startLifecycle(env, taskQueue, { boundClaim: { tenant: 'acme', requestId } });
    const workerId = await workerIdOf(handle);
    const idle = await waitForDescription(handle, 'idle', (d) => d.state === 'idle');
    assert.deepEqual([idle.epoch, idle.tenant], [1, null]);
    assert.ok(idle.deadlines.idleUntil);
    assert.deepEqual(ops(workerId).slice(-1), ['activating→idle:ready@1']);
    assert.deepEqual(activationsOf(workerId), [[1, null]]);
    await endLife(handle);
  });
});

describe('drain', () => {
  test('drain is refused with a typed reason, and nothing is written', async () => {
    const handle = await startLifecycle(env, taskQueue);
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    const writes = () =>
      world.callsOf('transitionWorker', workerId).length + world.callsOf('markDrainRequested', workerId).length;
    const before = writes();
    assert.equal(
      await rejectionOf(handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: -1 }] })),
      lifecycleRejections.invalidRequest,
    );
    assert.equal(writes(), before, 'refused updates write nothing');
    await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
    const draining = await handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: hour }] });
    assert.equal(draining.state, 'claimed', 'the tenant keeps its worker until release or the drain timeout');
    assert.equal(draining.drainRequested, true);
    assert.ok(
      world.drainMarked.has(workerId),
      'the registry takes no new claim on it and sends its release to draining',
    );
    assert.equal(await rejectionOf(handle.executeUpdate(drainUpdate, { args: [{}] })), lifecycleRejections.draining);

    await world.apiRelease(workerId, 'hot_idle'); // → draining: a drain was asked
    assert.equal((await handle.result()).state, 'retired');
    assert.deepEqual(ops(workerId).slice(-2), ['claimed→draining:release@3', 'draining→retired:retire@3']);
    assert.deepEqual(podsOf(workerId), []);
  });

  test('the API claimed the worker just before the drain was marked: the drain waits for drainBy', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    // Inside the activity: no call to the test server (the mark's answer shows the claim).
    world.before('markDrainRequested', workerId, async () => {
      await world.apiClaim(workerId, 'acme', 'r1', { notify: false, at: Date.now() });
    });
    const described = await handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: 20 * minute }] });
    assert.deepEqual([described.state, described.epoch, described.tenant], ['claimed', 2, 'acme']);
    assert.ok(described.deadlines.drainBy, 'accepted as a drain of a claimed worker, not refused');

    assert.deepEqual(await handle.result(), { workerId, state: 'retired', epoch: 2, failureReason: null });
    assert.ok((await env.currentTimeMs()) >= ms(described.deadlines.drainBy));
    assert.deepEqual(ops(workerId).slice(-3), [
      'idle→claimed:claim@2',
      'claimed→draining:drain@2',
      'draining→retired:retire@2',
    ]);
  });

  test("the drain's own write misses the fence on a claim: adopted as a drain of a claimed worker, which waits for release", async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    // A claim the mark's answer did not show yet (say, a retried mark whose first answer was lost).
    world.beforeTransition.set(workerId, async () => {
      world.drainMarked.delete(workerId);
      await world.apiClaim(workerId, 'acme', 'r1', { notify: false, at: Date.now() });
      world.drainMarked.add(workerId);
    });
    const described = await handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: day }] });
    assert.deepEqual([described.state, described.epoch, described.drainRequested], ['claimed', 2, true]);
    assert.ok(described.deadlines.drainBy);

    await world.apiRelease(workerId, 'hot_idle');
    assert.deepEqual(await handle.result(), { workerId, state: 'retired', epoch: 3, failureReason: null });
    assert.deepEqual(ops(workerId).slice(-2), ['claimed→draining:release@3', 'draining→retired:retire@3']);
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
    await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
    const result = await handle.result();
    assert.equal(result.state, 'retired');
    assert.ok(world.drainMarked.has(workerId), 'the registry stopped claims first');
    assert.deepEqual(ops(workerId).slice(-2), ['claimed→draining:drain@2', 'draining→retired:retire@2']);
  });

  test('drain timeout: a claimed worker asked to drain and never released is drained when it ends', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
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
    const refreshed = await waitForDescription(handle, 'refreshed', (d) => d.credential?.version === 2);
    assert.equal(refreshed.epoch, 2, 'an idle refresh bumps the epoch');
    const rotations = world
      .callsOf('rotateCredentials', workerId)
      .map((c) => c.input as { epoch: number; version: number });
    assert.deepEqual(
      rotations.map((r) => [r.epoch, r.version]),
      [[2, 2]],
    );
    assert.deepEqual(activationsOf(workerId).at(-1), [2, null], 're-activated with the new epoch');

    await world.apiClaim(workerId, 'acme', 'r1');
    const lease = await waitForEpoch(handle, 3);
    await env.sleep(hour);
    const duringClaim = await waitForDescription(handle, 'refreshed again', (d) => d.credential?.version === 3);
    assert.equal(duringClaim.epoch, lease.epoch, "the tenant's lease stays valid");
    assert.deepEqual(activationsOf(workerId).at(-1), [3, 'acme']);
    await world.apiRelease(workerId, 'hot_idle');
    assert.equal((await waitForEpoch(handle, 4)).state, 'hot_idle');
    assert.ok(!JSON.stringify(await handle.fetchHistory()).includes('token'), 'no token field anywhere in history');
    await recordHistory(handle, 'registry-credential-refresh');
    await endLife(handle);
  });
});

describe('races with the corral API', () => {
  test("a claim that lands before a credential refresh's write: the refresh adopts it and runs again at the tenant's epoch", async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    // Inside the activity: the workflow learns of the claim by its fence miss, not a signal.
    world.beforeTransition.set(workerId, () =>
      world.apiClaim(workerId, 'acme', 'r1', { notify: false, at: Date.now() }).then(() => undefined),
    );
    await env.sleep(56 * minute);
    const refreshed = await waitForDescription(handle, 'refreshed', (d) => d.credential?.version === 2);
    assert.deepEqual(
      [refreshed.state, refreshed.epoch, refreshed.tenant],
      ['claimed', 2, 'acme'],
      "not lost, and the tenant's lease (epoch 2) still valid",
    );
    assert.deepEqual(ops(workerId).slice(-2), ['idle→claimed:claim@2', 'claimed→claimed:refresh_credentials@2']);
    assert.deepEqual(activationsOf(workerId).at(-1), [2, 'acme']);
    assert.equal(world.callsOf('readWorker', workerId).length, 0, 'the fence miss carried the row: no re-read');
    await endLife(handle);
  });

  test('a claim that lands between a refresh and its activation: ActivationRefused at a stale epoch is adopted, not lost', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    // The refresh moved the epoch to 2; the API claims at 3 and activates the worker at 3 before
    // the refresh's own activation (at 2) arrives, which the worker then refuses.
    world.before('rotateCredentials', workerId, () =>
      world.apiClaim(workerId, 'acme', 'r1', { notify: false, at: Date.now() }).then(() => undefined),
    );
    await env.sleep(56 * minute);
    const adopted = await waitForDescription(
      handle,
      'the refresh finished at the claimed epoch',
      (d) => d.credential?.version === 2 && d.epoch === 3,
    );
    assert.deepEqual([adopted.state, adopted.tenant], ['claimed', 'acme']);
    assert.deepEqual(activationsOf(workerId), [
      [1, null],
      [2, null],
      [3, 'acme'],
    ]);
    assert.equal(world.callsOf('readWorker', workerId).length, 1);
    assert.equal(podsOf(workerId).length, 1, 'the pod is still there');
    assert.ok(!ops(workerId).some((o) => o.includes('lost')));
    await recordHistory(handle, 'registry-refresh-race');
    await endLife(handle);
  });

  test('a refusal the registry cannot explain still fails the activation', async () => {
    const workerId = newWorkerId();
    world.activations.set(workerId, ['refused']);
    const handle = await startLifecycle(env, taskQueue, { workerId });
    await waitForState(handle, 'idle');
    const respawn = world.trail(workerId).find((t) => t.operation === 'respawn');
    assert.equal(respawn?.failureReason, 'activation_failed');
    assert.equal(world.callsOf('readWorker', workerId).length, 1, 'the registry was asked first');
    await endLife(handle);
  });
});

describe('the fence', () => {
  test('a FenceMiss converges on the registry row: no retry, no overwrite', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    // The janitor reaps the row (epoch 1 → 2) behind the workflow's back, just as a refresh writes.
    world.beforeTransition.set(workerId, () => world.moveBehindTheWorkflow(workerId, 'retired'));
    assert.deepEqual(await handle.result(), { workerId, state: 'retired', epoch: 2, failureReason: null });
    const writes = world.callsOf('transitionWorker', workerId).map((c) => c.input as { expected: { epoch: number } });
    assert.equal(writes.at(-1)?.expected.epoch, 1, 'the missed write was the last write: nothing after it');
    assert.equal(world.callsOf('readWorker', workerId).length, 0, 'adopted from the row the miss carried');
    assert.deepEqual(ops(workerId).slice(-1), ['idle→retired:reap@2'], "the janitor's decision stands");
    assert.deepEqual(podsOf(workerId), [], 'the pod goes with the reaped row');
    await recordHistory(handle, 'registry-fence-miss');
  });

  test('after adopting a newer epoch the workflow carries on with it', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { idleTtlMs: null } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    world.beforeTransition.set(workerId, () => world.moveBehindTheWorkflow(workerId, 'idle'));
    await env.sleep(56 * minute);
    const refreshed = await waitForDescription(handle, 'refreshed', (d) => d.credential?.version === 2);
    assert.equal(refreshed.epoch, 3, 'the refresh ran again from the adopted epoch 2');
    await world.apiClaim(workerId, 'acme', 'r1');
    assert.equal((await waitForEpoch(handle, 4)).state, 'claimed');
    await endLife(handle);
  });
});

// From here on: runs that continue as new mid-spawn, activities that hang until cancelled or are
// cancelled around their workflow's close. On the time-skipping server these have left the clock
// locked for later tests (their timers then ran in real time: an hour-long refresh never came), so
// every test that needs skipped time runs before them (decision 0005, testing notes).
describe('continue-as-new', () => {
  test('a drain update in flight when the run continues as new is completed first', async () => {
    const workerId = newWorkerId();
    // Low on purpose: the spawn alone crosses it (the first run continues as new once it serves),
    // and so does the drain update's own workflow task in the next run.
    const handle = await startLifecycle(env, taskQueue, { workerId, continueAsNewAfterEvents: 8 });
    const started = (await handle.describe()).runId;
    await waitFor(async () => (await handle.describe()).runId !== started, {
      what: 'the first run to continue as new once the worker serves',
      timeoutMs: 30_000,
      intervalMs: 20,
    });
    await waitForState(handle, 'idle');
    const firstRun = (await handle.describe()).runId;
    // (A drain of a worker still starting cuts the start short instead: worker-resilience.test.ts.)
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    world.before('markDrainRequested', workerId, () => gate);
    // Accepted while its registry write is held: the run wants to continue as new, and waits for it.
    const drain = await handle.startUpdate(drainUpdate, { args: [{}], waitForStage: WorkflowUpdateStage.ACCEPTED });
    release();

    const described: WorkerDescription = await drain.result();
    assert.equal(described.state, 'draining');
    assert.deepEqual(await handle.result(), { workerId, state: 'retired', epoch: 1, failureReason: null });
    const history = await env.client.workflow.getHandle(handle.workflowId, firstRun).fetchHistory();
    const ends = (history.events ?? []).flatMap((e) =>
      e.workflowExecutionUpdateCompletedEventAttributes
        ? ['update completed']
        : e.workflowExecutionContinuedAsNewEventAttributes
          ? ['continued as new']
          : e.workflowExecutionCompletedEventAttributes
            ? ['completed']
            : [],
    );
    assert.deepEqual(ends, ['update completed', 'continued as new'], 'the update finished in the run that took it');
    assert.equal(world.callsOf('markDrainRequested', workerId).length, 1);
  });
});

describe('deadlines raced against their activity', () => {
  test('spawn deadline: a pod never ready is spawn_timeout and respawned', async () => {
    const workerId = newWorkerId();
    world.readiness.set(workerId, [{ status: 'hang' }]);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: { spawnDeadlineMs: 3_000 } });
    await waitForState(handle, 'idle');
    const respawn = world.trail(workerId).find((t) => t.operation === 'respawn');
    // deadline_exceeded is the runtime's own deadline (activeDeadlineSeconds, exit 124) only.
    assert.equal(respawn?.failureReason, 'spawn_timeout');
    assert.equal((await handle.query(describeQuery)).spawnAttempt, 2);
    assert.deepEqual(
      podsOf(workerId).map(() => 'pod'),
      ['pod'],
      'the first pod was deleted before the respawn',
    );
    await endLife(handle);
  });

  test('spawn deadline covers the create: a create that never returns is spawn_timeout and respawned', async () => {
    const workerId = newWorkerId();
    world.spawns.set(workerId, ['hang']);
    const handle = await startLifecycle(env, taskQueue, { workerId, settings: { spawnDeadlineMs: 3_000 } });
    await waitForState(handle, 'idle');
    const respawn = world.trail(workerId).find((t) => t.operation === 'respawn');
    // deadline_exceeded is the runtime's own deadline (activeDeadlineSeconds, exit 124) only.
    assert.equal(respawn?.failureReason, 'spawn_timeout');
    assert.equal((await handle.query(describeQuery)).spawnAttempt, 2);
    assert.equal(world.callsOf('spawnWorkerPod', workerId).length, 2, 'the hung create was given up, not retried');
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
    await recordHistory(handle, 'registry-cancel-during-spawn');
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
    await recordHistory(handle, 'registry-respawn-then-ready');
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
      if (reason === 'pod_oom_killed') await recordHistory(handle, 'registry-lost-after-respawns');
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
    await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
    await world.failHealth(workerId, 'pod_oom_killed');
    assert.deepEqual(await handle.result(), { workerId, state: 'lost', epoch: 2, failureReason: 'pod_oom_killed' });
    assert.deepEqual(podsOf(workerId), []);
    await recordHistory(handle, 'registry-health-lost');
  });

  test('a worker asked to drain is not declared lost for failing probes', async () => {
    const handle = await startLifecycle(env, taskQueue, { settings: { healthIntervalMs: 10_000 } });
    const workerId = await workerIdOf(handle);
    await waitForState(handle, 'idle');
    await world.apiClaim(workerId, 'acme', 'r1');
    await waitForEpoch(handle, 2);
    await handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: day }] });
    await world.failHealth(workerId, 'health_check_failed');
    assert.deepEqual(await handle.result(), { workerId, state: 'retired', epoch: 2, failureReason: null });
  });
});
