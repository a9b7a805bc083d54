// Secrets by reference end to end (decision 0021), on the real dev server, a fresh registry, the
// corral API and the process runtime running the real demo worker. A pool with a literal
// DB_PASSWORD is refused through the API naming the field; a pool whose DB_PASSWORD is a
// secretKeyRef spawns workers whose environment holds the value, and no byte of that value is in
// any Temporal history (payloads decoded), registry row, metric or log line of the run.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { CorralError } from '../../src/client/errors';
import { freePort } from '../../src/embedded/ports';
import { repoRoot } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import type { WorkerRecord } from '../../src/runtime/process/process-record';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import { poolWorkflowId, workerLifecycleWorkflowId } from '../../src/common';
import { historyText } from '../harness/lifecycle-e2e';
import { useKubePoolE2e } from '../harness/kube-pool-e2e';
import { demoPoolSpec, startPoolWorld, type PoolWorld } from '../harness/pool-e2e';
import { environOf } from '../harness/process-inspection';
import { useTestRegistry, type TestRegistry } from '../harness/registry';
import { useTemporalDevServer, type Lease, type TemporalEndpoint } from '../harness/shared';

const secretValue = `pw-${crypto.randomBytes(24).toString('hex')}`;
const dbPassword = { valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password' } } };

// Every line this process writes (the in-process corral worker's and API's logs, Temporal's
// worker logs) is kept to be searched, and still written.
const captured: string[] = [];
const originalWrites = {
  stdout: process.stdout.write.bind(process.stdout),
  stderr: process.stderr.write.bind(process.stderr),
};
for (const stream of ['stdout', 'stderr'] as const) {
  process[stream].write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return (originalWrites[stream] as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
}

let temporal: Lease<TemporalEndpoint>;
let registry: TestRegistry;
let connection: Connection;
let client: Client;
let stateDir: string;
let secretsDir: string;
let runtime: ProcessPodRuntime;
let world: PoolWorld;

before(async () => {
  temporal = await useTemporalDevServer();
  registry = await useTestRegistry();
  connection = await Connection.connect({ address: temporal.value.address });
  client = new Client({ connection, namespace: temporal.value.namespace });
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-secret-e2e-'));
  // Outside the state directory, as an operator's mounted secrets would be.
  secretsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-secret-e2e-secrets-'));
  fs.mkdirSync(path.join(secretsDir, 'db-credentials'), { mode: 0o700 });
  fs.writeFileSync(path.join(secretsDir, 'db-credentials', 'password'), secretValue, { mode: 0o600 });
  runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot, secretsDir });
  world = await startPoolWorld({ temporal: temporal.value, client, registry, runtime });
});

