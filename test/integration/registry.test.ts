import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { allowedTransitions, workerStates, type TransitionOrigin, type WorkerState } from '../../src/common';
import { RegistryInputError, TransitionNotAllowedError } from '../../src/registry/errors';
import { createRegistryPool } from '../../src/registry/database';
import { ClaimStore } from '../../src/registry/claim-store';
import { PoolStore } from '../../src/registry/pool-store';
import { expectLease, expectSnapshot, WorkerLifecycleStore } from '../../src/registry/lifecycle-store';
import { migrateRegistry, migrationsDir } from '../../src/registry/migrate';
import { startMetricsServer } from '../../src/metrics/metrics-server';
import { RegistryReadings } from '../../src/metrics/registry-readings';
import { useTestRegistry, type TestRegistry } from '../harness/registry';
import { usePostgresDatabase } from '../harness/shared';

let registry: TestRegistry;
before(async () => {
  registry = await useTestRegistry({ maxConnections: 60 });
});
after(async () => {
  await registry?.close();
});

let seq = 0;
const newId = (prefix = 'w') => `${prefix}-${process.pid}-${++seq}`;

/** A pool row for corral_claim (it reads status, maxWorkers and image only). */
async function seedPool(
  name: string,
  maxWorkers: number,
  extra: { maxPerTenant?: number; tenantQuotas?: Record<string, number>; onFull?: 'wait' | 'reject' } = {},
): Promise<void> {
  await registry.db.query(`INSERT INTO pools (name, spec) VALUES ($1, $2::jsonb)`, [
    name,
    JSON.stringify({ name, maxWorkers, image: 'corral/demo:1', releasePolicy: 'hot_idle', ...extra }),
  ]);
}

/** The corral API's warm-claim transaction, as it calls it. */
const claim = (pool: string, tenant: string, requestId: string) =>
  new ClaimStore(registry.db).claim({
    pool,
    tenant,
    requestId,
    newWorkerId: newId('cold'),
    pendingMs: 60_000,
    ackMs: 15_000,
    origin: 'api',
  });

/** A client claiming an idle worker it believes to be at `epoch`. */
const claimAt = (workerId: string, epoch: number, tenant?: string) =>
  registry.store.transition({
    workerId,
    expected: { epoch, states: ['idle'] },
    to: 'claimed',
    patch: tenant ? { tenant } : {},
    operation: 'claim',
    origin: 'client',
  });

describe('migrations', () => {
  test('two processes migrating the same empty database at once both succeed, and the schema is applied once', async () => {
    const fresh = await usePostgresDatabase();
    try {
      const [a, b] = await Promise.all([
        migrateRegistry(fresh.value.connectionString),
        migrateRegistry(fresh.value.connectionString),
      ]);
      const total = fs.readdirSync(migrationsDir).filter((f) => f.endsWith('.sql')).length;
      assert.ok(total >= 2);
      assert.deepEqual([a.applied.length, b.applied.length].sort(), [0, total]);
      const client = new pg.Client({ connectionString: fresh.value.connectionString });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT count(*)::int AS n FROM corral_migrations');
        assert.equal(rows[0].n, total);
        await client.query('SELECT 1 FROM workers LIMIT 1');
        await client.query('SELECT 1 FROM pools LIMIT 1');
      } finally {
        await client.end();
      }
    } finally {
      await fresh.release();
    }
  });
});

describe('the transition table', () => {
  const pairs = workerStates.flatMap((from) => workerStates.map((to) => [from, to] as const));

  test('every allowed transition succeeds against real Postgres', async () => {
    for (const [from, to] of pairs.filter(([f, t]) => allowedTransitions[f].includes(t))) {
      const id = newId(`${from}-${to}`);
      await registry.seedWorker({ id, state: from, epoch: 3 });
      const result = await registry.store.transition({
        workerId: id,
        expected: { epoch: 3, states: [from] },
        to,
        operation: 'drain',
        origin: 'lifecycle_workflow',
      });
      assert.equal(result.outcome, 'transitioned', `${from} → ${to}`);
      assert.equal(result.outcome === 'transitioned' && result.worker.state, to);
    }
  });

  test('every disallowed transition is refused with a typed error naming both states, and writes nothing', async () => {
    const refused = pairs.filter(([f, t]) => !allowedTransitions[f].includes(t));
    assert.ok(refused.length > 0);
    for (const [from, to] of refused) {
      const id = newId(`${from}-${to}`);
      await registry.seedWorker({ id, state: from, epoch: 3 });
      await assert.rejects(
        registry.store.transition({
          workerId: id,
          expected: { epoch: 3, states: [from] },
          to,
          operation: 'drain',
          origin: 'lifecycle_workflow',
        }),
        (err: unknown) => err instanceof TransitionNotAllowedError && err.from === from && err.to === to,
      );
      const row = await registry.store.getWorker(id);
      assert.deepEqual([row?.state, row?.epoch], [from, 3]);
    }
  });
});

