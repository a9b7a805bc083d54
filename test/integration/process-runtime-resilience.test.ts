// The process runtime under issue 16's rules, with real child processes: a readiness wait that
// ends at its deadline says why (the worker's health hook failing → health_check_failed; nothing
// accepting yet → spawn_timeout, in the shared suite; exit 124 → deadline_exceeded); a create
// cancelled after it wrote leaves no process and no files; credential writes never go backwards,
// and a lock left by a writer that died holding it is broken.
// The process runtime has no notion of capacity (no quota): quota_exceeded is Kubernetes-only.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRuntimeActivities } from '../../src/activities/runtime-activities';
import { repoRoot } from '../../src/embedded/tools';
import { runtimeFailureTypes, type WorkerPodRef } from '../../src/common';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import { workerProcessGroups } from '../harness/process-inspection';
import { credentials, newWorkerId } from './runtime-behaviour';

const pool = 'presil';
const unhealthyWorker = 'test/fixtures/process-workers/unhealthy-worker.mjs';
let stateDir: string;
let runtime: ProcessPodRuntime;

const spec = (workerId: string, image: string, args: string[] = []) => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image,
  args,
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
  maxLifetimeSeconds: 3_600,
});

/** What exists for a worker, counted without the runtime: its process group and its directory. */
function inspect(workerId: string, ref: WorkerPodRef): { processes: number; directory: boolean } {
  return {
    processes: workerProcessGroups(workerId).length,
    directory: fs.existsSync(path.join(stateDir, 'workers', ref.name)),
  };
}

before(() => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-process-resilience-'));
  runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot, healthTimeoutMs: 300 });
});