after(async () => {
  await world?.stop();
  for (const { workerId, pool, spawnAttempt, name } of (await runtime?.listManaged()) ?? []) {
    await runtime.delete({ workerId, pool, spawnAttempt, name });
  }
  await runtime?.close();
  await connection?.close();
  await registry?.close();
  await temporal?.release();
  for (const dir of [stateDir, secretsDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write = originalWrites.stdout;
  process.stderr.write = originalWrites.stderr;
});

/** Every file under a directory, as text. */
function filesText(dir: string): string {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(fs.readFileSync(path.join(entry.parentPath, entry.name), 'utf8'));
  }
  return out.join('\n');
}

/**
 * Every history of the world's workflows (every run, payloads decoded), every registry row, the
 * metrics and the logs captured so far: the secret reference is there, no byte of its value is.
 */
async function assertNoSecretBytes(opts: {
  world: PoolWorld;
  client: Client;
  registry: TestRegistry;
  pool: string;
  secretValue: string;
  extraLogs: string;
}): Promise<void> {
  const { world, client, registry, pool, secretValue } = opts;
  const lifecycleIds = (
    await registry.db.query<{ id: string }>('SELECT id FROM workers WHERE pool = $1', [pool])
  ).rows.map((r) => workerLifecycleWorkflowId(pool, r.id));
  assert.ok(lifecycleIds.length >= 1);
  const runs = await waitFor(
    async () => {
      const found: { workflowId: string; runId: string }[] = [];
      for await (const wf of client.workflow.list({ query: `TaskQueue = "${world.taskQueue}"` })) {
        found.push({ workflowId: wf.workflowId, runId: wf.runId });
      }
      const ids = new Set(found.map((f) => f.workflowId));
      return lifecycleIds.every((id) => ids.has(id)) && ids.has(poolWorkflowId(pool)) ? found : undefined;
    },
    { what: 'every workflow of the pool in visibility', timeoutMs: 30_000, intervalMs: 200 },
  );
  const histories: string[] = [];
  for (const run of runs) histories.push(await historyText(client.workflow.getHandle(run.workflowId, run.runId)));
  const historiesText = histories.join('\n');

  const tables = (
    await registry.db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
    )
  ).rows.map((r) => r.table_name);
  assert.ok(tables.includes('pools') && tables.includes('workers'));
  const rows: string[] = [];
  for (const table of tables) {
    const result = await registry.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM "${table}" t`);
    rows.push(...result.rows.map((r) => r.row));
  }
  const registryText = rows.join('\n');

  const metricsText = (await world.metrics.metrics()) + (await registry.metricsRegistry.metrics());
  const logsText = captured.join('') + opts.extraLogs;

  // Positive controls: the searches do cover the places the reference travels.
  assert.ok(historiesText.includes('db-credentials'), 'the reference is in the histories (payloads decoded)');
  assert.ok(registryText.includes('db-credentials'), 'the reference is in pools.spec');
  assert.ok(logsText.length > 0 && metricsText.length > 0);

  for (const [where, text] of Object.entries({
    'Temporal histories': historiesText,
    'registry rows': registryText,
    metrics: metricsText,
    logs: logsText,
  })) {
    assert.ok(!text.includes(secretValue), `no secret value in ${where}`);
    // No fragment either: any 12 consecutive characters of the value (its random part is 48 hex digits).
    for (let i = 0; i + 12 <= secretValue.length; i += 6) {
      assert.ok(!text.includes(secretValue.slice(i, i + 12)), `no fragment of the secret value in ${where}`);
    }
    assert.ok(!text.includes(Buffer.from(secretValue).toString('base64')), `no base64 of the secret value in ${where}`);
  }
}

test('a literal DB_PASSWORD is refused through the corral API, naming the field', async () => {
  await assert.rejects(
    world.corral.applyPool(demoPoolSpec('secretlit', { env: { DB_PASSWORD: 'hunter2-literal' } })),
    (err: unknown) =>
      err instanceof CorralError &&
      err.code === 'invalid_request' &&
      err.field === 'env.DB_PASSWORD' &&
      /secretKeyRef/.test(err.message),
  );
  assert.deepEqual(
    (await world.pools.listPools()).map((p) => p.name),
    [],
    'nothing was written',
  );
});

test('a secretKeyRef env reaches the worker process; no byte of its value in any history, row, metric or log', async () => {
  const pool = 'secretref';
  await world.corral.applyPool(demoPoolSpec(pool, { minIdle: 2, env: { DB_PASSWORD: dbPassword, MODE: 'e2e' } }));
  await world.waitForCounts(pool, { idle: 2 });

  // The value is where it belongs: in each worker process's environment.
  const managed = await runtime.listManaged({ pool });
  assert.equal(managed.length, 2);
  for (const worker of managed) {
    const record = JSON.parse(
      fs.readFileSync(path.join(stateDir, 'workers', worker.name, 'worker.json'), 'utf8'),
    ) as WorkerRecord;
    assert.ok(record.process, `${worker.name} runs`);
    assert.equal(environOf(record.process.pid).get('DB_PASSWORD'), secretValue);
  }

  // A claim and a release move more payloads through Temporal and the registry.
  const lease = await world.corral.claim(pool, { tenant: 'acme', requestId: 'secret-req-1' });
  await world.corral.release(lease);
  await world.waitForCounts(pool, { idle: 1, hot_idle: 1 });

  await assertNoSecretBytes({ world, client, registry, pool, secretValue, extraLogs: filesText(stateDir) });
});

test("kubernetes: a secretKeyRef env reaches the pod as a reference; the Secret's value is nowhere corral writes", async () => {
  const kube = await useKubePoolE2e();
  try {
    const value = `kpw-${crypto.randomBytes(24).toString('hex')}`;
    // The operator's Secret, in the workers' namespace; corral only names it.
    await kube.core.createNamespacedSecret({
      namespace: kube.namespace,
      body: { metadata: { name: 'db-credentials' }, type: 'Opaque', stringData: { password: value } },
    });
    const pool = 'ksecret';
    await kube.corral.applyPool(
      demoPoolSpec(pool, {
        runtime: 'kubernetes',
        image: 'registry.example/corral/demo-worker:0.1.0',
        port: await freePort(),
        minIdle: 1,
        maxWorkers: 1,
        env: { DB_PASSWORD: dbPassword },
      }),
    );
    await kube.waitForCounts(pool, { idle: 1, spawning: 0, activating: 0 });
    const [worker] = (await kube.registry.store.listWorkers({ pool, limit: 10 })).filter((w) => w.pool === pool);
    assert.ok(worker?.podName);
    const pod = await kube.core.readNamespacedPod({ name: worker.podName, namespace: kube.namespace });
    const env = JSON.parse(JSON.stringify(pod.spec?.containers[0]?.env ?? [])) as { name: string }[];
    assert.deepEqual(
      env.find((e) => e.name === 'DB_PASSWORD'),
      {
        name: 'DB_PASSWORD',
        valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password', optional: false } },
      },
    );
    await assertNoSecretBytes({
      world: kube,
      client: kube.client,
      registry: kube.registry,
      pool,
      secretValue: value,
      extraLogs: JSON.stringify(pod),
    });
  } finally {
    await kube.close();
  }
});
