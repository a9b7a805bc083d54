// A worker's whole life end to end: the real dev server, the real registry, the process runtime
// running the real demo worker, corral's workflows and activities in an in-process worker.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { createCorralActivities } from '../../src/activities';
import { ClaimStore } from '../../src/registry/claim-store';
import { startCorralApi, type RunningCorralApi } from '../../src/api/corral-api';
import { CorralClient } from '../../src/client/corral-client';
import { parseWorkerCapacity } from '../../src/config/worker-capacity';
import { waitFor } from '../../src/embedded/wait';
import { createCorralPollers, runCorralPollers } from '../../src/workers/corral-pollers';
import { PoolStore } from '../../src/registry/pool-store';
import { describeQuery, workerLifecycleWorkflowId } from '../../src/common';
import {
  demoWorkerSettings,
  historyText,
  upsertedStates,
  useLifecycleE2e,
  type LifecycleE2e,
} from '../harness/lifecycle-e2e';
import { newWorkerId, waitForState } from '../harness/lifecycle-env';
import { workerProcessGroups } from '../harness/process-inspection';

const taskQueue = `lifecycle-e2e-${process.pid}`;
let e2e: LifecycleE2e;
let workers: Worker[] = [];
let api: RunningCorralApi;
let running: Promise<void>;
let connection: NativeConnection;

before(async () => {
  e2e = await useLifecycleE2e();
  connection = await NativeConnection.connect({ address: e2e.temporal.address });
  workers = await createCorralPollers({
    connection,
    namespace: e2e.temporal.namespace,
    taskQueue,
    activities: createCorralActivities({
      store: e2e.registry.store,
      claims: new ClaimStore(e2e.registry.db),
      claimAckWindowMs: 15_000,
      runtime: e2e.runtime,
      heartbeatIntervalMs: 1_000,
    }),
    capacity: parseWorkerCapacity({}),
  });
  running = runCorralPollers(workers);
  api = await startCorralApi({
    claims: new ClaimStore(e2e.registry.db),
    workers: e2e.registry.store,
    pools: new PoolStore(e2e.registry.db),
    temporal: e2e.client,
    taskQueue,
    port: 0,
    host: '127.0.0.1',
    tokens: null,
    ackWindowMs: 15_000,
  });
});
after(async () => {
  await api?.close();
  for (const w of workers) w.shutdown();
  await running;
  await connection?.close();
  await e2e?.close();
});

test('spawn → idle → claimed → hot_idle → retired: registry and history agree, no credential bytes in history', async () => {
  const workerId = newWorkerId();
  const pool = 'e2e';
  const handle = await e2e.client.workflow.start('workerLifecycleWorkflow', {
    taskQueue,
    workflowId: workerLifecycleWorkflowId(pool, workerId),
    args: [{ workerId, pool, settings: demoWorkerSettings }],
  });
  await waitForState(handle, 'idle');
  const idle = await handle.query(describeQuery);
  assert.ok(idle.endpoint && idle.podName);
  const ref = { workerId, pool, spawnAttempt: idle.spawnAttempt, name: idle.podName };
  const token = (JSON.parse(fs.readFileSync(e2e.runtime.credentialsPath(ref), 'utf8')) as { token: string }).token;
  assert.ok(token.length >= 16);

  // The worker's workflow was started on its own (no pool workflow): the pool row is what claims read.
  await e2e.registry.db.query(`INSERT INTO pools (name, spec) VALUES ($1, $2::jsonb)`, [
    pool,
    JSON.stringify({ name: pool, maxWorkers: 1, image: demoWorkerSettings.image, releasePolicy: 'hot_idle' }),
  ]);
  const corral = new CorralClient({ url: api.url });
  const lease = await corral.claim(pool, { tenant: 'acme', requestId: 'req-1' });
  assert.equal(lease.epoch, 2);
  const health = (await (await fetch(`${lease.endpoint}/healthz`)).json()) as { tenant: string; highestEpoch: number };
  assert.deepEqual(
    [health.tenant, health.highestEpoch],
    ['acme', 2],
    'the demo worker was handed the tenant and epoch',
  );
  assert.equal((await e2e.registry.store.checkLease({ workerId, epoch: 2 })).status, 'valid');

  // Each change adopted before the next, so the workflow's search attributes show every state.
  const adopted = (state: string, epoch: number) =>
    waitFor(
      async () => {
        const described = await handle.query(describeQuery);
        return described.state === state && described.epoch === epoch;
      },
      { what: `the workflow to adopt ${state} at epoch ${epoch}`, timeoutMs: 30_000, intervalMs: 100 },
    );
  await adopted('claimed', 2);
  await corral.release(lease);
  assert.equal((await e2e.registry.store.checkLease({ workerId, epoch: 2 })).status, 'stale_lease');
  const result = await handle.result(); // hot-idle TTL (1 s), then drain and delete
  assert.deepEqual(result, { workerId, state: 'retired', epoch: 3, failureReason: null });

  const trail = await e2e.registry.store.history(workerId);
  assert.deepEqual(
    trail.map((t) => t.toState),
    ['spawning', 'activating', 'idle', 'claimed', 'hot_idle', 'draining', 'retired'],
  );
  assert.deepEqual(
    trail.map((t) => t.origin),
    [
      'lifecycle_workflow',
      'lifecycle_workflow',
      'lifecycle_workflow',
      'api',
      'api',
      'lifecycle_workflow',
      'lifecycle_workflow',
    ],
    'claim and release were the API’s, the rest the workflow’s',
  );
  assert.deepEqual(
    await upsertedStates(handle),
    trail.map((t) => t.toState),
    'Temporal recorded the same life',
  );

  const history = await historyText(handle);
  assert.ok(!history.includes(token), 'the credential token is nowhere in the history, payloads decoded');
  assert.ok(!/"token"\s*:/.test(history), 'no token field in any payload');

  assert.deepEqual(
    (await e2e.runtime.listManaged({ pool })).filter((w) => w.workerId === workerId),
    [],
  );
  assert.deepEqual(workerProcessGroups(workerId), [], 'the demo worker process is gone');
});