describe('fence outcomes', () => {
  test('row_missing, fence_miss_epoch and fence_miss_state are each produced by the scenario built for them', async () => {
    const missing = await claimAt(newId('ghost'), 1);
    assert.deepEqual(missing, { outcome: 'row_missing' });

    const id = newId();
    await registry.seedWorker({ id, state: 'idle', epoch: 5 });
    const staleEpoch = await claimAt(id, 4);
    assert.deepEqual(staleEpoch, { outcome: 'fence_miss_epoch', actual: { epoch: 5, state: 'idle' } });

    const wrongState = await registry.store.transition({
      workerId: id,
      expected: { epoch: 5, states: ['claimed'] },
      to: 'hot_idle',
      operation: 'release',
      origin: 'client',
    });
    assert.deepEqual(wrongState, { outcome: 'fence_miss_state', actual: { epoch: 5, state: 'idle' } });

    const row = await registry.store.getWorker(id);
    assert.deepEqual([row?.state, row?.epoch], ['idle', 5], 'misses wrote nothing');
  });

  test('100 concurrent transitions racing on one worker: exactly 1 transitioned, 99 precise misses', async () => {
    const id = newId('race');
    await registry.seedWorker({ id, state: 'idle', epoch: 1 });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => claimAt(id, 1, `tenant-${i}`)));
    const winners = results.filter((r) => r.outcome === 'transitioned');
    const misses = results.filter((r) => r.outcome === 'fence_miss_epoch');
    assert.equal(winners.length, 1);
    assert.equal(misses.length, 99);
    for (const miss of misses) {
      assert.deepEqual(miss.outcome === 'fence_miss_epoch' && miss.actual, { epoch: 2, state: 'claimed' });
    }
    const history = await registry.store.history(id);
    assert.equal(history.length, 1, 'one audit row: only the winner wrote');
  });
});

describe('claims', () => {
  test('50 concurrent claimers on 10 idle workers (maxWorkers 10): 10 distinct workers claimed, none twice, 40 at capacity', async () => {
    const pool = newId('claim-pool');
    await seedPool(pool, 10, { onFull: 'reject' });
    const ids = Array.from({ length: 10 }, () => newId('idle'));
    for (const id of ids) await registry.seedWorker({ id, pool, state: 'idle', epoch: 1 });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => claim(pool, `tenant-${i}`, `req-${i}`)));
    const claimed = results.flatMap((r) => (r.outcome === 'granted' ? [r] : []));
    assert.equal(claimed.length, 10);
    assert.deepEqual([...new Set(claimed.map((w) => w.workerId))].sort(), [...ids].sort());
    assert.equal(results.filter((r) => r.outcome === 'at_capacity').length, 40);
    for (const w of claimed) assert.equal(w.epoch, 2);
    const rows = await registry.store.listWorkers({ pool, states: ['claimed'] });
    assert.equal(rows.length, 10);
    const { rows: grants } = await registry.db.query(`SELECT count(*)::int AS n FROM claims WHERE pool = $1`, [pool]);
    assert.equal(grants[0].n, 10, 'refused claims leave no claim row');
  });

  test('a tenant reuses its own hot_idle worker first, another tenant never gets it, and a repeated request id gets the same worker', async () => {
    const pool = newId('hot-pool');
    await seedPool(pool, 2);
    await registry.seedWorker({ id: newId('idle'), pool, state: 'idle', epoch: 1 });
    const hot = newId('hot');
    await registry.seedWorker({ id: hot, pool, state: 'hot_idle', epoch: 4, tenant: 'acme' });

    const other = await claim(pool, 'globex', 'g-1');
    assert.equal(other.outcome, 'granted');
    assert.notEqual(other.outcome === 'granted' && other.workerId, hot);

    const mine = await claim(pool, 'acme', 'a-1');
    assert.equal(mine.outcome === 'granted' && mine.workerId, hot);
    assert.equal(mine.outcome === 'granted' && mine.fromState, 'hot_idle');

    const again = await claim(pool, 'acme', 'a-1');
    assert.equal(again.outcome, 'repeat');
    assert.deepEqual(again.outcome === 'repeat' && [again.workerId, again.epoch], [hot, 5]);
    assert.equal((await claim(pool, 'globex', 'a-1')).outcome, 'tenant_mismatch', 'a request id belongs to its tenant');
  });

  test('checkLease: valid at the current epoch while claimed, stale after a release bumps the epoch', async () => {
    const id = newId();
    await registry.seedWorker({ id, state: 'claimed', epoch: 7, tenant: 'acme' });
    const lease = { workerId: id, epoch: 7 };
    assert.equal((await registry.store.checkLease(lease)).status, 'valid');
    const released = await registry.store.transition({
      workerId: id,
      expected: expectLease(lease),
      to: 'hot_idle',
      operation: 'release',
      origin: 'client',
    });
    assert.equal(released.outcome, 'transitioned');
    assert.deepEqual(await registry.store.checkLease(lease), {
      status: 'stale_lease',
      actualEpoch: 8,
      state: 'hot_idle',
    });
    assert.deepEqual(await registry.store.checkLease({ workerId: newId('ghost'), epoch: 1 }), {
      status: 'row_missing',
    });
  });
});

