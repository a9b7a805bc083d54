// A worker that lives 30 simulated days, claimed and released daily (by the registry, as the corral
// API does it: the workflow adopts each change from a signal) with credentials refreshed, through
// several continue-as-new runs: each run boundary must be invisible from outside.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { defaultPayloadConverter } from '@temporalio/common';
import { waitFor } from '../../src/embedded/wait';
import { describeWorker } from '../../src/workflows/worker-lifecycle/lifecycle-rules';
import { describeQuery, type WorkerLifecycleInput } from '../../src/common';
import {
  day,
  hour,
  recordHistory,
  useLifecycleTimeSkipping,
  waitForState,
  startLifecycle,
  type LifecycleHandle,
} from '../harness/lifecycle-env';
import type { LifecycleWorld } from '../harness/lifecycle-world';

const taskQueue = 'lifecycle-long-life';
let env: TestWorkflowEnvironment;
let world: LifecycleWorld;
let stop: () => Promise<void>;

before(async () => {
  ({ env, world, stop } = await useLifecycleTimeSkipping(taskQueue));
});
after(async () => {
  await stop?.();
});

test('30 days, ≥ 3 continue-as-new runs: describe and deadlines identical across every boundary', async (t) => {
  const handle = await startLifecycle(env, taskQueue, {
    // Low on purpose: production waits for the server's suggestion (4,096 events / 4 MiB).
    continueAsNewAfterEvents: 60,
    settings: {
      idleTtlMs: null,
      releasePolicy: 'recycle',
      credentialTtlMs: day,
      credentialRefreshLeadMs: hour,
      maxLifetimeMs: 45 * day,
    },
  });
  const workflowId = handle.workflowId;
  const workerId = (await handle.query(describeQuery)).workerId;
  const latest = () => env.client.workflow.getHandle(workflowId) as LifecycleHandle;
  const runs: string[] = [(await latest().describe()).runId];
  let boundariesChecked = 0;

  let liveComparisons = 0;
  // At each new run: its first `describe` (computed from the state it was started with) equals
  // the old run's last answer. When nothing has reached the new run yet, its live answer is
  // compared too (queries do not move the test server's clock).
  async function checkRunBoundary(): Promise<void> {
    await settled();
    const { runId } = await latest().describe();
    if (runId === runs.at(-1)) return;
    const ended = await env.client.workflow.getHandle(workflowId, runs.at(-1)).query(describeQuery);
    const newRun = env.client.workflow.getHandle(workflowId, runId) as LifecycleHandle;
    const history = await newRun.fetchHistory();
    const startInput = defaultPayloadConverter.fromPayload<WorkerLifecycleInput>(
      history.events?.[0].workflowExecutionStartedEventAttributes?.input?.payloads?.[0] ?? {},
    );
    assert.ok(startInput.carried, 'a continued run carries its state');
    assert.deepEqual(
      describeWorker(startInput.carried, startInput),
      ended,
      `run ${runs.length + 1} starts where run ${runs.length} ended`,
    );
    const untouched = !history.events?.some(
      (e) =>
        e.workflowExecutionUpdateAcceptedEventAttributes ||
        e.workflowExecutionSignaledEventAttributes ||
        e.timerFiredEventAttributes,
    );
    if (untouched) {
      assert.deepEqual(await newRun.query(describeQuery), ended, 'and answers describe identically');
      liveComparisons++;
    }
    runs.push(runId);
    boundariesChecked++;
  }

  // Queries (and the API stand-in's next signal) wait until the workflow has settled: no workflow
  // task scheduled or running in its current run. On the time-skipping server a query sent while
  // the workflow task that continues the run as new was in flight was never answered (the real
  // server answers it from the closed run's history).
  async function settled(): Promise<void> {
    await waitFor(
      async () => {
        const last = (await latest().fetchHistory()).events?.at(-1);
        return (
          last !== undefined &&
          !last.workflowTaskScheduledEventAttributes &&
          !last.workflowTaskStartedEventAttributes &&
          !last.workflowExecutionContinuedAsNewEventAttributes
        );
      },
      { what: 'the worker workflow to settle', timeoutMs: 30_000, intervalMs: 20 },
    );
  }

  /** A registry change is adopted by whichever run is current once the workflow settles. */
  async function adopted(epoch: number): Promise<void> {
    await settled();
    assert.ok((await latest().query(describeQuery)).epoch >= epoch, `epoch ${epoch} adopted`);
  }

  await waitForState(latest(), 'idle');
  const bornAt = (await latest().query(describeQuery)).bornAt;
  for (let d = 1; d <= 30; d++) {
    const lease = await world.apiClaim(workerId, `tenant${d % 3}`, `day-${d}`);
    await adopted(lease.epoch);
    await checkRunBoundary();
    await env.sleep(3 * hour);
    await checkRunBoundary();
    const released = await world.apiRelease(workerId, 'recycle');
    await adopted(released.epoch);
    await checkRunBoundary();
    await env.sleep(21 * hour);
    await checkRunBoundary();
  }

  await settled();
  const final = await latest().query(describeQuery);
  assert.equal(final.state, 'idle');
  assert.equal(final.bornAt, bornAt, 'the birth time (and so the max-lifetime deadline) never moved');
  assert.equal(Date.parse(final.deadlines.retireAt ?? ''), Date.parse(bornAt) + 45 * day);
  assert.ok(runs.length >= 4, `at least 3 continue-as-new runs (saw ${runs.length} runs)`);
  assert.equal(boundariesChecked, runs.length - 1);
  const trail = world.trail(workerId);
  assert.equal(trail.filter((t) => t.operation === 'claim').length, 30);
  assert.equal(trail.filter((t) => t.operation === 'release').length, 30);
  const refreshes = trail.filter((t) => t.operation === 'refresh_credentials').length;
  assert.ok(refreshes >= 30, `credentials refreshed before every expiry (${refreshes} refreshes)`);
  assert.equal(final.credential?.version, refreshes + 1);
  for (let i = 1; i < trail.length; i++) {
    assert.equal(trail[i].epochBefore, trail[i - 1].epochAfter, 'one unbroken fenced trail across all runs');
  }
  assert.equal(world.callsOf('registerWorker', workerId).length, 1, 'later runs never re-register or respawn');
  assert.equal(world.callsOf('spawnWorkerPod', workerId).length, 1);
  assert.ok(liveComparisons >= 1, 'at least one boundary compared live');
  t.diagnostic(
    `${runs.length} runs (${liveComparisons} boundaries compared live), ${refreshes} credential refreshes, 30 claims and releases`,
  );
  await recordHistory(env.client.workflow.getHandle(workflowId, runs[1]), 'registry-long-life-run-2');
  await latest().terminate('test done');
});

