// corral-test-needs: test-server
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createTimeSkippingEnv } from '../harness/time-skipping';
import { sleepForDaysWorkflow } from '../workflows/smoke';

const sevenDaysMs = 7 * 24 * 60 * 60 * 1000;
let env: TestWorkflowEnvironment;

before(async () => {
  env = await createTimeSkippingEnv();
});
after(async () => {
  await env?.teardown();
});

test('a workflow sleeping 7 days completes under the time-skipping server, whose clock moved 7 days', async () => {
  const taskQueue = 'smoke-time-skipping';
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../workflows/smoke'),
  });
  const serverClockBefore = await env.currentTimeMs();
  const result = await worker.runUntil(
    env.client.workflow.execute(sleepForDaysWorkflow, { args: [7], taskQueue, workflowId: 'smoke-sleep-7-days' }),
  );
  const serverClockAfter = await env.currentTimeMs();

  assert.ok(result.wokeAtMs - result.startedAtMs >= sevenDaysMs, 'the workflow timer spanned 7 days of workflow time');
  assert.ok(serverClockAfter - serverClockBefore >= sevenDaysMs, 'the test server clock advanced at least 7 days');
});
