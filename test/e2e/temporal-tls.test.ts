// corral against a TLS-only Temporal endpoint (docs/decisions/0022-tls-to-temporal.md). Temporal
// CLI v1.5.1's dev server takes no TLS flags, so the test fronts it with a TLS-terminating proxy
// (test/harness/tls-proxy.ts) and gives corral only the proxy's address: the real `corral worker`
// connects over mTLS, a pool fills and a claim works through the corral API; `corral doctor`
// reports the transport (never the key); a wrong CA or a missing client certificate fails clearly.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CorralClient } from '../../src/client/corral-client';
import type { ManagedProcess } from '../../src/embedded/child-process';
import { repoRoot } from '../../src/embedded/tools';
import { generateWorkerProtocolKey, workerProtocolKeyVariable } from '../../src/runtime/worker-protocol-proof';
import { startCorralWorkerProcess } from '../harness/corral-worker-process';
import { useLifecycleE2e, type LifecycleE2e } from '../harness/lifecycle-e2e';
import { demoPoolSpec } from '../harness/pool-e2e';
import { createTestPki, startTlsProxy, type TestPki, type TlsProxy } from '../harness/tls-proxy';

let e2e: LifecycleE2e;
let pki: TestPki;
let mtlsProxy: TlsProxy;
let tlsProxy: TlsProxy;
const corralWorkers: ManagedProcess[] = [];
const apiKey = 'corral-test-api-key-6f1d2c9e';

before(async () => {
  e2e = await useLifecycleE2e();
  pki = createTestPki();
  mtlsProxy = await startTlsProxy(e2e.temporal.address, pki, { requireClientCert: true });
  tlsProxy = await startTlsProxy(e2e.temporal.address, pki, { requireClientCert: false });
});
after(async () => {
  await Promise.all(corralWorkers.map((w) => w.stop()));
  await mtlsProxy?.close();
  await tlsProxy?.close();
  pki?.close();
  await e2e?.close();
});