test('an idle worker with health checks on adds ≤ 12 history events per hour: no monitor, no timer beyond its own', async (t) => {
  const handle = await startLifecycle(env, taskQueue, {
    // Health on (the default pool's 10 s): shared health runs no activity for it.
    settings: { idleTtlMs: null, healthIntervalMs: 10_000, credentialTtlMs: hour, credentialRefreshLeadMs: 5 * 60_000 },
  });
  const workerId = (await handle.query(describeQuery)).workerId;
  await waitForState(handle, 'idle');
  const eventsNow = async () => {
    // Settled first: no workflow task scheduled or running, so the count is a whole step's.
    let count = 0;
    await waitFor(
      async () => {
        const events = (await handle.fetchHistory()).events ?? [];
        const last = events.at(-1);
        count = events.length;
        return (
          last !== undefined && !last.workflowTaskScheduledEventAttributes && !last.workflowTaskStartedEventAttributes
        );
      },
      { what: 'the worker workflow to settle', timeoutMs: 30_000, intervalMs: 50 },
    );
    return count;
  };
  const start = await eventsNow();
  const hours = 6;
  await env.sleep(hours * hour);
  const added = (await eventsNow()) - start;
  assert.ok(world.callsOf('rotateCredentials', workerId).length >= hours - 1, 'credentials were refreshed meanwhile');
  t.diagnostic(`${added} history events in ${hours} idle hours`);
  assert.ok(added / hours <= 12, `${added} events in ${hours} idle hours`);
  assert.equal(world.callsOf('monitorWorkerHealth', workerId).length, 0, 'no health monitor activity');
});