describe('tenant quotas', () => {
  test('a claim over maxPerTenant is refused with quota_exceeded and leaves nothing behind; other tenants still get workers', async () => {
    const pool = newId('quota-pool');
    await seedPool(pool, 10, { maxPerTenant: 2 });
    for (let i = 0; i < 6; i++) await registry.seedWorker({ id: newId('idle'), pool, state: 'idle', epoch: 1 });
    assert.equal((await claim(pool, 'acme', 'a-1')).outcome, 'granted');
    assert.equal((await claim(pool, 'acme', 'a-2')).outcome, 'granted');
    assert.deepEqual(await claim(pool, 'acme', 'a-3'), { outcome: 'quota_exceeded', held: 2, quota: 2 });
    assert.equal((await claim(pool, 'globex', 'g-1')).outcome, 'granted', 'the quota is per tenant');
    const { rows } = await registry.db.query(
      `SELECT count(*)::int AS n FROM claims WHERE pool = $1 AND request_id = 'a-3'`,
      [pool],
    );
    assert.equal(rows[0].n, 0, 'a refused claim leaves no claim row');
    assert.equal((await registry.store.listWorkers({ pool, states: ['idle'] })).length, 3, 'no worker was taken');
  });

  test('hot_idle workers count toward the quota, yet a tenant at its quota still gets its own hot_idle worker back', async () => {
    const pool = newId('quota-hot');
    await seedPool(pool, 10, { maxPerTenant: 2 });
    await registry.seedWorker({ id: newId('idle'), pool, state: 'idle', epoch: 1 });
    const hot = newId('hot');
    await registry.seedWorker({ id: hot, pool, state: 'hot_idle', epoch: 3, tenant: 'acme' });
    await registry.seedWorker({ id: newId('held'), pool, state: 'claimed', epoch: 2, tenant: 'acme' });
    const reused = await claim(pool, 'acme', 'a-1');
    assert.equal(
      reused.outcome === 'granted' && reused.workerId,
      hot,
      'its own hot_idle worker: the count does not change',
    );
    assert.deepEqual(await claim(pool, 'acme', 'a-2'), { outcome: 'quota_exceeded', held: 2, quota: 2 });
  });

  test('cold workers being made for a tenant count, and tenantQuotas overrides maxPerTenant (0 bars a tenant)', async () => {
    const pool = newId('quota-cold');
    await seedPool(pool, 10, { maxPerTenant: 1, tenantQuotas: { big: 3, barred: 0 } });
    // No idle worker: each claim reserves a cold slot and waits pending.
    assert.equal((await claim(pool, 'acme', 'a-1')).outcome, 'cold');
    assert.deepEqual(await claim(pool, 'acme', 'a-2'), { outcome: 'quota_exceeded', held: 1, quota: 1 });
    assert.equal(
      (await claim(pool, 'acme', 'a-1')).outcome,
      'in_progress',
      'its own pending claim is not counted twice',
    );
    for (const id of ['b-1', 'b-2', 'b-3']) assert.equal((await claim(pool, 'big', id)).outcome, 'cold');
    assert.deepEqual(await claim(pool, 'big', 'b-4'), { outcome: 'quota_exceeded', held: 3, quota: 3 });
    assert.deepEqual(await claim(pool, 'barred', 'x-1'), { outcome: 'quota_exceeded', held: 0, quota: 0 });
  });

  test('30 concurrent claims of one tenant with a quota of 3 on 20 idle workers: exactly 3 granted', async () => {
    const pool = newId('quota-race');
    await seedPool(pool, 20, { maxPerTenant: 3 });
    for (let i = 0; i < 20; i++) await registry.seedWorker({ id: newId('idle'), pool, state: 'idle', epoch: 1 });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => claim(pool, 'acme', `race-${i}`)));
    assert.equal(results.filter((r) => r.outcome === 'granted').length, 3);
    assert.equal(results.filter((r) => r.outcome === 'quota_exceeded').length, 27);
    assert.equal((await registry.store.listWorkers({ pool, states: ['claimed'] })).length, 3);
  });
});

