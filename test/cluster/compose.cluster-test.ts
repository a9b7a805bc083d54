// docker-compose.yml for real: Docker Compose v2 (scripts/provision-tools.sh compose) on a private
// engine (test/harness/docker-engine.ts) brings up the whole file — Postgres, Temporal, the
// search-attribute job, the Web UI and the corral worker built from ./Dockerfile — with local
// stand-ins for the upstream images (test/harness/compose-stand-ins.ts) and this machine's
// host-network override (test/fixtures/compose.host-network.yml). A worker is claimed through the
// corral CLI inside the corral-worker container, from a process-runtime pool naming the image's
// demo worker; `down -v` must leave nothing of the project. docs/decisions/0032.
//
// Not part of `make test`: it needs root and the engine (`make test-cluster`).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { assertPortFree } from '../../src/embedded/ports';
import { repoRoot, toolPath } from '../../src/embedded/tools';
import { buildComposeStandIns, composeStandIns } from '../harness/compose-stand-ins';
import { startDockerEngine, type DockerEngine } from '../harness/docker-engine';

const runFile = promisify(execFile);
const project = `corral-compose-test-${process.pid}`;
const composeFiles = ['-f', 'docker-compose.yml', '-f', path.join('test', 'fixtures', 'compose.host-network.yml')];
/** `up` builds the corral image (npm ci, tsc) when its cache is cold: minutes on a shared 2-core machine. */
const upTimeoutMs = 25 * 60_000;
const cliTimeoutMs = 120_000;
const pool = 'compose-demo';
const demoWorkerExecutable = '/app/bin/corral-demo-worker';

let engine: DockerEngine;
let scratch: string;
let env: Record<string, string>;
/** The override's port variables, CORRAL_COMPOSE_<name>_PORT: each a distinct free port of this run. */
const portNames = [
  'POSTGRES',
  'TEMPORAL',
  'TEMPORAL_HTTP',
  'TEMPORAL_FRONTEND_MEMBERSHIP',
  'TEMPORAL_HISTORY',
  'TEMPORAL_HISTORY_MEMBERSHIP',
  'TEMPORAL_MATCHING',
  'TEMPORAL_MATCHING_MEMBERSHIP',
  'TEMPORAL_WORKER',
  'TEMPORAL_WORKER_MEMBERSHIP',
  'UI',
  'METRICS',
  'API',
] as const;
let ports: Record<(typeof portNames)[number], number>;
let stackUp = false;

function compose(args: string[], options: { input?: string; timeoutMs?: number } = {}) {
  return engine.docker(['compose', '--project-name', project, ...composeFiles, ...args], {
    cwd: repoRoot,
    env,
    input: options.input,
    timeoutMs: options.timeoutMs ?? cliTimeoutMs,
  });
}

/** The corral CLI of the running corral-worker container (its API on the container's loopback). */
async function corralCli(args: string[], input?: string): Promise<string> {
  const exec = ['exec', '-T', 'corral-worker', 'node', 'dist/src/cli/main.js', ...args];
  return (await compose(exec, { input })).stdout;
}

interface ComposeContainer {
  Service: string;
  State: string;
  Health: string;
  ExitCode: number;
}

/** `compose ps --format json`: one JSON object per line (Compose v2.21 and later). */
async function containers(): Promise<Map<string, ComposeContainer>> {
  const { stdout } = await compose(['ps', '--all', '--format', 'json']);
  const rows = stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ComposeContainer);
  return new Map(rows.map((row) => [row.Service, row]));
}

/** What the engine holds of this project, by the label Compose puts on everything it creates. */
async function projectObjects(): Promise<{
  containers: string[];
  volumes: string[];
  networks: string[];
  images: string[];
}> {
  const filter = ['--filter', `label=com.docker.compose.project=${project}`];
  const list = async (args: string[]) =>
    (await engine.docker([...args, ...filter])).stdout.split('\n').filter((line) => line.trim() !== '');
  return {
    containers: await list(['ps', '--all', '--format', '{{.Names}}']),
    volumes: await list(['volume', 'ls', '--format', '{{.Name}}']),
    networks: await list(['network', 'ls', '--format', '{{.Name}}']),
    // The corral image Compose built (the engine's data-root outlives the run; its build cache stays).
    images: await list(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']),
  };
}

/**
 * A free loopback port in 20000-32767. Temporal on Postgres keeps each service's membership port in
 * a smallint (cluster_membership.rpc_port): a port from the kernel's ephemeral range (32768 and up,
 * where port 0 binds land) makes the server exit with "out of range for type smallint".
 */
async function freePortBelowEphemeralRange(taken: number[]): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + crypto.randomInt(12_768);
    if (taken.includes(port)) continue;
    const free = await assertPortFree(port, 'a compose service').then(
      () => true,
      () => false,
    );
    if (free) return port;
  }
  throw new Error('no free port in 20000-32767 after 100 tries');
}

