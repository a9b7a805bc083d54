// corral-test-needs: temporal
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import { Client, Connection, ScheduleOverlapPolicy } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { waitFor } from '../../src/embedded/wait';
import { corralPoolKey } from '../../src/common';
import { useTemporalDevServer, type Lease, type TemporalEndpoint } from '../harness/shared';
import { greetingWorkflow } from '../workflows/smoke';

let server: Lease<TemporalEndpoint>;
let connection: Connection;
let client: Client;

before(async () => {
  server = await useTemporalDevServer();
  connection = await Connection.connect({ address: server.value.address });
  client = new Client({ connection, namespace: server.value.namespace });
});
after(async () => {
  await connection?.close();
  await server?.release();
});

test('a workflow carrying a custom search attribute is found by a visibility query on it', async () => {
  const pool = `smoke-${crypto.randomUUID()}`;
  const taskQueue = `smoke-${crypto.randomUUID()}`;
  const handle = await client.workflow.start(greetingWorkflow, {
    args: ['corral'],
    taskQueue,
    workflowId: `smoke/${pool}`,
    typedSearchAttributes: [{ key: corralPoolKey, value: pool }],
  });
  const found = await waitFor(
    async () => {
      const ids: string[] = [];
      for await (const wf of client.workflow.list({ query: `CorralPool = "${pool}"` })) ids.push(wf.workflowId);
      return ids.length > 0 ? ids : undefined;
    },
    { what: 'the workflow in visibility', timeoutMs: 30_000, intervalMs: 200 },
  );
  assert.deepEqual(found, [handle.workflowId]);
  await handle.terminate('smoke test done');
});

test('a Schedule starts a workflow run that a worker completes', async () => {
  const taskQueue = `smoke-schedule-${crypto.randomUUID()}`;
  const workerConnection = await NativeConnection.connect({ address: server.value.address });
  const worker = await Worker.create({
    connection: workerConnection,
    namespace: server.value.namespace,
    taskQueue,
    workflowsPath: require.resolve('../workflows/smoke'),
  });
  const scheduleId = `smoke-${crypto.randomUUID()}`;
  const schedule = await client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: '1 hour' }] },
    action: { type: 'startWorkflow', workflowType: greetingWorkflow, args: ['schedule'], taskQueue },
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
    state: { triggerImmediately: true },
  });
  try {
    const result = await worker.runUntil(async () => {
      const action = await waitFor(async () => (await schedule.describe()).info.recentActions[0]?.action, {
        what: 'the schedule to start a run',
        timeoutMs: 30_000,
        intervalMs: 200,
      });
      return client.workflow.getHandle(action.workflow.workflowId, action.workflow.firstExecutionRunId).result();
    });
    assert.equal(result, 'hello, schedule');
  } finally {
    await schedule.delete();
    await workerConnection.close();
  }
});

test('the Web UI answers HTTP 200', async () => {
  const res = await fetch(server.value.uiUrl, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /<html/i);
});