describe('waiting claims', () => {
  /** Frees a slot: the worker ends (as its workflow would record a retirement). */
  const retire = (workerId: string) =>
    registry.db.query(`UPDATE workers SET state = 'retired', state_since = now() WHERE id = $1`, [workerId]);
  const claimStatus = async (pool: string, requestId: string) =>
    (
      await registry.db.query(`SELECT status, worker_id FROM claims WHERE pool = $1 AND request_id = $2`, [
        pool,
        requestId,
      ])
    ).rows[0] as { status: string; worker_id: string | null } | undefined;

  test("onFull reject answers at_capacity at once; by default a claim on a full pool waits, and its position is the queue's", async () => {
    const rejecting = newId('full-reject');
    await seedPool(rejecting, 1, { onFull: 'reject' });
    await registry.seedWorker({ id: newId('held'), pool: rejecting, state: 'claimed', epoch: 2, tenant: 'x' });
    assert.equal((await claim(rejecting, 'acme', 'r-1')).outcome, 'at_capacity');

    const pool = newId('full-wait');
    await seedPool(pool, 1);
    await registry.seedWorker({ id: newId('held'), pool, state: 'claimed', epoch: 2, tenant: 'x' });
    assert.deepEqual(await claim(pool, 'acme', 'a-1'), { outcome: 'waiting', position: 1, eviction: null });
    assert.deepEqual(await claim(pool, 'acme', 'a-2'), { outcome: 'waiting', position: 2, eviction: null });
    assert.deepEqual(
      await claim(pool, 'acme', 'a-1'),
      { outcome: 'waiting', position: 1, eviction: null },
      'a repeat keeps its place',
    );
    assert.equal((await claimStatus(pool, 'a-2'))?.status, 'waiting');
    const depths = await new RegistryReadings(registry.db).claimQueueDepths();
    assert.deepEqual(
      depths.filter((d) => d.pool === pool),
      [{ pool, waiting: 2 }],
      'the queue-depth gauge reads it',
    );
  });

  test('fair across tenants: with tenant A holding 50 queued claims, tenant B’s single claim is served next-but-one; newcomers never jump the queue', async () => {
    const pool = newId('fair');
    await seedPool(pool, 1);
    const held = newId('held');
    await registry.seedWorker({ id: held, pool, state: 'claimed', epoch: 2, tenant: 'x' });
    const a = Array.from({ length: 50 }, (_, i) => `a-${i + 1}`);
    for (const id of a) assert.equal((await claim(pool, 'acme', id)).outcome, 'waiting');
    const b = await claim(pool, 'globex', 'b-1');
    assert.deepEqual(b, { outcome: 'waiting', position: 2, eviction: null }, "B ranks with A's first claim");

    /** Every waiting caller asks again (latest first, so order of asking cannot be what decides). */
    const newcomers: (readonly [string, string])[] = [];
    /** Every waiting caller asks again (latest first, so the order of asking cannot be what decides). */
    const everyoneAsks = async () => {
      const served: string[] = [];
      const callers = [
        ...newcomers,
        ['globex', 'b-1'] as const,
        ...[...a].reverse().map((id) => ['acme', id] as const),
      ];
      for (const [tenant, id] of callers) {
        if ((await claimStatus(pool, id))?.status !== 'waiting') continue;
        const decision = await claim(pool, tenant, id);
        if (decision.outcome !== 'waiting') served.push(`${id}:${decision.outcome}`);
      }
      return served;
    };
    assert.deepEqual(await everyoneAsks(), [], 'no capacity: nobody is served');
    await retire(held);
    assert.deepEqual(await everyoneAsks(), ['a-1:cold'], 'the head takes the freed slot');
    // A newcomer of a third tenant asks first once a slot is free, yet the queue's order decides.
    await retire((await claimStatus(pool, 'a-1'))!.worker_id!);
    assert.equal((await claim(pool, 'initech', 'n-1')).outcome, 'waiting', 'a newcomer waits behind the queue');
    newcomers.push(['initech', 'n-1']);
    assert.deepEqual(await everyoneAsks(), ['b-1:cold'], 'B is served next-but-one');
    await retire((await claimStatus(pool, 'b-1'))!.worker_id!);
    assert.deepEqual(
      await everyoneAsks(),
      ['n-1:cold'],
      "round-robin: the newcomer's first claim before A's second (A has had its turn)",
    );
    await retire((await claimStatus(pool, 'n-1'))!.worker_id!);
    assert.deepEqual(await everyoneAsks(), ['a-2:cold'], 'then A again, in its own order');
  });

  test('a caller that stopped asking for 5 s is skipped, and when it comes back it joins again at the back; abandonWait leaves the queue', async () => {
    const pool = newId('stale');
    await seedPool(pool, 1);
    const held = newId('held');
    await registry.seedWorker({ id: held, pool, state: 'claimed', epoch: 2, tenant: 'x' });
    assert.equal((await claim(pool, 'acme', 'gone-1')).outcome, 'waiting');
    assert.equal((await claim(pool, 'globex', 'g-1')).outcome, 'waiting');
    await registry.db.query(
      `UPDATE claims SET polled_at = now() - interval '10 seconds' WHERE pool = $1 AND request_id = 'gone-1'`,
      [pool],
    );
    assert.deepEqual(await claim(pool, 'globex', 'g-1'), { outcome: 'waiting', position: 1, eviction: null });
    assert.deepEqual(
      await claim(pool, 'acme', 'gone-1'),
      { outcome: 'waiting', position: 2, eviction: null },
      'back after 5 s: behind the claim that kept asking (a claim parked long ago cannot jump the queue)',
    );
    assert.deepEqual(await claim(pool, 'globex', 'g-1'), { outcome: 'waiting', position: 1, eviction: null });
    await new ClaimStore(registry.db).abandonWait({ pool, requestId: 'gone-1' });
    assert.equal(await claimStatus(pool, 'gone-1'), undefined);
    await retire(held);
    assert.equal((await claim(pool, 'globex', 'g-1')).outcome, 'cold');
  });

  test('retention deletes a waiting claim nobody has asked for in a minute, and no other waiting claim', async () => {
    const pool = newId('abandoned');
    await seedPool(pool, 1);
    await registry.seedWorker({ id: newId('held'), pool, state: 'claimed', epoch: 2, tenant: 'x' });
    assert.equal((await claim(pool, 'acme', 'gone')).outcome, 'waiting');
    assert.equal((await claim(pool, 'acme', 'here')).outcome, 'waiting');
    await registry.db.query(
      `UPDATE claims SET polled_at = now() - interval '2 minutes' WHERE pool = $1 AND request_id = 'gone'`,
      [pool],
    );
    await registry.store.deleteEndedClaims({ retentionMs: 7 * 24 * 3_600_000, batchSize: 100 });
    assert.equal(await claimStatus(pool, 'gone'), undefined);
    assert.equal((await claimStatus(pool, 'here'))?.status, 'waiting');
  });

  test("eviction for room: at maxWorkers a waiting claim marks another tenant's least recently used hot_idle worker, never a claimed one, one per waiting claim", async () => {
    const pool = newId('evict');
    await seedPool(pool, 4);
    await registry.seedWorker({ id: newId('claimed'), pool, state: 'claimed', epoch: 2, tenant: 'acme' });
    const oldest = newId('hot-old');
    await registry.seedWorker({ id: oldest, pool, state: 'hot_idle', epoch: 3, tenant: 'acme' });
    const newer = newId('hot-new');
    await registry.seedWorker({ id: newer, pool, state: 'hot_idle', epoch: 3, tenant: 'acme' });
    await registry.db.query(`UPDATE workers SET state_since = now() - interval '1 hour' WHERE id = $1`, [oldest]);
    const own = newId('hot-own');
    await registry.seedWorker({ id: own, pool, state: 'hot_idle', epoch: 3, tenant: 'globex' });
    await registry.db.query(`UPDATE workers SET state_since = now() - interval '2 hours' WHERE id = $1`, [own]);

    // globex takes its own hot_idle worker; its next claim waits and evicts acme's oldest.
    assert.equal((await claim(pool, 'globex', 'g-1')).outcome, 'granted');
    assert.deepEqual(await claim(pool, 'globex', 'g-2'), {
      outcome: 'waiting',
      position: 1,
      eviction: { workerId: oldest, fresh: true },
    });
    assert.deepEqual(
      await claim(pool, 'globex', 'g-2'),
      {
        outcome: 'waiting',
        position: 1,
        eviction: { workerId: oldest, fresh: false },
      },
      'asked again while it is still hot_idle, not a second eviction',
    );
    // A second waiting claim makes room for itself: the next least recently used.
    assert.deepEqual(await claim(pool, 'initech', 'i-1'), {
      outcome: 'waiting',
      position: 2,
      eviction: { workerId: newer, fresh: true },
    });
    const { rows } = await registry.db.query(
      `SELECT id, state, drain_requested FROM workers WHERE pool = $1 ORDER BY id`,
      [pool],
    );
    const marked = rows
      .filter((r) => r.drain_requested)
      .map((r) => r.id)
      .sort();
    assert.deepEqual(marked, [oldest, newer].sort(), 'only the two hot_idle workers of the other tenant');
    assert.equal(rows.filter((r) => r.state === 'claimed').length, 2, 'claimed workers are never touched');
    // A third waiter finds no more to evict: nothing else is hot_idle.
    assert.deepEqual(await claim(pool, 'umbrella', 'u-1'), { outcome: 'waiting', position: 3, eviction: null });
  });
});

