// What a worker sends back is bounded before it enters history or logs: at most 64 KiB of a body
// is read, and at most 256 characters of any text it carries are kept (issue 17, part 5).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRuntimeActivities } from '../../src/activities/runtime-activities';
import { workerProtocolV1 } from '../../src/common';
import { maxWorkerTextLength, postActivation, postDrain } from '../../src/runtime/worker-protocol-client';
import type { PodRuntime } from '../../src/runtime/pod-runtime';

const workerId = 'w-bloated-1';
const megabyte = 1024 * 1024;
let server: http.Server;
let endpoint: string;
/** What the hostile worker answers to POST /activate and POST /drain. */
let errorBody: string;

before(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'serving', protocol: workerProtocolV1, workerId }));
        return;
      }
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(errorBody);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** The longest run of `x` in `text`. */
function longestRun(text: string): number {
  return Math.max(0, ...(text.match(/x+/g) ?? []).map((run) => run.length));
}

// The activities never touch the runtime on these paths.
const activities = createRuntimeActivities({} as PodRuntime, { heartbeatIntervalMs: 50 });

async function activationFailure(): Promise<ApplicationFailure> {
  const env = new MockActivityEnvironment();
  const failure = await (
    env.run(activities.activateWorker, { endpoint, workerId, epoch: 1, tenant: null }) as Promise<unknown>
  ).then(
    () => assert.fail('the activation was refused'),
    (err: unknown) => err,
  );
  assert.ok(failure instanceof ApplicationFailure, String(failure));
  return failure;
}

test('a worker answering a 1 MB error body leaves at most 256 characters of it in the activity failure', async () => {
  errorBody = JSON.stringify({ error: 'x'.repeat(megabyte) });
  const failure = await activationFailure();
  const kept = JSON.stringify({ message: failure.message, details: failure.details });
  assert.ok(longestRun(kept) <= maxWorkerTextLength, `kept ${longestRun(kept)} characters`);
  assert.ok(kept.length < 1_024, `the whole failure is small (${kept.length} characters)`);
});

test('an error text under the read cap is kept to 256 characters, in message and details alike', async () => {
  errorBody = JSON.stringify({ error: 'x'.repeat(10_000) });
  const failure = await activationFailure();
  assert.equal(failure.type, 'ActivationRefused');
  assert.equal(longestRun(failure.message), maxWorkerTextLength);
  assert.equal((failure.details?.[0] as { error: string }).error.length, maxWorkerTextLength);

  const drain = await postDrain(endpoint, { workerId, epoch: 1 }, AbortSignal.timeout(10_000));
  assert.equal(drain.outcome, 'refused');
  assert.equal(drain.outcome === 'refused' ? drain.error?.length : -1, maxWorkerTextLength);
});

test('a body past the read cap is not parsed: no text of it is kept', async () => {
  errorBody = JSON.stringify({ error: 'x'.repeat(megabyte), highestEpoch: 7 });
  const answer = await postActivation(endpoint, { workerId, epoch: 1, tenant: null }, AbortSignal.timeout(10_000));
  assert.deepEqual(answer, { outcome: 'refused', status: 409, error: null, highestEpoch: null });
  const drain = await postDrain(endpoint, { workerId, epoch: 1 }, AbortSignal.timeout(10_000));
  assert.deepEqual(drain, { outcome: 'refused', acknowledged: false, drained: false, error: null });
});
