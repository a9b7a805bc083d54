// corral.worker/v2 end to end: the real dev server, registry, process runtime and Node demo
// workers, with a worker-protocol master key. Spawn writes each worker's key into its credentials,
// the lifecycle activities activate and drain with proofs, the health monitor's signed probes keep
// the workers healthy, and the corral API's hand-over is signed; a hostile unsigned activation at
// the highest epoch is refused and the lease stays good.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateWorkerProtocolKey } from '../../src/runtime/worker-protocol-proof';
import { workerProtocolV1, workerProtocolV2, workerLifecycleWorkflowId } from '../../src/common';
import { CorralError } from '../../src/client/errors';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e({ workerProtocolKey: generateWorkerProtocolKey() });
});
after(async () => {
  await e2e?.close();
});

test('a v2 pool: warm workers, a signed hand-over, a refused neighbour, a signed drain on release', async () => {
  const pool = 'v2';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 2, maxWorkers: 4, releasePolicy: 'retire' }));
  await e2e.waitForCounts(pool, { idle: 2, spawning: 0, activating: 0 });

  const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'v2-1' });
  assert.equal(lease.path, 'warm');
  const health = (await (await fetch(`${lease.endpoint}/healthz`)).json()) as Record<string, unknown>;
  assert.deepEqual(health, { status: 'serving', protocol: workerProtocolV2 }, 'health names no one');

  const pinned = await fetch(`${lease.endpoint}/activate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ workerId: lease.workerId, epoch: Number.MAX_SAFE_INTEGER, tenant: 'mallory' }),
  });
  assert.equal(pinned.status, 401, 'an unsigned activation is refused');
  assert.equal((await e2e.corral.checkLease(lease)).status, 'valid');

  await e2e.corral.release(lease);
  // Retired: drained (signed) and replaced; the pool is back to two idle, none lost.
  await e2e.waitForCounts(pool, { idle: 2, claimed: 0, spawning: 0, activating: 0, draining: 0, lost: 0 });
  const row = await e2e.registry.store.getWorker(lease.workerId);
  assert.equal(row?.state, 'retired', JSON.stringify(row));
  // Every activation and the drain were answered by the worker, proven: no refusal in history.
  const history = await e2e.client.workflow.getHandle(workerLifecycleWorkflowId(pool, lease.workerId)).fetchHistory();
  const results = (history.events ?? []).flatMap((event) =>
    [
      ...(event.activityTaskCompletedEventAttributes?.result?.payloads ?? []),
      ...Object.values(event.markerRecordedEventAttributes?.details ?? {}).flatMap((d) => d.payloads ?? []),
    ].map((payload) => Buffer.from(payload.data ?? new Uint8Array()).toString('utf8')),
  );
  const text = results.join('\n');
  assert.match(text, /"outcome":"drained"/, 'the signed drain was taken');
  assert.doesNotMatch(text, /proof_|unproven|TypeMismatch/);
});

test('a pool opted into v1 is served unsigned (no key reaches its workers); its protocol is fixed until it drains', async () => {
  const pool = 'legacy';
  const spec = demoPoolSpec(pool, {
    minIdle: 1,
    maxWorkers: 2,
    releasePolicy: 'retire',
    workerProtocol: workerProtocolV1,
  });
  await e2e.corral.applyPool(spec);
  await e2e.waitForCounts(pool, { idle: 1, spawning: 0, activating: 0 });

  const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'v1-1' });
  assert.equal(lease.path, 'warm');
  // The demo worker speaks v2 once its credentials carry a key: still v1, so none was delivered.
  const health = (await (await fetch(`${lease.endpoint}/healthz`)).json()) as Record<string, unknown>;
  assert.equal(health.protocol, workerProtocolV1);
  assert.equal(health.workerId, lease.workerId);
  assert.equal((await e2e.corral.checkLease(lease)).status, 'valid', 'the unsigned hand-over was taken');

  await assert.rejects(
    e2e.corral.applyPool({ ...spec, workerProtocol: workerProtocolV2 }),
    (err: unknown) =>
      err instanceof CorralError &&
      err.code === 'invalid_request' &&
      err.field === 'workerProtocol' &&
      /speaks corral\.worker\/v1 and cannot change while it has workers/.test(err.message),
  );
  assert.equal((await e2e.pools.getPool(pool))?.spec.workerProtocol, workerProtocolV1, 'nothing written');

  await e2e.corral.release(lease);
  await e2e.waitForCounts(pool, { idle: 1, claimed: 0, spawning: 0, activating: 0, draining: 0, lost: 0 });
  assert.equal((await e2e.registry.store.getWorker(lease.workerId))?.state, 'retired');

  await e2e.corral.drainPool(pool);
  await e2e.corral.waitForDrained(pool, { timeoutMs: 60_000 });
  const reapplied = await e2e.corral.applyPool({ ...spec, workerProtocol: workerProtocolV2 });
  assert.equal(reapplied.pool.status, 'active');
  await e2e.waitForCounts(pool, { idle: 1, spawning: 0, activating: 0, lost: 0 });
  const [worker] = await e2e.corral.listWorkers({ pool, states: ['idle'] });
  const v2Health = (await (await fetch(`${worker.endpoint}/healthz`)).json()) as Record<string, unknown>;
  assert.deepEqual(v2Health, { status: 'serving', protocol: workerProtocolV2 });
  // Seconds after the pool spoke v1: the hand-over is signed (a stale protocol would lose the worker).
  const v2Lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'v1-then-v2' });
  assert.equal(v2Lease.workerId, worker.id);
  assert.equal((await e2e.corral.checkLease(v2Lease)).status, 'valid');
});
