// The runtime activities with a real process runtime and the demo worker, run in Temporal's
// activity test environment (real Context: heartbeats and cancellation).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRuntimeActivities, type RuntimeActivities } from '../../src/activities/runtime-activities';
import { repoRoot } from '../../src/embedded/tools';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import { deriveWorkerKey, generateWorkerProtocolKey } from '../../src/runtime/worker-protocol-proof';
import { workerProtocolV2 } from '../../src/common';
import { newWorkerId } from './runtime-behaviour';

let stateDir: string;
let runtime: ProcessPodRuntime;
let activities: RuntimeActivities;

/** MockActivityEnvironment.run with its result type kept (its generic infers `unknown` here). */
function run<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run(fn, ...args) as Promise<R>;
}

const spec = (workerId: string, image = 'bin/corral-demo-worker', args: string[] = []) => ({
  workerId,
  pool: 'acts',
  spawnAttempt: 1,
  epoch: 1,
  image,
  args,
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
  maxLifetimeSeconds: 3_600,
});

before(() => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-runtime-activities-'));
  runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
  activities = createRuntimeActivities(runtime, { heartbeatIntervalMs: 50 });
});

after(async () => {
  for (const w of await runtime.listManaged()) {
    await runtime.delete({ name: w.name, workerId: w.workerId, pool: w.pool, spawnAttempt: w.spawnAttempt });
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
});

test('spawn, wait (heartbeating), activate, refresh: the workflow only ever sees versions and expiries', async () => {
  const env = new MockActivityEnvironment();
  let heartbeats = 0;
  env.on('heartbeat', () => heartbeats++);
  const workerId = newWorkerId();
  const spawned = await run(env, activities.spawnWorkerPod, {
    spec: spec(workerId),
    credentialVersion: 1,
    credentialExpiresAt: new Date(Date.now() + 600_000).toISOString(),
  });
  assert.equal(spawned.created, true);
  assert.equal(spawned.credentials.version, 1);
  const token1 = (JSON.parse(fs.readFileSync(runtime.credentialsPath(spawned.ref), 'utf8')) as { token: string }).token;

  const ready = await run(env, activities.awaitWorkerReady, { ref: spawned.ref, timeoutMs: 20_000 });
  assert.equal(ready.status, 'ready', JSON.stringify(ready));
  assert.ok(heartbeats >= 1, 'the wait heartbeats');
  const endpoint = ready.status === 'ready' ? ready.endpoint : '';

  // Warm and unclaimed: activated without a tenant; then bound to one at the claim's epoch.
  assert.deepEqual(await run(env, activities.activateWorker, { endpoint, workerId, epoch: 1, tenant: null }), {
    credentialVersion: 1,
  });
  const activated = await run(env, activities.activateWorker, { endpoint, workerId, epoch: 2, tenant: 'acme' });
  assert.deepEqual(activated, { credentialVersion: 1 });

  const expiresAt = new Date(Date.now() + 600_000).toISOString();
  const rotated = await run(env, activities.rotateCredentials, { ref: spawned.ref, epoch: 3, version: 2, expiresAt });
  assert.deepEqual(rotated, { version: 2, expiresAt }, 'the expiry is the one the workflow chose');
  await assert.rejects(
    run(env, activities.rotateCredentials, { ref: spawned.ref, epoch: 3, version: 3, expiresAt: 'tomorrow' }),
    (err: unknown) => err instanceof ApplicationFailure && err.type === 'RuntimeInputError' && err.nonRetryable,
  );
  const token2 = (JSON.parse(fs.readFileSync(runtime.credentialsPath(spawned.ref), 'utf8')) as { token: string }).token;
  assert.notEqual(token2, token1, 'a refresh mints new material');
  assert.deepEqual(await run(env, activities.activateWorker, { endpoint, workerId, epoch: 3, tenant: 'acme' }), {
    credentialVersion: 2,
  });

  const everything = JSON.stringify([spawned, ready, activated, rotated]);
  assert.ok(!everything.includes(token1) && !everything.includes(token2), 'no credential bytes in any activity result');

  await assert.rejects(
    run(env, activities.activateWorker, { endpoint, workerId, epoch: 2, tenant: 'evil' }),
    (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.type === 'ActivationRefused' &&
      err.nonRetryable &&
      (err.details?.[0] as { error: string }).error === 'stale_epoch',
  );
  assert.deepEqual(
    await run(env, activities.requestWorkerDrain, { endpoint, workerId: 'w-a-neighbour', epoch: 99 }),
    { outcome: 'refused', acknowledged: false, drained: false, error: 'wrong_worker' },
    'a drain meant for another worker behind a reused address is refused',
  );
  assert.equal(
    ((await (await fetch(`${endpoint}/healthz`)).json()) as { status: string }).status,
    'serving',
    'and drained nothing',
  );
  assert.deepEqual(await run(env, activities.requestWorkerDrain, { endpoint, workerId }), {
    outcome: 'drained',
    acknowledged: true,
    drained: true,
  });
  const health = (await (await fetch(`${endpoint}/healthz`)).json()) as { status: string };
  assert.equal(health.status, 'draining', 'the worker heard the drain');
  await run(env, activities.deleteWorkerPod, spawned.ref);
  assert.deepEqual(
    (await run(env, activities.requestWorkerDrain, { endpoint, timeoutMs: 1_000 })).outcome,
    'unreachable',
    'a worker that is gone is reported, not retried',
  );
  await run(env, activities.deleteWorkerPod, spawned.ref);
});

test('an endpoint that is not a corral worker is TypeMismatch and is never activated', async () => {
  let activations = 0;
  const impostor = http.createServer((req, res) => {
    if (req.url === '/activate') activations++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
  try {
    const endpoint = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
    await assert.rejects(
      run(new MockActivityEnvironment(), activities.activateWorker, {
        endpoint,
        workerId: 'w1',
        epoch: 1,
        tenant: 'acme',
      }),
      (err: unknown) => err instanceof ApplicationFailure && err.type === 'TypeMismatch' && err.nonRetryable,
    );
    assert.equal(activations, 0);
  } finally {
    impostor.close();
  }
});

test('cancelling the activity stops the readiness wait', async () => {
  const env = new MockActivityEnvironment();
  const spawned = await run(env, activities.spawnWorkerPod, {
    spec: spec(newWorkerId(), '/bin/sleep', ['3600']),
    credentialVersion: 1,
    credentialExpiresAt: new Date(Date.now() + 600_000).toISOString(),
  });
  const waiting = run(env, activities.awaitWorkerReady, { ref: spawned.ref, timeoutMs: 600_000 });
  env.once('heartbeat', () => env.cancel());
  await assert.rejects(waiting);
  await run(new MockActivityEnvironment(), activities.deleteWorkerPod, spawned.ref);
});

test('bad input is a non-retryable RuntimeInputError naming the field', async () => {
  await assert.rejects(
    run(new MockActivityEnvironment(), activities.spawnWorkerPod, {
      spec: {
        ...spec(newWorkerId()),
        resources: { requests: { cpuMillis: -1, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
      },
      credentialVersion: 1,
      credentialExpiresAt: new Date(Date.now() + 600_000).toISOString(),
    }),
    (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.type === 'RuntimeInputError' &&
      err.nonRetryable &&
      (err.details?.[0] as { field: string }).field === 'resources.requests.cpuMillis',
  );
});

test('with a master key: the worker key reaches the credentials file at spawn and rotation, and every call is signed', async () => {
  const masterKey = generateWorkerProtocolKey();
  const signed = createRuntimeActivities(runtime, { heartbeatIntervalMs: 50, workerProtocolKey: masterKey });
  const env = new MockActivityEnvironment();
  const workerId = newWorkerId();
  const workerKey = deriveWorkerKey(masterKey, workerId).toString('hex');
  const spawned = await run(env, signed.spawnWorkerPod, {
    spec: spec(workerId),
    credentialVersion: 1,
    credentialExpiresAt: new Date(Date.now() + 600_000).toISOString(),
  });
  const file = () =>
    JSON.parse(fs.readFileSync(runtime.credentialsPath(spawned.ref), 'utf8')) as { protocolKey?: string };
  assert.equal(file().protocolKey, workerKey);
  assert.ok(!JSON.stringify(spawned).includes(workerKey), 'the key never returns to the workflow');
  const ready = await run(env, signed.awaitWorkerReady, { ref: spawned.ref, timeoutMs: 20_000 });
  const endpoint = ready.status === 'ready' ? ready.endpoint : assert.fail(JSON.stringify(ready));
  assert.deepEqual(await (await fetch(`${endpoint}/healthz`)).json(), {
    status: 'serving',
    protocol: workerProtocolV2,
  });

  assert.deepEqual(await run(env, signed.activateWorker, { endpoint, workerId, epoch: 1, tenant: null }), {
    credentialVersion: 1,
  });
  const expiresAt = new Date(Date.now() + 600_000).toISOString();
  await run(env, signed.rotateCredentials, { ref: spawned.ref, epoch: 2, version: 2, expiresAt });
  assert.equal(file().protocolKey, workerKey, 'a rotation writes the key again');
  assert.deepEqual(await run(env, signed.activateWorker, { endpoint, workerId, epoch: 2, tenant: 'acme' }), {
    credentialVersion: 2,
  });
  // Unsigned (a corral without the key, or a neighbour): refused.
  await assert.rejects(
    run(env, activities.activateWorker, { endpoint, workerId, epoch: 3, tenant: 'evil' }),
    (err: unknown) => err instanceof ApplicationFailure && err.type === 'TypeMismatch',
  );
  assert.deepEqual(await run(env, activities.requestWorkerDrain, { endpoint, workerId, epoch: 3 }), {
    outcome: 'refused',
    acknowledged: false,
    drained: false,
    error: 'proof_missing',
  });
  assert.deepEqual(await run(env, signed.requestWorkerDrain, { endpoint, workerId, epoch: 2 }), {
    outcome: 'drained',
    acknowledged: true,
    drained: true,
  });
  await run(env, signed.deleteWorkerPod, spawned.ref);
});
