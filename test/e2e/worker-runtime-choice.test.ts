// `corral worker` has no default runtime: without `--runtime` or CORRAL_RUNTIME it refuses to start
// (exit 2, one line naming both), before it contacts anything; nor does it start without the
// worker-protocol key (issue 17: otherwise anyone who can reach a worker could activate it). The process runtime, which isolates
// nothing between workers, says so once per process, however many times it is created.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot } from '../../src/embedded/tools';
import { processRuntimeWarning } from '../../src/runtime/create-pod-runtime';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let workDir: string;

before(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-runtime-choice-'));
});

after(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, cwd: repoRoot, timeout: 60_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')}: ${err.message} (signal ${err.signal ?? '-'})\n${stderr}`));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/** Nothing listens on port 1: had the worker tried to connect before refusing, it would say so. */
function workerEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env))
    if (/^(CORRAL_.*|TEMPORAL_.*|DATABASE_URL|PG[A-Z]*)$/.test(name)) delete env[name];
  return {
    ...env,
    TEMPORAL_ADDRESS: '127.0.0.1:1',
    DATABASE_URL: 'postgres://corral@127.0.0.1:1/corral',
    CORRAL_STATE_DIR: workDir,
  };
}

test('corral worker without --runtime or CORRAL_RUNTIME refuses to start, naming both', async () => {
  for (const env of [workerEnvironment(), { ...workerEnvironment(), CORRAL_RUNTIME: '' }]) {
    const result = await run(path.join(repoRoot, 'bin', 'corral'), ['worker'], env);
    assert.equal(result.code, 2, `exit 2 (usage); stderr: ${result.stderr}`);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
    assert.match(lines[0], /--runtime: required \(or set CORRAL_RUNTIME\)/);
    assert.match(lines[0], /kubernetes/);
    assert.match(lines[0], /process .*isolates nothing between workers/);
    assert.equal(result.stdout, '');
  }
});

test('corral worker without CORRAL_WORKER_PROTOCOL_KEY refuses to start, naming it, for either runtime', async () => {
  for (const runtime of ['process', 'kubernetes']) {
    const env = { ...workerEnvironment(), CORRAL_RUNTIME: runtime, CORRAL_KUBE_NAMESPACE: 'corral-workers' };
    const result = await run(path.join(repoRoot, 'bin', 'corral'), ['worker'], env);
    assert.equal(result.code, 2, `exit 2 (usage); stderr: ${result.stderr}`);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
    assert.match(lines[0], /CORRAL_WORKER_PROTOCOL_KEY is not set \(required: it signs every call to a worker\)/);
    assert.equal(result.stdout, '');
  }
});

test('the process runtime warns once per process that it isolates nothing', async () => {
  const script = [
    "const { createPodRuntime } = require('./src/runtime/create-pod-runtime');",
    `const stateDir = ${JSON.stringify(path.join(workDir, 'workers'))};`,
    "createPodRuntime({ runtime: 'process', stateDir });",
    "createPodRuntime({ runtime: 'process', stateDir });",
  ].join('\n');
  const result = await run(process.execPath, ['--require', 'tsx/cjs', '-e', script], process.env);
  assert.equal(result.code, 0, result.stderr);
  const warnings = result.stderr.split('\n').filter((line) => line === processRuntimeWarning);
  assert.equal(warnings.length, 1, `exactly one warning on stderr, got:\n${result.stderr}`);
  assert.match(processRuntimeWarning, /isolates nothing between workers/);
});
