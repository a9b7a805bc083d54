// The claim/release updates and the abandonClaim signal belong to runs recorded before registry
// claims (their histories replay in replay.test.ts). A run that takes claims from the registry
// registers none of them: the SDK refuses such an update, and nothing is written.
//
// Its own file (and test server): after an update refused for having no handler, the Java
// time-skipping server ran a later test's local-activity deadline in real time, with retries.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  lifecycleRejections,
  abandonClaimSignal,
  claimUpdate,
  describeQuery,
  drainUpdate,
  releaseUpdate,
} from '../../src/common';
import {
  rejectionOf,
  startLifecycle,
  updateFailureOf,
  useLifecycleTimeSkipping,
  waitForState,
} from '../harness/lifecycle-env';
import type { LifecycleWorld } from '../harness/lifecycle-world';

const taskQueue = 'lifecycle-legacy-messages';
let env: TestWorkflowEnvironment;
let world: LifecycleWorld;
let stop: () => Promise<void>;

before(async () => {
  ({ env, world, stop } = await useLifecycleTimeSkipping(taskQueue));
});
after(async () => {
  await stop?.();
});

test('legacy claim and release updates are refused: no handler in a run that takes claims from the registry', async () => {
  const handle = await startLifecycle(env, taskQueue);
  const workerId = (await handle.query(describeQuery)).workerId;
  await waitForState(handle, 'idle');
  const writes = world.callsOf('transitionWorker', workerId).length;
  assert.match(
    await updateFailureOf(handle.executeUpdate(claimUpdate, { args: [{ tenant: 'acme', requestId: 'r1' }] })),
    /No registered handler for update: claim/,
  );
  assert.match(
    await updateFailureOf(handle.executeUpdate(releaseUpdate, { args: [{ workerId, epoch: 1 }] })),
    /No registered handler for update: release/,
  );
  await handle.signal(abandonClaimSignal, { requestId: 'r1' });
  // A drain its validator refuses writes nothing and is handled after every message sent before it.
  assert.equal(
    await rejectionOf(handle.executeUpdate(drainUpdate, { args: [{ timeoutMs: -1 }] })),
    lifecycleRejections.invalidRequest,
  );
  assert.equal(world.callsOf('transitionWorker', workerId).length, writes, 'nothing written');
  assert.equal((await handle.query(describeQuery)).state, 'idle');
  await handle.cancel();
  await assert.rejects(handle.result(), /cancel/i);
});
