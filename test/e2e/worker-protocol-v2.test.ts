// corral.worker/v2 end to end: the real dev server, registry, process runtime and Node demo
// workers, with a worker-protocol master key. Spawn writes each worker's key into its credentials,
// the lifecycle activities activate and drain with proofs, the health monitor's signed probes keep
// the workers healthy, and the corral API's hand-over is signed; a hostile unsigned activation at
// the highest epoch is refused and the lease stays good.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateWorkerProtocolKey, workerProtocolV2 } from '../../src/runtime/worker-protocol-proof';
import { workerLifecycleWorkflowId } from '../../src/workflows/worker-lifecycle/messages';
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