describe('capacity policy, the corners', () => {
  test('a cold worker that was lost stops counting toward its tenant’s quota', async () => {
    const pool = newId('quota-lost');
    await seedPool(pool, 10, { maxPerTenant: 1 });
    const first = await claim(pool, 'acme', 'a-1');
    assert.equal(first.outcome, 'cold');
    assert.equal((await claim(pool, 'acme', 'a-2')).outcome, 'quota_exceeded');
    await registry.db.query(`UPDATE workers SET state = 'lost' WHERE id = $1`, [
      first.outcome === 'cold' ? first.workerId : '',
    ]);
    assert.equal((await claim(pool, 'acme', 'a-3')).outcome, 'cold', 'the failed spawn holds nothing');
  });

  test("a tenant's own hot_idle worker is taken at once, ahead of a queue of other tenants", async () => {
    const pool = newId('own-first');
    await seedPool(pool, 2);
    await registry.seedWorker({ id: newId('held'), pool, state: 'claimed', epoch: 2, tenant: 'x' });
    const mine = newId('mine');
    await registry.seedWorker({ id: mine, pool, state: 'claimed', epoch: 2, tenant: 'acme' });
    assert.deepEqual(await claim(pool, 'globex', 'g-1'), { outcome: 'waiting', position: 1, eviction: null });
    // acme's worker is back, reserved for acme (as a release with no one of another tenant ahead leaves it).
    await registry.db.query(`UPDATE workers SET state = 'hot_idle', epoch = 3 WHERE id = $1`, [mine]);
    const again = await claim(pool, 'acme', 'a-1');
    assert.equal(again.outcome === 'granted' && again.workerId, mine, 'not behind globex, which could not have it');
  });

  test('no eviction while a started worker no claim is bound to is on its way; one once it is bound elsewhere', async () => {
    const pool = newId('incoming');
    await seedPool(pool, 3);
    await registry.seedWorker({ id: newId('held'), pool, state: 'claimed', epoch: 2, tenant: 'acme' });
    const hot = newId('hot');
    await registry.seedWorker({ id: hot, pool, state: 'hot_idle', epoch: 3, tenant: 'acme' });
    const starting = newId('refill');
    await registry.seedWorker({ id: starting, pool, state: 'spawning', epoch: 1 });
    assert.deepEqual(await claim(pool, 'globex', 'g-1'), { outcome: 'waiting', position: 1, eviction: null });
    // Once that worker is another claim's (a cold worker made for it), nothing is on its way to the queue.
    await registry.db.query(
      `INSERT INTO claims (pool, request_id, tenant, status, worker_id, path, pending_until)
       VALUES ($1, 'cold-for-initech', 'initech', 'pending', $2, 'cold', now() + interval '1 minute')`,
      [pool, starting],
    );
    assert.deepEqual(await claim(pool, 'globex', 'g-1'), {
      outcome: 'waiting',
      position: 1,
      eviction: { workerId: hot, fresh: true },
    });
  });

  test("a release retires the worker instead of keeping it hot_idle when another tenant's claim heads the queue", async () => {
    const pool = newId('release-queue');
    await seedPool(pool, 1);
    const held = newId('held');
    await registry.seedWorker({ id: held, pool, state: 'claimed', epoch: 2, tenant: 'acme' });
    assert.equal((await claim(pool, 'globex', 'g-1')).outcome, 'waiting');
    const released = await new ClaimStore(registry.db).release({
      workerId: held,
      epoch: 2,
      tenant: null,
      origin: 'api',
    });
    assert.equal(released.outcome === 'released' && released.worker.state, 'draining');
  });
});

