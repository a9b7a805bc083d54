// Waiting claims end to end (issue 20, docs/decisions/0034-waiting-claims.md): the real dev
// server, registry, process runtime and demo worker, through the corral API. A claim on a full
// pool waits in the registry's queue and is served by a release; at maxWorkers it makes room by
// retiring another tenant's hot_idle worker (never a claimed one); a waiting claim whose replica
// went away keeps its place when its caller asks again elsewhere with the same requestId. How
// fast a release reaches a waiter is measured by bench/capacity, not asserted here.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../src/embedded/wait';
import { parseExposition, sampleSum } from '../../src/metrics/exposition';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e();
});
after(async () => {
  await e2e?.close();
});

const claimRow = async (pool: string, requestId: string) =>
  (
    await e2e.registry.db.query(
      `SELECT status, wait_rank, waiting_since FROM claims WHERE pool = $1 AND request_id = $2`,
      [pool, requestId],
    )
  ).rows[0] as { status: string; wait_rank: number | null; waiting_since: Date | null } | undefined;

const untilWaiting = (pool: string, requestId: string) =>
  waitFor(async () => (await claimRow(pool, requestId))?.status === 'waiting', {
    what: `claim ${requestId} waiting in pool ${pool}'s queue`,
    timeoutMs: 30_000,
    intervalMs: 50,
  });

test('a claim on a full pool waits in the queue and is served by a release (recycle: the same worker, warm), saying how long it waited', async () => {
  const pool = 'wait-release';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 1, maxWorkers: 1, releasePolicy: 'recycle' }));
  await e2e.waitForCounts(pool, { idle: 1 });
  const held = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'held' });
  const waiting = e2e.corral.claim(pool, { tenant: 'globex', requestId: 'waiter', timeout: '2m' });
  await untilWaiting(pool, 'waiter');
  await e2e.corral.release(held);
  const served = await waiting;
  assert.equal(served.workerId, held.workerId, 'the recycled worker went to the waiting claim');
  assert.equal(served.tenant, 'globex');
  assert.ok(served.waitedMs > 0, `waitedMs ${served.waitedMs}`);
  assert.equal((await e2e.corral.checkLease(served)).status, 'valid');
  const exposition = parseExposition(await e2e.metrics.metrics());
  assert.equal(sampleSum(exposition, 'corral_claim_wait_seconds_count', { pool, outcome: 'served' }), 1);
  await e2e.corral.release(served);
});

test("at maxWorkers a waiting claim retires another tenant's hot_idle worker (never the claimed one) and gets a new one", async () => {
  const pool = 'wait-evict';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 0, maxWorkers: 2, releasePolicy: 'hot_idle' }));
  const kept = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'kept', timeout: '2m' });
  const returned = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'returned', timeout: '2m' });
  await e2e.corral.release(returned); // hot_idle for acme
  await e2e.waitForCounts(pool, { claimed: 1, hot_idle: 1 });

  const served = await e2e.corral.claim(pool, { tenant: 'globex', requestId: 'room', timeout: '2m' });
  assert.notEqual(served.workerId, returned.workerId, 'a hot_idle worker never changes tenant');
  assert.notEqual(served.workerId, kept.workerId);
  assert.equal(served.path, 'cold');
  assert.ok(served.waitedMs > 0);
  const evicted = await e2e.registry.store.getWorker(returned.workerId);
  assert.equal(evicted?.state, 'retired', "acme's hot_idle worker was retired for room");
  assert.equal((await e2e.corral.checkLease(kept)).status, 'valid', 'the claimed worker was not touched');
  assert.equal(await e2e.metricValue('corral_evictions_total', { pool }), 1);
  await e2e.corral.release(kept);
  await e2e.corral.release(served);
});

test('a waiting claim outlives the replica that queued it: asked again elsewhere with its requestId, it keeps its place and is served', async () => {
  const pool = 'wait-restart';
  await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 1, maxWorkers: 1, releasePolicy: 'recycle' }));
  await e2e.waitForCounts(pool, { idle: 1 });
  const held = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'held' });

  const replica = await e2e.startApiReplica();
  const caller = new AbortController();
  const first = fetch(`${replica.url}/v1/pools/${pool}/claims`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenant: 'globex', requestId: 'survivor', timeout: '2m' }),
    signal: caller.signal,
  }).catch((err: unknown) => err);
  await untilWaiting(pool, 'survivor');
  const queued = await claimRow(pool, 'survivor');
  // The replica goes away with the request in flight (its caller sees the connection end).
  caller.abort();
  await first;
  await replica.close();
  assert.equal((await claimRow(pool, 'survivor'))?.status, 'waiting', 'the queue is in the registry, not the replica');

  // Meanwhile another tenant queues behind it; the caller comes back through another replica.
  const later = e2e.corral.claim(pool, { tenant: 'initech', requestId: 'later', timeout: '2m' });
  await untilWaiting(pool, 'later');
  const again = e2e.corral.claim(pool, { tenant: 'globex', requestId: 'survivor', timeout: '2m' });
  const kept = await claimRow(pool, 'survivor');
  assert.deepEqual([kept?.wait_rank, kept?.waiting_since], [queued?.wait_rank, queued?.waiting_since], 'same place');
  await e2e.corral.release(held);
  const served = await again;
  assert.equal(served.tenant, 'globex');
  assert.equal(served.workerId, held.workerId, 'served first: ahead of the claim queued after it');
  assert.equal((await claimRow(pool, 'later'))?.status, 'waiting');
  await e2e.corral.release(served);
  const last = await later;
  assert.equal(last.tenant, 'initech');
  await e2e.corral.release(last);
});