before(async () => {
  engine = await startDockerEngine({ cliPlugins: [toolPath('dockerComposePlugin')] });
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-compose-test-'));
  // The build trusts the npm registry's CA through the Dockerfile's registry_ca secret; none is an empty file.
  const registryCa = process.env.NODE_EXTRA_CA_CERTS || path.join(scratch, 'no-extra-ca.pem');
  if (!process.env.NODE_EXTRA_CA_CERTS) fs.writeFileSync(registryCa, '');
  ports = {} as typeof ports;
  for (const name of portNames) {
    ports[name] = await freePortBelowEphemeralRange(Object.values(ports));
  }
  env = {
    POSTGRES_PASSWORD: crypto.randomBytes(16).toString('hex'),
    CORRAL_WORKER_PROTOCOL_KEY: crypto.randomBytes(32).toString('hex'),
    ...Object.fromEntries(portNames.map((name) => [`CORRAL_COMPOSE_${name}_PORT`, String(ports[name])])),
    CORRAL_COMPOSE_REGISTRY_CA: registryCa,
  };
  for (const build of await buildComposeStandIns(engine)) {
    process.stderr.write(`stand-in ${build.image}: ${build.built ? 'built' : 'unchanged'} in ${build.durationMs} ms\n`);
  }
});

after(async () => {
  try {
    if (stackUp) await compose(['down', '--volumes', '--rmi', 'local', '--timeout', '30'], { timeoutMs: 180_000 });
  } finally {
    await engine?.stop();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
});

test('the stand-ins are exactly the images docker-compose.yml pulls', () => {
  const file = parse(fs.readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { image?: string }>;
  };
  const pulled = Object.values(file.services).flatMap((service) => (service.image ? [service.image] : []));
  assert.deepEqual(new Set(pulled), new Set(composeStandIns.map((standIn) => standIn.image)));
});

test(
  'up --wait: every service healthy, the search-attribute job done, the attributes registered',
  { timeout: upTimeoutMs + 120_000 },
  async () => {
    stackUp = true; // from here on, after() takes it down
    const t0 = Date.now();
    try {
      await compose(['up', '--build', '--wait', '--wait-timeout', String(upTimeoutMs / 1000)], {
        timeoutMs: upTimeoutMs,
      });
    } catch (err) {
      // Which service failed is in its own log, not in up's output.
      const { stdout } = await compose(['logs', '--no-color', '--tail', '40']).catch(() => ({ stdout: '(no logs)' }));
      throw new Error(`${(err as Error).message}\nservice logs:\n${stdout}`);
    }
    process.stderr.write(`compose up --build --wait: ${Date.now() - t0} ms\n`);

    const services = await containers();
    for (const name of ['postgres', 'temporal', 'corral-worker']) {
      assert.equal(services.get(name)?.Health, 'healthy', `${name}: ${JSON.stringify(services.get(name))}`);
    }
    assert.equal(services.get('temporal-ui')?.State, 'running');
    const job = services.get('temporal-search-attributes');
    assert.equal(job?.State, 'exited', JSON.stringify(job));
    assert.equal(job?.ExitCode, 0);

    const { stdout } = await runFile(
      toolPath('temporal'),
      ['operator', 'search-attribute', 'list', '--namespace', 'default', '--address', `127.0.0.1:${ports.TEMPORAL}`],
      { timeout: 30_000 },
    );
    for (const name of ['CorralPool', 'CorralState', 'CorralImage', 'CorralTenant']) {
      assert.match(stdout, new RegExp(`^\\s*${name}\\s+Keyword\\s*$`, 'm'), `search attribute ${name}`);
    }
    // Temporal keeps its state in the compose file's Postgres (auto-setup created both databases there).
    const databases = await compose([
      'exec',
      '-T',
      'postgres',
      'psql',
      '-U',
      'corral',
      '-d',
      'corral',
      '-tAc',
      'SELECT datname FROM pg_database',
    ]);
    assert.deepEqual(
      ['corral', 'temporal', 'temporal_visibility'].filter((name) => databases.stdout.split('\n').includes(name)),
      ['corral', 'temporal', 'temporal_visibility'],
    );
    // corral's own check of the same stack: registry migrated, Temporal reachable, attributes registered.
    await corralCli(['doctor']);

    const namespaces = await fetch(`http://127.0.0.1:${ports.UI}/api/v1/namespaces`, {
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(namespaces.status, 200);
    assert.match(await namespaces.text(), /"default"/);
  },
);

test('the search-attribute job fails when it cannot register them (here: no Temporal at its address)', async () => {
  assert.ok(stackUp, 'the stack is up');
  await assert.rejects(
    compose(['run', '--rm', '--no-deps', '-e', 'TEMPORAL_ADDRESS=temporal:1', 'temporal-search-attributes'], {
      timeoutMs: 180_000,
    }),
    /search attribute CorralPool: not registered after 10 tries/,
  );
});

test(
  "a worker claimed through the stack's CLI from a pool of the image's demo worker",
  { timeout: 300_000 },
  async () => {
    assert.ok(stackUp, 'the stack is up');
    const spec = [
      `name: ${pool}`,
      'runtime: process',
      `image: ${demoWorkerExecutable}`,
      'minIdle: 1',
      'maxWorkers: 2',
      'refillPerMinute: 60',
      'releasePolicy: recycle',
      'resources:',
      '  requests: { cpuMillis: 100, memoryMiB: 64 }',
      '  limits: { cpuMillis: 500, memoryMiB: 256 }',
      'health: { interval: 10s, failureThreshold: 3 }',
      'deadlines: { spawn: 60s, activation: 15s, hotIdleTtl: 10m, maxLifetime: 1d, drain: 2m }',
      '',
    ].join('\n');
    assert.match(await corralCli(['pool', 'apply', '-f', '-'], spec), /created/);

    const lease = JSON.parse(await corralCli(['claim', pool, '--tenant', 'acme', '--timeout', '120s', '--json'])) as {
      workerId: string;
      epoch: number;
      endpoint: string;
      tenant: string;
    };
    assert.equal(lease.tenant, 'acme');
    // The worker is a process in the corral-worker container; with host networking its endpoint is reachable here.
    const health = await fetch(new URL('/healthz', lease.endpoint), { signal: AbortSignal.timeout(10_000) });
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'serving');

    const workers = JSON.parse(await corralCli(['workers', 'list', '--json'])) as {
      workerId: string;
      state: string;
      tenant: string | null;
    }[];
    const claimed = workers.find((worker) => worker.workerId === lease.workerId);
    assert.equal(claimed?.state, 'claimed', JSON.stringify(workers));
    assert.equal(claimed?.tenant, 'acme');

    assert.match(await corralCli(['release', lease.workerId, '--epoch', String(lease.epoch)]), /released/);
  },
);

test(
  'stop: the corral worker exits 0 under tini; a second up on the kept volume; down -v --rmi local leaves nothing',
  { timeout: 300_000 },
  async () => {
    assert.ok(stackUp, 'the stack is up');
    const before = await projectObjects();
    assert.ok(
      before.volumes.some((name) => name.endsWith('postgres-data')),
      'the volume exists before down',
    );
    assert.ok(
      before.images.some((name) => name.includes('corral-worker')),
      'the built image exists before down',
    );
    assert.equal((await containers()).get('corral-worker')?.State, 'running');
    await compose(['stop', '--timeout', '30', 'corral-worker'], { timeoutMs: 90_000 });
    assert.equal((await containers()).get('corral-worker')?.ExitCode, 0);

    // A second `up` on the kept volume: Postgres keeps its data, auto-setup finds its schemas
    // migrated, and the job, run again, finds every attribute registered.
    await compose(['up', '--wait', '--wait-timeout', '300'], { timeoutMs: 360_000 });
    const again = await containers();
    for (const name of ['postgres', 'temporal', 'corral-worker'])
      assert.equal(again.get(name)?.Health, 'healthy', name);
    assert.equal(again.get('temporal-search-attributes')?.ExitCode, 0);
    const { stdout: jobLog } = await compose(['logs', '--no-color', 'temporal-search-attributes']);
    assert.equal(jobLog.match(/search attribute CorralPool: registered/g)?.length, 2, jobLog);

    await compose(['down', '--volumes', '--rmi', 'local', '--timeout', '30'], { timeoutMs: 180_000 });
    stackUp = false;
    assert.deepEqual(await projectObjects(), { containers: [], volumes: [], networks: [], images: [] });
  },
);
