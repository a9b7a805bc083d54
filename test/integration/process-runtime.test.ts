// The process runtime (corral's embedded default) passes the same behavioural suite as the
// Kubernetes runtime, with real child processes and the demo worker; plus what only a process
// runtime has: orphans found again after corral itself dies, and a clean environment.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { repoRoot } from '../../src/embedded/tools';
import { RuntimeInputError } from '../../src/runtime/errors';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import { environOf, isAlive, workerProcessGroups } from '../harness/process-inspection';
import { credentials, newWorkerId, runtimeBehaviourSuite, type RuntimeFixture } from './runtime-behaviour';

const pool = 'ppool';
let stateDir: string;
let fixture: RuntimeFixture;
const makeRuntime = () => new ProcessPodRuntime({ stateDir, workDir: repoRoot });

const baseSpec = (workerId: string, image: string, args: string[] = []) => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image,
  args,
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
  maxLifetimeSeconds: 3_600,
});
const recordOf = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(stateDir, 'workers', name, 'worker.json'), 'utf8')) as {
    process: { pid: number };
  };

before(() => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-process-runtime-'));
  fixture = {
    name: 'process',
    runtime: makeRuntime(),
    pool,
    reopen: makeRuntime,
    neverReadyReason: 'spawn_timeout',
    invalidImageInput: 'bin/worker\nrm -rf /',
    scenario(kind, workerId) {
      switch (kind) {
        case 'ready':
          return { spec: baseSpec(workerId, 'bin/corral-demo-worker') };
        case 'crash':
          return { spec: baseSpec(workerId, '/bin/sh', ['-c', 'exit 3']) };
        case 'invalidImage':
          return { spec: baseSpec(workerId, '/nonexistent/corral-worker') };
        case 'neverReady':
          return { spec: baseSpec(workerId, '/bin/sleep', ['3600']) };
      }
    },
    async inspect(workerId) {
      const dirs = fs.existsSync(path.join(stateDir, 'workers')) ? fs.readdirSync(path.join(stateDir, 'workers')) : [];
      const secrets = dirs.filter(
        (d) => d.includes(`-${workerId}-`) && fs.existsSync(path.join(stateDir, 'workers', d, 'credentials.json')),
      );
      return { pods: workerProcessGroups(workerId).length, secrets: secrets.length };
    },
    async readCredentials(ref) {
      const file = path.join(stateDir, 'workers', ref.name, 'credentials.json');
      return { content: fs.readFileSync(file, 'utf8'), mode: fs.statSync(file).mode };
    },
    async describeWorker(ref) {
      const dir = path.join(stateDir, 'workers', ref.name);
      const { pid } = recordOf(ref.name).process;
      return [
        fs.readFileSync(path.join(dir, 'worker.json'), 'utf8'),
        fs.readFileSync(path.join(dir, 'output.log'), 'utf8'),
        JSON.stringify([...environOf(pid)]),
      ].join('\n');
    },
    async checkEndpoint(endpoint) {
      const res = await fetch(`${endpoint}/healthz`, { signal: AbortSignal.timeout(2_000) });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { protocol: string }).protocol, 'corral.worker/v1');
    },
  };
});

after(async () => {
  // Whatever a failed test left behind must not outlive the run.
  const runtime = makeRuntime();
  for (const worker of await runtime.listManaged()) {
    await runtime.delete({
      name: worker.name,
      workerId: worker.workerId,
      pool: worker.pool,
      spawnAttempt: worker.spawnAttempt,
    });
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
});

runtimeBehaviourSuite(() => fixture);

async function spawnFromDyingCorral(workerId: string, image: string, args: string[] = []) {
  const input = JSON.stringify({
    stateDir,
    workDir: repoRoot,
    spec: baseSpec(workerId, image, args),
    credentials: { ...credentials(1), expiresAt: new Date(Date.now() + 3_600_000).toISOString() },
  });
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), path.join(repoRoot, 'test/harness/spawn-worker-and-exit.ts')],
    { timeout: 30_000, env: { ...process.env, CORRAL_TEST_SPAWN_INPUT: input } },
  );
  return JSON.parse(stdout.trim()) as { name: string; workerId: string; pool: string; spawnAttempt: number };
}