describe('warm capacity', () => {
  test('observeDemand counts claims in the last 10 s, the last minute and the busiest minute of the cool-down window, and measures the lead time: mean spawn-to-ready, mean warm claim to the next reservation by the pool', async () => {
    const pool = newId('demand');
    await seedPool(pool, 10);
    const pools = new PoolStore(registry.db);
    assert.deepEqual(await pools.observeDemand(pool, 600_000), {
      claimsLastTenSeconds: 0,
      claimsLastMinute: 0,
      peakClaimsPerMinute: 0,
      spawnSeconds: null,
      reactionSeconds: null,
    });
    // Two claims in the last minute; three in one clock minute four minutes ago; one twenty minutes ago.
    const at = [
      "now() - interval '1 second'",
      "now() - interval '2 seconds'",
      "date_trunc('minute', now()) - interval '4 minutes' + interval '1 second'",
      "date_trunc('minute', now()) - interval '4 minutes' + interval '2 seconds'",
      "date_trunc('minute', now()) - interval '4 minutes' + interval '3 seconds'",
      "now() - interval '20 minutes'",
    ];
    for (const [i, createdAt] of at.entries()) {
      await registry.db.query(
        `INSERT INTO claims (pool, request_id, tenant, status, pending_until, created_at)
         VALUES ($1, $2, 't', 'pending', now(), ${createdAt})`,
        [pool, `r-${i}`],
      );
    }
    // Three ready workers that took 4, 6 and 12 s from creation to leaving activating, two hours ago
    // (a quiet pool keeps what it last measured); one still spawning.
    const createdAt = new Date(Date.now() - 2 * 3_600_000);
    for (const readySeconds of [4, 6, 12]) {
      const id = newId('ready');
      await registry.db.query(
        `INSERT INTO workers (id, pool, image, state, epoch, created_at) VALUES ($1, $2, 'i', 'idle', 2, $3)`,
        [id, pool, createdAt],
      );
      await registry.db.query(
        `INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, at)
         VALUES ($1, 'activating', 'idle', 1, 2, 'ready', 'lifecycle_workflow', $2)`,
        [id, new Date(createdAt.getTime() + readySeconds * 1000)],
      );
    }
    await registry.seedWorker({ id: newId('spawning'), pool, state: 'spawning' });
    // Reaction: warm claims eight minutes ago (one clock minute, three claims), each followed by a
    // reservation of the pool workflow — 0.5 s and 1 s later; a cold claim's own worker (origin api)
    // 0.2 s after the second is not the pool's; a claim that waited, and one the pool did not
    // replace within 10 s, are not counted.
    const minute = "date_trunc('minute', now()) - interval '8 minutes'";
    const warmClaims: [string, string, string | null][] = [
      ['w-1', `${minute} + interval '10 seconds'`, null],
      ['w-2', `${minute} + interval '20 seconds'`, null],
      ['w-waited', `${minute} + interval '40 seconds'`, `${minute} + interval '39 seconds'`],
    ];
    for (const [requestId, createdAt, waitingSince] of warmClaims) {
      await registry.db.query(
        `INSERT INTO claims (pool, request_id, tenant, status, path, pending_until, created_at, waiting_since)
         VALUES ($1, $2, 't', 'granted', 'warm', now(), ${createdAt}, ${waitingSince ?? 'NULL'})`,
        [pool, requestId],
      );
    }
    const reservations: [string, TransitionOrigin][] = [
      [`${minute} + interval '10.5 seconds'`, 'pool_workflow'],
      [`${minute} + interval '20.2 seconds'`, 'api'],
      [`${minute} + interval '21 seconds'`, 'pool_workflow'],
      [`${minute} + interval '41 seconds'`, 'pool_workflow'],
    ];
    for (const [createdAt, origin] of reservations) {
      const id = newId('reserved');
      await registry.db.query(
        `INSERT INTO workers (id, pool, image, state, epoch, created_at) VALUES ($1, $2, 'i', 'retired', 1, ${createdAt})`,
        [id, pool],
      );
      await registry.db.query(
        `INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
         VALUES ($1, NULL, 'spawning', NULL, 1, 'create', $2)`,
        [id, origin],
      );
    }
    assert.deepEqual(await pools.observeDemand(pool, 600_000), {
      claimsLastTenSeconds: 2,
      claimsLastMinute: 2,
      peakClaimsPerMinute: 3,
      spawnSeconds: 22 / 3,
      reactionSeconds: 0.75,
    });
  });

  test('markSurplusIdle marks the longest-idle workers that are still idle, and no claim takes them', async () => {
    const pool = newId('surplus');
    await seedPool(pool, 10);
    const ids = Array.from({ length: 4 }, () => newId('idle'));
    for (const [i, id] of ids.entries()) {
      await registry.seedWorker({ id, pool, state: 'idle', epoch: 1 });
      await registry.db.query(`UPDATE workers SET state_since = now() - make_interval(mins => $2) WHERE id = $1`, [
        id,
        10 - i,
      ]);
    }
    await registry.seedWorker({ id: newId('claimed'), pool, state: 'claimed', epoch: 2, tenant: 'acme' });
    const pools = new PoolStore(registry.db);
    assert.deepEqual((await pools.markSurplusIdle(pool, 2)).sort(), [ids[0], ids[1]].sort(), 'the two longest idle');
    const granted = await claim(pool, 'globex', 'g-1');
    assert.ok(
      granted.outcome === 'granted' && [ids[2], ids[3]].includes(granted.workerId),
      'a claim skips marked ones',
    );
    assert.deepEqual(await pools.markSurplusIdle(pool, 5), [
      granted.outcome === 'granted' && granted.workerId === ids[2] ? ids[3] : ids[2],
    ]);
  });
});