after(async () => {
  for (const w of await runtime.listManaged()) {
    await runtime.delete({ name: w.name, workerId: w.workerId, pool: w.pool, spawnAttempt: w.spawnAttempt });
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
});

/** Creates the worker and waits `timeoutMs` once it accepts connections (or its process runs). */
async function waitOut(image: string, args: string[], timeoutMs: number) {
  const { ref } = await runtime.create(spec(newWorkerId(), image, args), credentials(1));
  const outcome = await runtime.awaitReady(ref, { timeoutMs });
  await runtime.delete(ref);
  return outcome;
}

test('alive with a health hook that answers an error at the deadline is health_check_failed', async () => {
  const outcome = await waitOut(unhealthyWorker, [], 2_000);
  assert.equal(outcome.status === 'failed' && outcome.reason, 'health_check_failed', JSON.stringify(outcome));
  assert.match(outcome.status === 'failed' ? outcome.detail : '', /health hook \/healthz answers an error status/);
});

test('alive with a health hook that accepts but never answers is health_check_failed', async () => {
  const outcome = await waitOut(unhealthyWorker, ['hang'], 2_000);
  assert.equal(outcome.status === 'failed' && outcome.reason, 'health_check_failed', JSON.stringify(outcome));
  assert.match(outcome.status === 'failed' ? outcome.detail : '', /accepts connections but does not answer/);
});

test('a worker that exits 124 (its timeout fired) is deadline_exceeded; any other exit is pod_crashed', async () => {
  const timedOut = await waitOut('/bin/sh', ['-c', 'exit 124'], 20_000);
  assert.equal(timedOut.status === 'failed' && timedOut.reason, 'deadline_exceeded', JSON.stringify(timedOut));
  const crashed = await waitOut('/bin/sh', ['-c', 'exit 125'], 20_000);
  assert.equal(crashed.status === 'failed' && crashed.reason, 'pod_crashed', JSON.stringify(crashed));
});

test('a create aborted after it wrote (directory, record, credentials) leaves no process and no files', async () => {
  const workerId = newWorkerId();
  const controller = new AbortController();
  const creating = runtime.create(spec(workerId, 'bin/corral-demo-worker'), credentials(1), {
    signal: controller.signal,
  });
  // create() has run up to its first wait: the worker's directory and credentials are written.
  const ref = { workerId, pool, spawnAttempt: 1, name: `${pool}-${workerId}-1` };
  assert.equal(fs.existsSync(path.join(stateDir, 'workers', ref.name, 'credentials.json')), true);
  controller.abort(new Error('activity cancelled'));
  await assert.rejects(creating, /activity cancelled/);
  assert.deepEqual(inspect(workerId, ref), { processes: 0, directory: false });
});

test('an activity cancelled during spawnWorkerPod leaves no process and no files', async () => {
  const activities = createRuntimeActivities(runtime);
  const env = new MockActivityEnvironment();
  const workerId = newWorkerId();
  const spawning = env.run(activities.spawnWorkerPod, {
    spec: spec(workerId, 'bin/corral-demo-worker'),
    credentialVersion: 1,
    credentialExpiresAt: new Date(Date.now() + 600_000).toISOString(),
  });
  env.cancel();
  await assert.rejects(spawning);
  assert.deepEqual(inspect(workerId, { workerId, pool, spawnAttempt: 1, name: `${pool}-${workerId}-1` }), {
    processes: 0,
    directory: false,
  });
});

test('rotateCredentials with an older version after a newer one is RuntimeStaleWrite and leaves the newer file', async () => {
  const activities = createRuntimeActivities(runtime);
  const env = new MockActivityEnvironment();
  const { ref } = await runtime.create(spec(newWorkerId(), '/bin/sleep', ['3600']), credentials(1));
  const expiresAt = new Date(Date.now() + 600_000).toISOString();
  await env.run(activities.rotateCredentials, { ref, epoch: 4, version: 3, expiresAt });
  const file = path.join(stateDir, 'workers', ref.name, 'credentials.json');
  const newer = fs.readFileSync(file, 'utf8');
  await assert.rejects(
    env.run(activities.rotateCredentials, { ref, epoch: 4, version: 2, expiresAt }),
    (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.type === runtimeFailureTypes.staleWrite &&
      err.nonRetryable &&
      JSON.stringify(err.details?.[0]) ===
        JSON.stringify({
          name: `${ref.name}/credentials.json`,
          stored: { epoch: 4, version: 3 },
          attempted: { epoch: 4, version: 2 },
        }),
  );
  assert.equal(fs.readFileSync(file, 'utf8'), newer, 'the newer credentials are untouched');
  assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600');
  await runtime.delete(ref);
});

test('a credential lock left by a writer that died holding it is broken, and the write goes through', async () => {
  const { ref } = await runtime.create(spec(newWorkerId(), '/bin/sleep', ['3600']), credentials(1));
  const lock = path.join(stateDir, 'workers', ref.name, 'credentials.lock');
  const file = path.join(stateDir, 'workers', ref.name, 'credentials.json');
  const versionOnDisk = () => (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: number }).version;
  // A holder does its read-compare-write synchronously, in microseconds: a lock that stays is a
  // dead (or frozen) writer's. Written just now, it is waited for until it has looked dead long enough.
  fs.writeFileSync(lock, '1', { mode: 0o600 });
  await runtime.writeCredentials(ref, credentials(2, 2));
  assert.equal(versionOnDisk(), 2);
  assert.equal(fs.existsSync(lock), false, 'the writer released its lock');
  // Long dead: broken at once.
  fs.writeFileSync(lock, '1', { mode: 0o600 });
  const long = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, long, long);
  await runtime.writeCredentials(ref, credentials(3, 3));
  assert.equal(versionOnDisk(), 3);
  await runtime.delete(ref);
});

test("an aborted credential write rejects with the caller's reason and writes nothing", async () => {
  const { ref } = await runtime.create(spec(newWorkerId(), '/bin/sleep', ['3600']), credentials(1));
  const controller = new AbortController();
  controller.abort(new Error('activity cancelled'));
  await assert.rejects(
    runtime.writeCredentials(ref, credentials(2, 2), { signal: controller.signal }),
    /activity cancelled/,
  );
  const file = path.join(stateDir, 'workers', ref.name, 'credentials.json');
  assert.equal((JSON.parse(fs.readFileSync(file, 'utf8')) as { version: number }).version, 1);
  await runtime.delete(ref);
});
