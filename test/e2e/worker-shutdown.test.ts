// Graceful shutdown of the real `corral worker` process (bin/corral, as the Deployment runs it):
// /livez and /readyz while it runs; on SIGTERM readiness drops at once while the server still
// answers, an activity in flight (a worker pod's readiness wait) finishes within the grace and
// is recorded as completed, and the process exits 0 within the Deployment's
// terminationGracePeriodSeconds (45 s).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ManagedProcess } from '../../src/embedded/child-process';
import { waitFor } from '../../src/embedded/wait';
import { workerLifecycleWorkflowId } from '../../src/common';
import { startCorralWorkerProcess } from '../harness/corral-worker-process';
import { demoWorkerSettings, useLifecycleE2e, type LifecycleE2e } from '../harness/lifecycle-e2e';
import { newWorkerId } from '../harness/lifecycle-env';

/** The Deployment's terminationGracePeriodSeconds: the kubelet SIGKILLs after this. */
const terminationGracePeriodMs = 45_000;

let e2e: LifecycleE2e;
const corralWorkers: ManagedProcess[] = [];

before(async () => {
  e2e = await useLifecycleE2e();
});
after(async () => {
  await Promise.all(corralWorkers.map((w) => w.kill()));
  await e2e?.close();
});

async function startCorralWorker(name: string, taskQueue: string): Promise<{ proc: ManagedProcess; origin: string }> {
  const { proc, ready } = await startCorralWorkerProcess(e2e, {
    name,
    taskQueue,
    env: { CORRAL_METRICS_HOST: '127.0.0.1', CORRAL_SHUTDOWN_GRACE: '20s' },
  });
  corralWorkers.push(proc);
  assert.equal(
    typeof ready.metricsUrl,
    'string',
    `the ready message carries the metrics URL: ${JSON.stringify(ready)}`,
  );
  const url = new URL(ready.metricsUrl as string);
  assert.equal(url.pathname, '/metrics');
  assert.notEqual(url.port, '0', 'the real port, not the 0 asked for');
  return { proc, origin: url.origin };
}

/** The HTTP status of a GET, or `closed` when nothing answers (refused, reset). */
async function status(url: string): Promise<number | 'closed'> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 'closed';
  }
}

test('SIGTERM: /readyz turns 503 at once, the in-flight activity completes within the grace, exit 0', async (t) => {
  const taskQueue = `shutdown-${process.pid}-${Date.now()}`;
  const { proc, origin } = await startCorralWorker('corral-worker-shutdown', taskQueue);
  assert.equal(await status(`${origin}/livez`), 200);
  assert.equal(await status(`${origin}/readyz`), 200, 'ready once it polls and the registry answers');
  assert.equal(await status(`${origin}/nope`), 404);
  const scrape = await fetch(`${origin}/metrics`);
  assert.equal(scrape.status, 200);
  assert.match(await scrape.text(), /^# TYPE corral_workers gauge$/m);

  // An activity in flight at SIGTERM: the readiness wait of a worker whose pod takes 8 s to start.
  const pool = 'shutdown';
  const workerId = newWorkerId();
  const handle = await e2e.client.workflow.start('workerLifecycleWorkflow', {
    taskQueue,
    workflowId: workerLifecycleWorkflowId(pool, workerId),
    args: [{ workerId, pool, settings: { ...demoWorkerSettings, env: { DEMO_WORKER_START_DELAY_MS: '8000' } } }],
  });
  await waitFor(
    async () => {
      const { raw } = await handle.describe();
      return raw.pendingActivities?.some((a) => a.activityType?.name === 'awaitWorkerReady' && a.lastStartedTime);
    },
    { what: 'the readiness wait to be running', timeoutMs: 60_000, intervalMs: 50 },
  );

  assert.ok(proc.child.kill('SIGTERM'));
  // Readiness drops while the process is still draining (the server answers 503, not silence).
  const firstNotReady = await waitFor(
    async () => {
      const s = await status(`${origin}/readyz`);
      return s === 200 ? undefined : s;
    },
    { what: '/readyz to stop answering 200 after SIGTERM', timeoutMs: 5_000, intervalMs: 50 },
  );
  assert.equal(firstNotReady, 503, 'not ready, and still answering while activities finish');
  assert.equal(await status(`${origin}/livez`), 200, 'alive while draining');

  const exit = await Promise.race([
    proc.exited,
    new Promise<'still running'>((resolve) => setTimeout(resolve, terminationGracePeriodMs, 'still running').unref()),
  ]);
  assert.equal(exit, 0, `exit code after SIGTERM (log: ${proc.logFile})`);
  assert.equal(await status(`${origin}/livez`), 'closed', 'the HTTP server is gone with the process');

  // The readiness wait finished within the grace and was reported as completed (not failed,
  // cancelled or timed out): a SIGTERM costs no activity attempt.
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = events.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'awaitWorkerReady',
  );
  assert.ok(scheduled, 'awaitWorkerReady was scheduled');
  const outcome = events.find((e) =>
    [
      e.activityTaskCompletedEventAttributes,
      e.activityTaskFailedEventAttributes,
      e.activityTaskTimedOutEventAttributes,
      e.activityTaskCanceledEventAttributes,
    ].some((a) => a && String(a.scheduledEventId) === String(scheduled.eventId)),
  );
  assert.ok(outcome?.activityTaskCompletedEventAttributes, `completed, got ${JSON.stringify(outcome?.eventType)}`);
  t.diagnostic('the readiness wait in flight at SIGTERM completed within the 20 s grace; exit code 0');
  await handle.terminate('test done');
});