describe('audit trail', () => {
  test("a worker's audit trail replays its whole life in order, epochs included", async () => {
    const id = newId('life');
    const { created, worker } = await registry.store.createWorker({
      id,
      pool: 'audit',
      image: 'corral/demo-worker:0.1.0',
      origin: 'lifecycle_workflow',
    });
    assert.equal(created, true);
    assert.equal(
      (await registry.store.createWorker({ id, pool: 'audit', image: 'x:1', origin: 'lifecycle_workflow' })).created,
      false,
    );

    let current = worker;
    const step = async (
      to: WorkerState,
      operation: Parameters<WorkerLifecycleStore['transition']>[0]['operation'],
      patch = {},
    ) => {
      const r = await registry.store.transition({
        workerId: id,
        expected: expectSnapshot(current),
        to,
        patch,
        operation,
        origin: 'lifecycle_workflow',
      });
      assert.equal(r.outcome, 'transitioned', `${current.state} → ${to}`);
      if (r.outcome === 'transitioned') current = r.worker;
    };
    await step('activating', 'activate', { podName: 'corral-audit-1' });
    await step('idle', 'ready');
    await step('claimed', 'claim', { tenant: 'acme' });
    await step('claimed', 'refresh_credentials', { credentialVersion: 2 });
    await step('hot_idle', 'release');
    await step('draining', 'drain');
    await step('retired', 'retire');

    const trail = await registry.store.history(id);
    assert.deepEqual(
      trail.map((t) => [t.fromState, t.toState, t.epochBefore, t.epochAfter, t.operation]),
      [
        [null, 'spawning', null, 1, 'create'],
        ['spawning', 'activating', 1, 1, 'activate'],
        ['activating', 'idle', 1, 1, 'ready'],
        ['idle', 'claimed', 1, 2, 'claim'],
        ['claimed', 'claimed', 2, 2, 'refresh_credentials'],
        ['claimed', 'hot_idle', 2, 3, 'release'],
        ['hot_idle', 'draining', 3, 3, 'drain'],
        ['draining', 'retired', 3, 3, 'retire'],
      ],
    );
    for (let i = 1; i < trail.length; i++) {
      assert.ok(trail[i].at >= trail[i - 1].at, 'timestamps never go backwards');
      assert.equal(trail[i].epochBefore, trail[i - 1].epochAfter, 'each step starts where the last one ended');
    }
  });
});

