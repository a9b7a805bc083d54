// How long the compiled `corral` CLI takes, start to exit, as a person runs it (issue 18;
// docs/decisions/0024-compiled-cli-and-client-package.md): `bin/corral --help`, and
// `bin/corral pool list` answered by a running corral API (an embedded stack: Temporal dev server,
// Postgres, one `bin/corral worker` and a pool with no workers, so no worker process competes for
// the CPU). `node -e 0` is measured alongside: on a shared machine it is the floor under both.
//
// Usage: node --require tsx/cjs bench/cli-latency/run.ts [runs]   (default 25; after `make build`)
// → one JSON document on stdout, also written to bench/results/cli-latency.json.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort } from '../../src/embedded/ports';
import { startEmbeddedStack } from '../../src/embedded/stack';
import { repoRoot } from '../../src/embedded/tools';
import { summarise } from '../stats';
import { provenance } from '../provenance';

const runs = Number(process.argv[2] ?? 25);
const warmupRuns = 3;
const runTimeoutMs = 30_000;
const poolName = 'latency';
const corralBin = path.join(repoRoot, 'bin', 'corral');

const say = (line: string) => process.stderr.write(`[cli-latency] ${line}\n`);

/** One run, spawn to exit, in ms; fails unless it exits 0 and its output shows it did its work. */
function timeRun(command: string, args: string[], env: NodeJS.ProcessEnv, expect: RegExp): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    execFile(command, args, { env, timeout: runTimeoutMs }, (err, stdout, stderr) => {
      const elapsed = performance.now() - started;
      const what = [command, ...args].join(' ');
      if (err) return reject(new Error(`${what} failed: ${err.message}\n${stderr}`));
      if (!expect.test(stdout)) return reject(new Error(`${what}: unexpected output:\n${stdout}`));
      resolve(elapsed);
    });
  });
}

interface Latency {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
}

async function measure(label: string, run: () => Promise<number>): Promise<Latency> {
  // The first runs read the files from disk; the measured ones find them in the page cache.
  for (let i = 0; i < warmupRuns; i++) await run();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await run());
  const { n, p50, p90, min, max } = summarise(samples);
  say(`${label}: median ${p50} ms, p90 ${p90} ms, min ${min} ms, max ${max} ms (n ${n})`);
  return { n, median: p50, p90, min, max };
}

/**
 * How many modules a command loads (`require.cache` at exit): what the lazy loading of
 * src/cli/lazy-modules.ts keeps small, and a number that does not move with the machine's load.
 */
function modulesLoaded(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const main = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const script = [
    `process.argv = [process.execPath, ${JSON.stringify(main)}, ...${JSON.stringify(args)}];`,
    "process.on('exit', () => process.stderr.write(`modules loaded: ${Object.keys(require.cache).length}\\n`));",
    `require(${JSON.stringify(main)});`,
  ].join('\n');
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { env, timeout: runTimeoutMs }, (err, _stdout, stderr) => {
      const count = /^modules loaded: (\d+)$/m.exec(stderr);
      if (err || !count) return reject(new Error(`corral ${args.join(' ')}: ${err?.message ?? ''}\n${stderr}`));
      resolve(Number(count[1]));
    });
  });
}

async function main() {
  if (!Number.isInteger(runs) || runs < 20) throw new Error(`runs: a whole number ≥ 20 (got ${process.argv[2]})`);
  if (!fs.existsSync(path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error('corral is not built: run `make build` (or npm run build) first');
  }
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-bench-cli-latency-'));
  say('starting the embedded stack (Temporal dev server, Postgres, a corral worker)');
  const stack = await startEmbeddedStack({
    stateDir,
    temporalPort: await freePort(),
    uiPort: await freePort(),
    postgresPort: await freePort(),
    metricsPort: 0,
    apiPort: 0,
    demoPool: false,
    log: say,
  });
  try {
    await stack.client.applyPool({
      name: poolName,
      runtime: 'process',
      image: path.join(repoRoot, 'bin', 'corral-demo-worker'),
      minIdle: 0,
      maxWorkers: 1,
    });
    // As a second terminal runs it: the API's address, and no endpoints file of a real `make start`.
    const env = { ...process.env, CORRAL_API_URL: stack.apiUrl, CORRAL_STATE_DIR: stateDir };
    const help = await measure('corral --help', () => timeRun(corralBin, ['--help'], env, /Usage: corral/));
    const poolList = await measure('corral pool list', () =>
      timeRun(corralBin, ['pool', 'list'], env, new RegExp(`^${poolName}\\s+active`, 'm')),
    );
    const nodeBaseline = await measure('node -e 0', () => timeRun(process.execPath, ['-e', '0'], env, /^$/));
    const helpModules = await modulesLoaded(['--help'], env);
    const poolListModules = await modulesLoaded(['pool', 'list'], env);
    const { commit, srcModified: modified } = provenance();
    const result = {
      benchmark: 'cli-latency',
      usage: 'node --require tsx/cjs bench/cli-latency/run.ts [runs]  (after make build)',
      commit,
      src_modified_in_checkout: modified.length > 0 ? modified : false,
      at: new Date().toISOString(),
      node: process.version,
      machine: {
        cores: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        loadavg_at_end: os.loadavg().map((x) => Math.round(x * 100) / 100),
      },
      method:
        `bin/corral spawned and timed to its exit, in ms, ${warmupRuns} unmeasured runs first; ` +
        'pool list against a running corral API (embedded stack) holding one pool',
      target_median_ms: 300,
      commands: {
        help: { argv: ['corral', '--help'], ...help, modules_loaded: helpModules },
        pool_list: { argv: ['corral', 'pool', 'list'], ...poolList, modules_loaded: poolListModules },
        node_baseline: { argv: ['node', '-e', '0'], ...nodeBaseline },
      },
    };
    console.log(JSON.stringify(result, null, 2));
    const file = path.join(repoRoot, 'bench', 'results', 'cli-latency.json');
    fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    say(`written to ${file}`);
  } finally {
    await stack.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
