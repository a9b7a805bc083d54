// Failover: `corral worker` is killed with SIGKILL while a worker's pod is starting. A second
// `corral worker` process (the real CLI) must finish that life: the readiness wait resumes on
// the same pod (adopted, never duplicated), no registry row is lost, and the workflow ends.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import type { ManagedProcess } from '../../src/embedded/child-process';
import { waitFor } from '../../src/embedded/wait';
import { drainUpdate, workerLifecycleWorkflowId } from '../../src/common';
import { startCorralWorkerProcess } from '../harness/corral-worker-process';
import { demoWorkerSettings, useLifecycleE2e, type LifecycleE2e } from '../harness/lifecycle-e2e';
import { newWorkerId, waitForState } from '../harness/lifecycle-env';
import { workerProcessGroups } from '../harness/process-inspection';

let e2e: LifecycleE2e;
const corralWorkers: ManagedProcess[] = [];

before(async () => {
  e2e = await useLifecycleE2e();
});
after(async () => {
  await Promise.all(corralWorkers.map((w) => w.stop()));
  await e2e?.close();
});

async function startCorralWorker(name: string, taskQueue: string): Promise<ManagedProcess> {
  const { proc } = await startCorralWorkerProcess(e2e, { name, taskQueue });
  corralWorkers.push(proc);
  return proc;
}

test('kill -9 of corral worker during a spawn: a second worker completes the life, nothing duplicated', async (t) => {
  const taskQueue = `failover-${process.pid}`;
  const pool = 'failover';
  const workerId = newWorkerId();
  const first = await startCorralWorker('corral-worker-a', taskQueue);
  const handle = await e2e.client.workflow.start('workerLifecycleWorkflow', {
    taskQueue,
    workflowId: workerLifecycleWorkflowId(pool, workerId),
    // A slow-starting image, so the kill lands while corral waits for readiness.
    args: [{ workerId, pool, settings: { ...demoWorkerSettings, env: { DEMO_WORKER_START_DELAY_MS: '6000' } } }],
  });

  await waitFor(
    async () => {
      const { raw } = await handle.describe();
      return raw.pendingActivities?.some((a) => a.activityType?.name === 'awaitWorkerReady' && a.lastStartedTime);
    },
    { what: 'the readiness wait to be running on worker A', timeoutMs: 60_000, intervalMs: 50 },
  );
  await first.kill();
  const killedAt = performance.now();

  await startCorralWorker('corral-worker-b', taskQueue);
  await waitForState(handle, 'idle', 120_000);
  const resumeMs = Math.round(performance.now() - killedAt);
  t.diagnostic(JSON.stringify({ failoverKillToIdleMs: resumeMs }));

  assert.equal(workerProcessGroups(workerId).length, 1, 'exactly one worker process');
  const managed = (await e2e.runtime.listManaged({ pool })).filter((w) => w.workerId === workerId);
  assert.deepEqual(
    managed.map((w) => [w.spawnAttempt, w.hasPod]),
    [[1, true]],
    'one pod: the first spawn, adopted',
  );
  const row = await e2e.registry.store.getWorker(workerId);
  assert.equal(row?.state, 'idle');
  assert.equal(row?.spawnAttempt, 1, 'no respawn was needed');
  const trail = await e2e.registry.store.history(workerId);
  assert.deepEqual(
    trail.map((r) => r.toState),
    ['spawning', 'activating', 'idle'],
  );

  await handle.executeUpdate(drainUpdate, { args: [{}] });
  const result = await handle.result();
  assert.equal(result.state, 'retired');
  assert.deepEqual(workerProcessGroups(workerId), []);
  assert.deepEqual(
    (await e2e.runtime.listManaged({ pool })).filter((w) => w.workerId === workerId),
    [],
  );
});