describe('input', () => {
  test('bad input is a typed error naming the field, raised before any SQL', async () => {
    // A store whose database is unreachable: reaching SQL would give store_error, not a throw.
    const unreachable = createRegistryPool({
      connectionString: 'postgres://x:y@127.0.0.1:1/none',
      connectTimeoutMs: 500,
    });
    unreachable.on('error', () => undefined);
    const store = new WorkerLifecycleStore(unreachable);
    const base = {
      workerId: 'w-1',
      expected: { epoch: 1, states: ['idle' as WorkerState] },
      to: 'claimed' as WorkerState,
      operation: 'claim' as const,
      origin: 'client' as const,
    };
    const cases: [string, object][] = [
      ['to', { ...base, to: 'zombie' }],
      ['expected.states.0', { ...base, expected: { epoch: 1, states: ['floating'] } }],
      ['expected.epoch', { ...base, expected: { epoch: 0, states: ['idle'] } }],
      ['expected.epoch', { ...base, expected: { epoch: -3, states: ['idle'] } }],
      ['workerId', { ...base, workerId: '' }],
      ['workerId', { ...base, workerId: 'w'.repeat(129) }],
      ['patch.tenant', { ...base, patch: { tenant: 't'.repeat(129) } }],
      ['operation', { ...base, operation: 'teleport' }],
    ];
    for (const [field, request] of cases) {
      await assert.rejects(
        store.transition(request as never),
        (err: unknown) => err instanceof RegistryInputError && err.field === field,
        `expected a RegistryInputError on ${field}`,
      );
    }
    await assert.rejects(
      store.checkLease({ workerId: 'w', epoch: 1.5 }),
      (err: unknown) => err instanceof RegistryInputError && err.field === 'epoch',
    );
    await unreachable.end();
  });

  test("hostile strings such as x'; drop table workers; -- are stored verbatim and harm nothing", async () => {
    const hostile = "x'; drop table workers; --";
    const id = newId("it's");
    await registry.store.createWorker({ id, pool: hostile, image: 'corral/demo:1', origin: 'client' });
    await registry.seedWorker({ id, pool: hostile, state: 'idle', epoch: 1 });
    await seedPool(hostile, 1);
    const granted = await claim(hostile, hostile, hostile);
    assert.equal(granted.outcome, 'granted');
    const [row] = await registry.store.listWorkers({ pool: hostile });
    assert.deepEqual([row.id, row.pool, row.tenant, row.claimRequestId], [id, hostile, hostile, hostile]);
    const { rows } = await registry.db.query('SELECT count(*)::int AS n FROM workers');
    assert.ok(rows[0].n > 1, 'the workers table is still there');
  });
});

describe('metrics', () => {
  test('transition counters and duration histograms move as the calls expect, scraped over HTTP', async () => {
    const server = await startMetricsServer(registry.metricsRegistry);
    const scrape = async () => {
      const text = await (await fetch(server.url, { signal: AbortSignal.timeout(5_000) })).text();
      const value = (name: string, labels: Record<string, string>) => {
        const line = text
          .split('\n')
          .find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
        return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
      };
      return value;
    };
    try {
      const image = 'corral/metrics-probe:1';
      const before = await scrape();
      const id = newId('metrics');
      await registry.seedWorker({ id, state: 'idle', epoch: 1, image });
      await claimAt(id, 1);
      await claimAt(id, 1);
      await claimAt(newId('ghost'), 1);
      const afterScrape = await scrape();
      const counter = 'corral_worker_lifecycle_transitions_total';
      const delta = (labels: Record<string, string>) => afterScrape(counter, labels) - before(counter, labels);
      assert.equal(delta({ operation: 'claim', outcome: 'transitioned', image, origin: 'client' }), 1);
      assert.equal(delta({ operation: 'claim', outcome: 'fence_miss_epoch', image, origin: 'client' }), 1);
      // A missing row has no image: it counts as unknown.
      assert.equal(delta({ operation: 'claim', outcome: 'row_missing', image: 'unknown', origin: 'client' }), 1);
      const histogramCount = 'corral_worker_lifecycle_transition_duration_seconds_count';
      assert.equal(
        afterScrape(histogramCount, { operation: 'claim' }) - before(histogramCount, { operation: 'claim' }),
        3,
      );
    } finally {
      await server.close();
    }
  });
});