test('a worker orphaned by a dead corral is found by its pid file, adopted, awaited and deleted', async () => {
  const workerId = newWorkerId();
  const ref = await spawnFromDyingCorral(workerId, 'bin/corral-demo-worker');
  const { pid } = recordOf(ref.name).process;
  assert.ok(isAlive(pid), 'the worker outlived the corral process that spawned it');

  const restarted = makeRuntime();
  assert.ok((await restarted.listManaged({ pool })).some((w) => w.name === ref.name && w.hasPod));
  const adopted = await restarted.create(baseSpec(workerId, 'bin/corral-demo-worker'), credentials(1));
  assert.equal(adopted.created, false);
  assert.equal(recordOf(ref.name).process.pid, pid, 'adopted, not respawned');
  const outcome = await restarted.awaitReady(ref, { timeoutMs: 20_000 });
  assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
  assert.equal(workerProcessGroups(workerId).length, 1);

  await restarted.delete(ref);
  assert.ok(!isAlive(pid), 'delete stopped the orphan');
  assert.deepEqual(workerProcessGroups(workerId), []);
});

test('an orphan that dies while nobody is its parent is still reported as pod_crashed', async () => {
  const workerId = newWorkerId();
  const ref = await spawnFromDyingCorral(workerId, '/bin/sleep', ['3600']);
  const { pid } = recordOf(ref.name).process;
  const restarted = makeRuntime();
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  const outcome = restarted.awaitReady(ref, { timeoutMs: 20_000, onWaiting: markWaiting });
  await waiting;
  process.kill(-pid, 'SIGKILL');
  const result = await outcome;
  assert.equal(result.status === 'failed' && result.reason, 'pod_crashed', JSON.stringify(result));
  await restarted.delete(ref);
});

test("workers do not inherit corral's environment (no DATABASE_URL or other secrets)", async () => {
  const workerId = newWorkerId();
  process.env.DATABASE_URL = 'postgres://corral:hunter2@db.internal/corral';
  try {
    const { ref } = await fixture.runtime.create(
      { ...baseSpec(workerId, '/bin/sleep', ['3600']), env: { WORKER_MODE: 'test' } },
      credentials(1),
    );
    const env = environOf(recordOf(ref.name).process.pid);
    assert.equal(env.get('DATABASE_URL'), undefined);
    assert.equal(env.get('WORKER_MODE'), 'test', 'the pool-configured env arrives');
    assert.equal(env.get('CORRAL_WORKER_ID'), workerId);
    assert.equal(env.get('CORRAL_CREDENTIALS_FILE'), path.join(stateDir, 'workers', ref.name, 'credentials.json'));
    await fixture.runtime.delete(ref);
  } finally {
    delete process.env.DATABASE_URL;
  }
});

test('a state dir corral may not write is an invalid stateDir (config_error), not an unreachable runtime', async () => {
  // A file where the directory should be: ENOTDIR even as root (an unwritable dir is EACCES only for non-root).
  const notADir = path.join(stateDir, 'not-a-dir');
  fs.writeFileSync(notADir, '');
  const runtime = new ProcessPodRuntime({ stateDir: notADir, workDir: repoRoot });
  await assert.rejects(
    runtime.create(baseSpec(newWorkerId(), 'bin/corral-demo-worker'), credentials(1)),
    (err: unknown) =>
      err instanceof RuntimeInputError &&
      err.field === 'stateDir' &&
      /ENOTDIR/.test(err.message) &&
      /CORRAL_PROCESS_STATE_DIR/.test(err.message),
  );
});