/** mTLS to the proxy: only its address, never the dev server's plain one. */
function mtlsEnv(overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    TEMPORAL_ADDRESS: mtlsProxy.address,
    TEMPORAL_NAMESPACE: e2e.temporal.namespace,
    TEMPORAL_TLS_CA: pki.caCert,
    TEMPORAL_TLS_CERT: pki.clientCert,
    TEMPORAL_TLS_KEY: pki.clientKey,
    TEMPORAL_TLS_SERVER_NAME: 'localhost',
    ...overrides,
  };
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function corral(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  const base = { ...process.env };
  for (const name of Object.keys(base)) {
    if (/^(DATABASE_URL|PG[A-Z]*|TEMPORAL_.*|CORRAL_TEST_.*)$/.test(name)) delete base[name];
  }
  return new Promise((resolve) => {
    execFile(
      path.join(repoRoot, 'bin', 'corral'),
      args,
      { timeout: 120_000, env: { ...base, CORRAL_STATE_DIR: e2e.stateDir, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

function doctorChecks(run: CliRun): { name: string; ok: boolean; detail: string }[] {
  return (JSON.parse(run.stdout) as { checks: { name: string; ok: boolean; detail: string }[] }).checks;
}

test('corral worker over mTLS only: the pool fills and a claim works through the corral API', async () => {
  const before = mtlsProxy.authorized;
  const { proc, ready } = await startCorralWorkerProcess(e2e, {
    name: 'corral-worker-mtls',
    taskQueue: `tls-${process.pid}-${Date.now()}`,
    env: mtlsEnv(),
  });
  corralWorkers.push(proc);
  assert.ok(mtlsProxy.authorized > before, 'corral connected through the mTLS proxy');
  assert.match(fs.readFileSync(proc.logFile, 'utf8'), /connected to Temporal at 127\.0\.0\.1:\d+ over mTLS \(/);

  const client = new CorralClient({ url: ready.apiUrl as string });
  const pool = 'tls';
  await client.applyPool(demoPoolSpec(pool, { minIdle: 2, maxWorkers: 4 }));
  await client.waitForIdle(pool, 2, { timeoutMs: 120_000 });
  const lease = await client.claim(pool, { tenant: 'acme', requestId: 'tls-1' });
  assert.equal(lease.pool, pool);
  assert.equal((await client.checkLease(lease)).status, 'valid');
  await client.release({ workerId: lease.workerId, epoch: lease.epoch, tenant: 'acme' });
  await client.drainPool(pool);
  await client.waitForDrained(pool, { timeoutMs: 120_000 });
  await proc.stop();
  assert.equal(await proc.exited, 0, 'graceful exit');
});

test('corral doctor reports mTLS + API key and never prints the key or key material', async () => {
  const run = await corral(['doctor', '--json'], mtlsEnv({ TEMPORAL_API_KEY: apiKey }));
  assert.equal(run.code, 0, `doctor passes: ${run.stdout}${run.stderr}`);
  const checks = doctorChecks(run);
  const transport = checks.find((c) => c.name === 'temporal connection');
  assert.match(transport?.detail ?? '', /^mTLS \+ API key \(TEMPORAL_TLS_CA=.*TEMPORAL_TLS_SERVER_NAME=localhost\)$/);
  assert.equal(checks.find((c) => c.name === 'temporal')?.ok, true);
  const keyBody = fs.readFileSync(pki.clientKey, 'utf8').split('\n')[1]!;
  for (const secret of [apiKey, keyBody]) assert.ok(!`${run.stdout}${run.stderr}`.includes(secret), 'no secret');

  const table = await corral(['doctor'], mtlsEnv());
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /temporal connection\s+ok\s+mTLS \(/);
});

test('TLS without a client certificate: passes where none is required, fails clearly where mTLS is', async () => {
  const tlsOnly = { TEMPORAL_TLS_CERT: '', TEMPORAL_TLS_KEY: '' };
  const ok = await corral(['doctor', '--json'], mtlsEnv({ ...tlsOnly, TEMPORAL_ADDRESS: tlsProxy.address }));
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(doctorChecks(ok).find((c) => c.name === 'temporal connection')!.detail, /^TLS \(TEMPORAL_TLS_CA=/);

  const refusedBefore = mtlsProxy.refused;
  const refused = await corral(['doctor', '--json'], mtlsEnv(tlsOnly));
  assert.equal(refused.code, 1);
  const temporal = doctorChecks(refused).find((c) => c.name === 'temporal')!;
  assert.equal(temporal.ok, false);
  assert.match(temporal.detail, /cannot connect to Temporal at 127\.0\.0\.1:\d+ over TLS \(/);
  assert.ok(mtlsProxy.refused > refusedBefore, 'the proxy refused the handshake without a client certificate');
});

test('a wrong CA: corral worker exits naming the address and transport; a bad setting names its variable', async () => {
  await assert.rejects(
    startCorralWorkerProcess(e2e, {
      name: 'corral-worker-wrong-ca',
      taskQueue: `tls-wrong-ca-${process.pid}`,
      env: mtlsEnv({ TEMPORAL_TLS_CA: pki.otherCaCert }),
    }),
    (err: Error) => {
      const logFile = /see (\S+)$/.exec(err.message)?.[1];
      assert.ok(logFile, err.message);
      const log = fs.readFileSync(logFile, 'utf8');
      assert.match(log, /cannot connect to Temporal at 127\.0\.0\.1:\d+ over mTLS \(TEMPORAL_TLS_CA=.*other-ca\.pem/);
      assert.match(log, /not signed by the CA in TEMPORAL_TLS_CA/);
      return true;
    },
  );

  const keyOnly = await corral(['doctor', '--json'], mtlsEnv({ TEMPORAL_TLS_CERT: '' }));
  assert.equal(keyOnly.code, 1);
  assert.deepEqual(doctorChecks(keyOnly), [
    { name: 'temporal connection', ok: false, detail: 'TEMPORAL_TLS_CERT: required with TEMPORAL_TLS_KEY' },
  ]);

  const missing = await corral(
    ['worker'],
    mtlsEnv({
      TEMPORAL_TLS_CA: path.join(pki.dir, 'nope.pem'),
      DATABASE_URL: e2e.registry.connectionString,
      CORRAL_RUNTIME: 'process',
      CORRAL_PROCESS_STATE_DIR: e2e.stateDir,
      CORRAL_METRICS_PORT: '0',
      CORRAL_API_PORT: '0',
      [workerProtocolKeyVariable]: generateWorkerProtocolKey().toString('hex'),
    }),
  );
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /TEMPORAL_TLS_CA: cannot read .*nope\.pem \(ENOENT\)/);
});
