// The demo worker speaks the worker protocol: health with its protocol version, activation
// that refuses a lower epoch than it has seen and reads the mounted credentials (never echoing
// them), and drain. It runs here as corral runs it locally: a real process from the process
// runtime; and from the bundle its image is built from.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { repoRoot } from '../../src/embedded/tools';
import { freePort } from '../../src/embedded/ports';
import { waitFor } from '../../src/embedded/wait';
import { workerUid } from '../../src/runtime/kubernetes/pod-manifest';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import type { WorkerPodRef } from '../../src/runtime/worker-pod-spec';
import { credentials, newWorkerId } from './runtime-behaviour';

let stateDir: string;
let runtime: ProcessPodRuntime;
let ref: WorkerPodRef;
let endpoint: string;
const firstCredentials = credentials(1);

async function call(method: 'GET' | 'POST', route: string, body?: unknown) {
  const res = await fetch(`${endpoint}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

before(async () => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-demo-worker-'));
  runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
  const workerId = newWorkerId();
  ({ ref } = await runtime.create(
    {
      workerId,
      pool: 'demo',
      spawnAttempt: 1,
      epoch: 1,
      image: 'bin/corral-demo-worker',
      resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
      maxLifetimeSeconds: 3_600,
    },
    firstCredentials,
  ));
  const outcome = await runtime.awaitReady(ref, { timeoutMs: 20_000 });
  assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
  endpoint = outcome.status === 'ready' ? outcome.endpoint : '';
});

after(async () => {
  await runtime?.delete(ref);
  fs.rmSync(stateDir, { recursive: true, force: true });
});

test('health answers with the protocol version and the worker id', async () => {
  const health = await call('GET', '/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(
    { protocol: health.json.protocol, workerId: health.json.workerId, status: health.json.status },
    { protocol: 'corral.worker/v1', workerId: ref.workerId, status: 'serving' },
  );
});

test('activation takes the highest epoch, refuses a lower one, and reports the credential version only', async () => {
  const activated = await call('POST', '/activate', { workerId: ref.workerId, epoch: 2, tenant: 'acme' });
  assert.equal(activated.status, 200, activated.text);
  assert.deepEqual(activated.json, { workerId: ref.workerId, epoch: 2, tenant: 'acme', credentialVersion: 1 });
  assert.ok(!activated.text.includes(firstCredentials.token), 'the token is never echoed');

  const stale = await call('POST', '/activate', { workerId: ref.workerId, epoch: 1, tenant: 'evil' });
  assert.equal(stale.status, 409);
  assert.deepEqual(stale.json, { error: 'stale_epoch', highestEpoch: 2 });

  const same = await call('POST', '/activate', { workerId: ref.workerId, epoch: 2, tenant: 'acme' });
  assert.equal(same.status, 200, 'the same epoch again is an idempotent re-activation');

  // A refresh: corral rotates the credentials file, then re-activates with the new epoch.
  await runtime.writeCredentials(ref, credentials(3, 2));
  const refreshed = await call('POST', '/activate', { workerId: ref.workerId, epoch: 3, tenant: 'acme' });
  assert.equal(refreshed.json.credentialVersion, 2, 'the worker re-read the mounted file');

  const wrongWorker = await call('POST', '/activate', { workerId: 'someone-else', epoch: 9, tenant: 'acme' });
  assert.equal(wrongWorker.status, 409);
  assert.equal(wrongWorker.json.error, 'wrong_worker');

  const invalid = await call('POST', '/activate', { workerId: ref.workerId, epoch: -1, tenant: 'acme' });
  assert.equal(invalid.status, 400);
  assert.deepEqual(
    { error: invalid.json.error, field: invalid.json.field },
    { error: 'invalid_request', field: 'epoch' },
  );
});

test('after drain the worker refuses activations and says it is draining', async () => {
  const drained = await call('POST', '/drain');
  assert.equal(drained.status, 200);
  const refused = await call('POST', '/activate', { workerId: ref.workerId, epoch: 10, tenant: 'acme' });
  assert.equal(refused.status, 409);
  assert.equal(refused.json.error, 'draining');
  assert.equal((await call('GET', '/healthz')).json.status, 'draining');
});

test('the image build: the bundled demo worker serves, and the Dockerfile builds it that way as uid 65532', async () => {
  const dockerfile = fs.readFileSync(path.join(repoRoot, 'src/demo-worker/Dockerfile'), 'utf8');
  assert.match(dockerfile, /^RUN npm run build:demo-worker$/m);
  assert.match(
    dockerfile,
    new RegExp(`^USER ${workerUid}:${workerUid}$`, 'm'),
    'the image user matches the pod runAsUser',
  );

  await promisify(execFile)('npm', ['run', '--silent', 'build:demo-worker'], { cwd: repoRoot, timeout: 60_000 });
  const bundle = path.join(repoRoot, 'dist/demo-worker/main.js');
  const port = await freePort();
  const credentialsFile = path.join(stateDir, 'bundle-credentials.json');
  fs.writeFileSync(
    credentialsFile,
    JSON.stringify({ epoch: 1, version: 1, expiresAt: new Date().toISOString(), token: 'x'.repeat(32) }),
    { mode: 0o600 },
  );
  const child = spawn(process.execPath, [bundle], {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      HOST: '127.0.0.1',
      CORRAL_WORKER_ID: 'bundled',
      CORRAL_CREDENTIALS_FILE: credentialsFile,
    },
    stdio: 'ignore',
  });
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) })).ok,
      { what: 'the bundled demo worker', timeoutMs: 15_000 },
    );
    const activated = await fetch(`http://127.0.0.1:${port}/activate`, {
      method: 'POST',
      body: JSON.stringify({ workerId: 'bundled', epoch: 1, tenant: 'acme' }),
      signal: AbortSignal.timeout(2_000),
    });
    assert.equal(activated.status, 200);
  } finally {
    child.kill('SIGTERM');
  }
});
