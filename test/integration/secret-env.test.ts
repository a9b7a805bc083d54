// Pool env by reference at the runtimes (decision 0021). Kubernetes, on the real kube-apiserver:
// a secretKeyRef env entry reaches the pod as a reference (corral never reads the Secret). The
// process runtime: the reference resolves from `<secretsDir>/<name>/<key>` into the worker
// process's environment, and a missing file is a `config_error` naming the env entry.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { repoRoot } from '../../src/embedded/tools';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import type { WorkerRecord } from '../../src/runtime/process/process-record';
import type { WorkerPodSpecInput } from '../../src/runtime/worker-pod-spec';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { createTestNamespace } from '../harness/kube-namespace';
import { environOf } from '../harness/process-inspection';
import { useKube, type Lease } from '../harness/shared';
import { credentials, newWorkerId } from './runtime-behaviour';

const pool = 'secrets';
const dbPassword = { valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password' } } };
const secretValue = `pw-${crypto.randomBytes(16).toString('hex')}`;
const resources = { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } };

let kube: Lease<KubeEndpoint>;
let admin: KubeConfig;
let core: CoreV1Api;
let namespace: string;
let kubeRuntime: KubernetesPodRuntime;
let stateDir: string;
let secretsDir: string;
let processRuntime: ProcessPodRuntime;

before(async () => {
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace(admin, 'secretenv');
  kubeRuntime = new KubernetesPodRuntime({ kubeConfig: admin, namespace, unreachableAfterMs: 5_000 });
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-secret-env-'));
  secretsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-secrets-'));
  fs.mkdirSync(path.join(secretsDir, 'db-credentials'), { mode: 0o700 });
  fs.writeFileSync(path.join(secretsDir, 'db-credentials', 'password'), secretValue, { mode: 0o600 });
  processRuntime = new ProcessPodRuntime({ stateDir, workDir: repoRoot, secretsDir });
});

after(async () => {
  for (const runtime of [processRuntime, kubeRuntime]) {
    if (!runtime) continue;
    for (const { workerId, pool: p, spawnAttempt, name } of await runtime.listManaged()) {
      await runtime.delete({ workerId, pool: p, spawnAttempt, name });
    }
    await runtime.close();
  }
  await core?.deleteNamespace({ name: namespace }).catch(() => undefined);
  await kube?.release();
  for (const dir of [stateDir, secretsDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const spec = (workerId: string, image: string, env: WorkerPodSpecInput['env']): WorkerPodSpecInput => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image,
  port: 8080,
  env,
  resources,
  maxLifetimeSeconds: 3_600,
});

test('kubernetes: a secretKeyRef env entry reaches the pod as a reference, beside the literals', async () => {
  const workerId = newWorkerId();
  const { ref } = await kubeRuntime.create(
    spec(workerId, 'registry.example/corral/demo-worker:0.1.0', { DB_PASSWORD: dbPassword, MODE: 'prod' }),
    credentials(1),
  );
  const pod = await core.readNamespacedPod({ name: ref.name, namespace });
  // client-node answers with model class instances: compare their JSON.
  const env = JSON.parse(JSON.stringify(pod.spec?.containers[0]?.env ?? [])) as { name: string }[];
  assert.deepEqual(
    env.find((e) => e.name === 'DB_PASSWORD'),
    { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password', optional: false } } },
    'the apiserver stored the reference',
  );
  assert.deepEqual(
    env.find((e) => e.name === 'MODE'),
    { name: 'MODE', value: 'prod' },
  );
  assert.ok(!JSON.stringify(pod).includes(secretValue));
});

test('process: the reference resolves into the worker process environment, nowhere else in its directory', async () => {
  const workerId = newWorkerId();
  const image = path.join(repoRoot, 'bin', 'corral-demo-worker');
  const { ref } = await processRuntime.create(
    spec(workerId, image, { DB_PASSWORD: dbPassword, MODE: 'prod' }),
    credentials(1),
  );
  const outcome = await processRuntime.awaitReady(ref, { timeoutMs: 30_000 });
  assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
  const record = JSON.parse(
    fs.readFileSync(path.join(stateDir, 'workers', ref.name, 'worker.json'), 'utf8'),
  ) as WorkerRecord;
  assert.ok(record.process);
  const environ = environOf(record.process.pid);
  assert.equal(environ.get('DB_PASSWORD'), secretValue, 'the worker got the value');
  assert.equal(environ.get('MODE'), 'prod');
  for (const file of ['worker.json', 'credentials.json']) {
    const text = fs.readFileSync(path.join(stateDir, 'workers', ref.name, file), 'utf8');
    assert.ok(!text.includes(secretValue), `${file} holds no secret value`);
  }
});

test('process: a missing secret file is a config_error naming the env entry (as a pod whose Secret is missing)', async () => {
  const workerId = newWorkerId();
  const image = path.join(repoRoot, 'bin', 'corral-demo-worker');
  const missing = { valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'user' } } };
  const { ref } = await processRuntime.create(spec(workerId, image, { DB_USER: missing }), credentials(1));
  const outcome = await processRuntime.awaitReady(ref, { timeoutMs: 30_000 });
  assert.equal(outcome.status, 'failed');
  assert.equal(outcome.status === 'failed' && outcome.reason, 'config_error');
  assert.match(
    outcome.status === 'failed' ? outcome.detail : '',
    /^env\.DB_USER: valueFrom\.secretKeyRef db-credentials\/user: .*does not exist$/,
  );
});
