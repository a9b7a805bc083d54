// The `corral` CLI as a person (and a script) meets it: the real bin/corral process against the
// corral API of an in-process corral worker running demo workers, with no DATABASE_URL and no
// Temporal address in its environment (only CORRAL_API_URL). Checks what is printed, the exit
// codes (0 ok, 1 operational failure, 2 bad usage) and that bad input writes nothing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { repoRoot } from '../../src/embedded/tools';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

let e2e: PoolE2e;
let workDir: string;

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** This process's environment without anything that could reach the registry or Temporal directly. */
function cliEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(DATABASE_URL|PG[A-Z]*|TEMPORAL_.*|CORRAL_TEST_.*)$/.test(name)) delete env[name];
  }
  return env;
}

function corral(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      path.join(repoRoot, 'bin', 'corral'),
      args,
      {
        timeout: 120_000,
        env: {
          ...cliEnvironment(),
          CORRAL_API_URL: e2e.api.url,
          // No endpoints file from a developer's `make start` may leak in.
          CORRAL_STATE_DIR: workDir,
          ...env,
        },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A usage or operational error: one line on stderr, no stack trace, nothing on stdout. */
function assertOneLineError(run: CliRun, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, `exit code; stderr: ${run.stderr}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${run.stderr}`);
  assert.match(lines[0]!, /^corral: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(run.stdout, '');
}

function writePoolFile(name: string, body: string): string {
  const file = path.join(workDir, name);
  fs.writeFileSync(file, body);
  return file;
}

before(async () => {
  e2e = await usePoolE2e();
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-cli-'));
});

after(async () => {
  await e2e?.close();
});

describe('bad usage: one useful line and exit code 2, nothing written', () => {
  test('an unknown command suggests the right one', async () => {
    assertOneLineError(await corral(['clam', 'demo']), 2, /unknown command 'clam'.*claim/);
  });

  test('claim without --tenant names the option', async () => {
    assertOneLineError(await corral(['claim', 'cli-demo']), 2, /required option '--tenant <name>' not specified/);
  });

  test('a malformed pool.yaml names the file and the line', async () => {
    const file = writePoolFile('malformed.yaml', 'name: cli-bad\nruntime: process\n  image: [oops\n');
    assertOneLineError(await corral(['pool', 'apply', '-f', file]), 2, /malformed\.yaml: not valid YAML: .*line 2/);
  });

  test('a pool.yaml breaking a floor names the field and the floor', async () => {
    const spec = demoPoolSpec('cli-floor', { deadlines: { spawn: '1s' } });
    const file = writePoolFile('floor.yaml', stringify(spec));
    assertOneLineError(
      await corral(['pool', 'apply', '-f', file]),
      2,
      /floor\.yaml: deadlines\.spawn: must be at least 10s/,
    );
    assert.equal(await e2e.pools.getPool('cli-floor'), null, 'no pool row written');
  });

  test('an unknown --state value lists the states', async () => {
    assertOneLineError(await corral(['workers', 'list', '--state', 'asleep']), 2, /--state: unknown state "asleep"/);
  });

  test('--version prints the package version and exits 0', async () => {
    const run = await corral(['--version']);
    assert.equal(run.code, 0, run.stderr);
    const { version } = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(run.stdout.trim(), version);
  });

  test('--help works on every command and exits 0', async () => {
    for (const args of [
      [],
      ['pool'],
      ['pool', 'apply'],
      ['workers', 'list'],
      ['claim'],
      ['lease', 'check'],
      ['history'],
    ]) {
      const run = await corral([...args, '--help']);
      assert.equal(run.code, 0, `corral ${args.join(' ')} --help: ${run.stderr}`);
      assert.match(run.stdout, /^Usage: corral/);
    }
  });
});

describe('operational failures: exit code 1', () => {
  test('a claim on an unknown pool says so in one line; --debug adds the stack trace', async () => {
    assertOneLineError(
      await corral(['claim', 'cli-nowhere', '--tenant', 'acme']),
      1,
      /pool not found: no pool named cli-nowhere/,
    );
    const debug = await corral(['claim', 'cli-nowhere', '--tenant', 'acme', '--debug']);
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /^\s+at /m, 'stack trace with --debug');
  });

  test('an unreachable corral API is one sentence, not a stack', async () => {
    const run = await corral(['claim', 'cli-demo', '--tenant', 'acme'], { CORRAL_API_URL: 'http://127.0.0.1:1' });
    assertOneLineError(run, 1, /cannot reach the corral API at http:\/\/127\.0\.0\.1:1/);
  });

  test('without an API address the CLI says how to get one', async () => {
    assertOneLineError(await corral(['pool', 'list'], { CORRAL_API_URL: '' }), 2, /no corral API: set CORRAL_API_URL/);
  });
});

describe('a pool by hand: apply, claim, inspect, release, scale, drain, delete', () => {
  const pool = 'cli-demo';

  test('the whole flow prints what a person needs, and --json what a script needs', async () => {
    const file = writePoolFile('pool.yaml', stringify(demoPoolSpec(pool, { minIdle: 2, maxWorkers: 4 })));
    const applied = await corral(['pool', 'apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout.trim(), `pool ${pool} created (generation 1)`);
    assert.equal((await corral(['pool', 'apply', '-f', file])).stdout.trim(), `pool ${pool} unchanged (generation 1)`);
    await e2e.waitForCounts(pool, { idle: 2 });

    const list = await corral(['pool', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME\s+STATUS\s+GEN\s+BREAKER\s+IDLE/m);
    assert.match(list.stdout, new RegExp(`^${pool}\\s+active\\s+1\\s+closed\\s+2\\s+0`, 'm'));

    // claim, as a person reads it and as a script parses it
    const claim = await corral(['claim', pool, '--tenant', 'acme']);
    assert.equal(claim.code, 0, claim.stderr);
    const claimed = /claimed (\S+) for tenant acme \(warm path\)/.exec(claim.stdout);
    assert.ok(claimed, claim.stdout);
    const workerId = claimed[1]!;
    const epoch = Number(/epoch:\s+(\d+)/.exec(claim.stdout)?.[1]);
    assert.match(claim.stdout, new RegExp(`release it with: corral release ${workerId} --epoch ${epoch}`));

    const again = await corral(['claim', pool, '--tenant', 'globex', '--request-id', 'cli-r1', '--json']);
    assert.equal(again.code, 0, again.stderr);
    const lease = JSON.parse(again.stdout) as { workerId: string; epoch: number; tenant: string; path: string };
    assert.equal(lease.tenant, 'globex');
    assert.notEqual(lease.workerId, workerId);
    const repeat = JSON.parse(
      (await corral(['claim', pool, '--tenant', 'globex', '--request-id', 'cli-r1', '--json'])).stdout,
    );
    assert.deepEqual(repeat, lease, 'the same request id returns the same lease');

    const workers = await corral(['workers', 'list', '--pool', pool]);
    assert.match(workers.stdout, /^WORKER\s+POOL\s+STATE\s+EPOCH\s+TENANT\s+ENDPOINT/m);
    assert.match(workers.stdout, new RegExp(`^${workerId}\\s+${pool}\\s+claimed\\s+${epoch}\\s+acme\\s+http://`, 'm'));
    const claimedJson = JSON.parse(
      (await corral(['workers', 'list', '--pool', pool, '--state', 'claimed', '--json'])).stdout,
    );
    assert.deepEqual(
      (claimedJson as { workerId: string; tenant: string }[]).map((w) => [w.workerId, w.tenant]).sort(),
      [
        [workerId, 'acme'],
        [lease.workerId, 'globex'],
      ].sort(),
    );

    const check = await corral(['lease', 'check', workerId, '--epoch', String(epoch)]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, new RegExp(`valid: ${workerId} is claimed by acme at epoch ${epoch}`));

    const released = await corral(['release', workerId, '--epoch', String(epoch)]);
    assert.equal(released.code, 0, released.stderr);
    assert.equal(released.stdout.trim(), `released ${workerId}: now hot_idle at epoch ${epoch + 1}`);
    const retried = await corral(['release', workerId, '--epoch', String(epoch)]);
    assert.equal(retried.stdout, released.stdout, 'a retried release answers what the first one did');
    assertOneLineError(await corral(['release', workerId, '--epoch', String(epoch - 1)]), 1, /stale lease/);
    assertOneLineError(
      await corral(['lease', 'check', workerId, '--epoch', String(epoch)]),
      1,
      new RegExp(`stale lease: ${workerId} is hot_idle at epoch ${epoch + 1}, not ${epoch}`),
    );

    // the audit trail as a timeline, oldest first, saying who did what
    const history = await corral(['history', workerId]);
    assert.equal(history.code, 0, history.stderr);
    const lines = history.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `worker ${workerId} (pool ${pool}): hot_idle at epoch ${epoch + 1}`);
    assert.match(lines[1]!, /^TIME\s+SINCE START\s+TRANSITION\s+EPOCH\s+OPERATION\s+BY\s+DETAIL/);
    const moves = lines.slice(2).map((line) => /\S+ \S+\s+\+[\d.]+s\s+(.+? → \S+)/.exec(line)?.[1]);
    assert.deepEqual(moves, [
      '(new) → spawning',
      'spawning → activating',
      'activating → idle',
      'idle → claimed',
      'claimed → hot_idle',
    ]);
    assert.match(lines.at(-2)!, new RegExp(`${epoch - 1} → ${epoch}\\s+claim\\s+api\\s+tenant acme`));
    const historyJson = JSON.parse((await corral(['history', workerId, '--json'])).stdout) as {
      transitions: { toState: string }[];
    };
    assert.equal(historyJson.transitions.length, 5);

    // scale, describe
    const scaled = await corral(['pool', 'scale', pool, '--min-idle', '3']);
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.match(scaled.stdout, /minIdle 2 → 3, maxWorkers 4 → 4 \(generation 2\)/);
    assertOneLineError(
      await corral(['pool', 'scale', pool, '--min-idle', '9']),
      2,
      /minIdle: must not exceed maxWorkers \(4\)/,
    );
    const described = await corral(['pool', 'describe', pool]);
    assert.match(described.stdout, /^Min idle:\s+3$/m);
    assert.match(described.stdout, /^Spawn breaker:\s+closed/m);

    // drain (waiting), then delete: the name is free again and worker history stays
    await corral(['release', lease.workerId, '--epoch', String(lease.epoch)]);
    const drained = await corral(['pool', 'drain', pool, '--wait']);
    assert.equal(drained.code, 0, drained.stderr);
    assert.equal(drained.stdout.trim(), `pool ${pool} drained`);
    assertOneLineError(await corral(['claim', pool, '--tenant', 'acme']), 1, /pool draining/);
    const deleted = await corral(['pool', 'delete', pool]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout.trim(), `pool ${pool} deleted`);
    assert.equal(await e2e.pools.getPool(pool), null);
    assert.doesNotMatch((await corral(['pool', 'list'])).stdout, new RegExp(`^${pool}\\s`, 'm'));
    assert.equal((await corral(['history', workerId])).code, 0, 'history outlives the pool');
  });
});
