// Pool env by reference (decision 0021): secret-looking literals are refused naming the field,
// references pass through the spec, the lifecycle settings and the pod spec unchanged, and the
// pod manifest hands them to the kubelet as references.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { lifecycleSettingsFor, parsePoolSpec, PoolSpecError } from '../../src/config/pool-spec';
import { podManifest } from '../../src/runtime/kubernetes/pod-manifest';
import { resolveProcessEnv, SecretReferenceError } from '../../src/runtime/process/process-secrets';
import { parseWorkerPodSpec, refFor } from '../../src/runtime/worker-pod-spec';
import { RuntimeInputError } from '../../src/runtime/errors';

const minimal = { name: 'demo', runtime: 'kubernetes', image: 'registry.example/w:1', minIdle: 0, maxWorkers: 2 };
const dbPassword = { valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password' } } };

function refusal(spec: unknown): PoolSpecError {
  try {
    parsePoolSpec(spec);
  } catch (err) {
    assert.ok(err instanceof PoolSpecError, String(err));
    return err;
  }
  assert.fail('the spec was accepted');
}

test('a literal value under a secret-looking name is refused naming the field and suggesting secretKeyRef', () => {
  for (const name of ['DB_PASSWORD', 'api_token', 'ClientSecret', 'LICENSE_KEY', 'SSH_KEYFILE', 'x_Password_y']) {
    const err = refusal({ ...minimal, env: { MODE: 'prod', [name]: 'hunter2' } });
    assert.equal(err.field, `env.${name}`);
    assert.match(err.reason, /valueFrom: \{ secretKeyRef/);
    assert.ok(!err.message.includes('hunter2'), 'the refusal does not repeat the value');
  }
  // Names that merely contain no marker stay literal, as before.
  const spec = parsePoolSpec({ ...minimal, env: { MODE: 'prod', LOG_LEVEL: 'debug' } });
  assert.deepEqual(spec.env, { MODE: 'prod', LOG_LEVEL: 'debug' });
});

test('a reference is accepted under any name and reaches the settings and the pod spec unchanged', () => {
  const spec = parsePoolSpec({ ...minimal, env: { DB_PASSWORD: dbPassword, MODE: 'prod' } });
  assert.deepEqual(spec.env, { DB_PASSWORD: dbPassword, MODE: 'prod' });
  const settings = lifecycleSettingsFor(spec);
  assert.deepEqual(settings.env, { DB_PASSWORD: dbPassword, MODE: 'prod' });
  // What the workflow hands the spawn activity, as JSON (a Temporal payload): only the reference.
  const payload = JSON.parse(JSON.stringify(settings)) as typeof settings;
  const podSpec = parseWorkerPodSpec({
    workerId: 'w1',
    pool: 'demo',
    spawnAttempt: 1,
    epoch: 1,
    image: settings.image,
    env: payload.env,
    resources: settings.resources,
    maxLifetimeSeconds: 3_600,
  });
  const container = podManifest(refFor(podSpec), podSpec).spec!.containers[0]!;
  assert.deepEqual(
    container.env?.find((e) => e.name === 'DB_PASSWORD'),
    { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password', optional: false } } },
  );
  assert.deepEqual(
    container.env?.find((e) => e.name === 'MODE'),
    { name: 'MODE', value: 'prod' },
  );
});

test('malformed references are refused naming the field', () => {
  const ref = (name: unknown, key: unknown) => ({ valueFrom: { secretKeyRef: { name, key } } });
  assert.equal(refusal({ ...minimal, env: { A: ref('Bad_Name', 'k') } }).field, 'env.A.valueFrom.secretKeyRef.name');
  assert.equal(refusal({ ...minimal, env: { A: ref('ok', '../etc') } }).field, 'env.A.valueFrom.secretKeyRef.key');
  assert.equal(refusal({ ...minimal, env: { A: ref('ok', '..') } }).field, 'env.A.valueFrom.secretKeyRef.key');
  assert.equal(refusal({ ...minimal, env: { A: { valueFrom: {} } } }).field, 'env.A');
  assert.equal(refusal({ ...minimal, env: { A: { value: 'x' } } }).field, 'env.A');
  assert.equal(
    refusal({ ...minimal, env: { A: 3 } }).reason,
    'must be a string or { valueFrom: { secretKeyRef: { name, key } } }',
  );
});

test('existing registry specs and recorded payloads (literal env) still parse at the runtime', () => {
  // A pool applied before 0021 may hold a literal secret-looking value; its running workers keep
  // spawning (only applying a spec refuses it), so the runtime's schema accepts it.
  const spec = parseWorkerPodSpec({
    workerId: 'w1',
    pool: 'demo',
    spawnAttempt: 1,
    epoch: 1,
    image: 'registry.example/w:1',
    env: { API_KEY: 'literal-from-an-old-history' },
    resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
    maxLifetimeSeconds: 3_600,
  });
  assert.deepEqual(spec.env, { API_KEY: 'literal-from-an-old-history' });
  assert.throws(
    () => parseWorkerPodSpec({ ...spec, env: { A: { valueFrom: { secretKeyRef: { name: 'x' } } } } }),
    (err: unknown) => err instanceof RuntimeInputError && err.field === 'env.A',
  );
});

test('the process runtime resolves a reference from <secretsDir>/<name>/<key>, exactly its bytes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-secrets-'));
  try {
    fs.mkdirSync(path.join(dir, 'db-credentials'));
    fs.writeFileSync(path.join(dir, 'db-credentials', 'password'), 's3cr3t\n');
    assert.deepEqual(resolveProcessEnv({ DB_PASSWORD: dbPassword, MODE: 'prod' }, dir), {
      DB_PASSWORD: 's3cr3t\n',
      MODE: 'prod',
    });
    const missing = { valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'user' } } };
    assert.throws(
      () => resolveProcessEnv({ DB_USER: missing }, dir),
      (err: unknown) =>
        err instanceof SecretReferenceError &&
        err.field === 'env.DB_USER' &&
        /^env\.DB_USER: valueFrom\.secretKeyRef db-credentials\/user: .*user does not exist$/.test(err.message),
    );
    fs.mkdirSync(path.join(dir, 'db-credentials', 'dir'));
    const notFile = { valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'dir' } } };
    assert.throws(() => resolveProcessEnv({ X: notFile }, dir), /env\.X: .*is not a regular file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
