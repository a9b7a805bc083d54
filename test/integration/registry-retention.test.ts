// Retention: the janitor deletes workers retired or lost longer ago than the period (with their
// audit trail) and claims that ended longer ago than that, in bounded batches, oldest first —
// and nothing else. Live workers (however old, with their whole trail), terminal workers younger
// than the period, held leases and pending claims of live workers survive. `corral history` of a
// worker whose trail is gone says so (the API's 404 and the CLI's sentence).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Registry } from 'prom-client';
import { createJanitorActivities } from '../../src/activities/janitor-activities';
import { buildCorralApi } from '../../src/api/api-server';
import type { ClaimService } from '../../src/api/claim-service';
import type { PoolService } from '../../src/api/pool-service';
import { describeCliError } from '../../src/cli/cli-errors';
import { CorralClient } from '../../src/client/corral-client';
import { CorralError } from '../../src/client/errors';
import {
  ensureJanitorSchedule,
  janitorRetention,
  JanitorScheduleOptionsError,
  parseRetention,
} from '../../src/client/janitor-schedule';
import { createJanitorMetrics } from '../../src/metrics/janitor-metrics';
import type { RetentionBatch, WorkerLifecycleStore } from '../../src/registry/lifecycle-store';
import type { PodRuntime } from '../../src/runtime/pod-runtime';
import { useTestRegistry, type TestRegistry } from '../harness/registry';
import type { RetentionReport } from '../../src/common';

const day = 24 * 3_600_000;
const retentionMs = 7 * day;
const batchSize = 1_000;

let registry: TestRegistry;
before(async () => {
  registry = await useTestRegistry();
});
after(async () => {
  await registry?.close();
});

/** Retention needs neither a runtime nor Temporal: anything it touched there would throw. */
const untouchable = new Proxy({}, { get: () => () => Promise.reject(new Error('retention must not call this')) });

/** The janitor's activities over the test registry, with every retention statement's result recorded. */
function janitorWith(opts: { maxBatchesPerPass?: number } = {}) {
  const batches: { kind: 'workers' | 'claims'; batch: RetentionBatch }[] = [];
  const store = Object.create(registry.store) as WorkerLifecycleStore;
  store.deleteExpiredWorkers = async (input) => {
    const batch = await registry.store.deleteExpiredWorkers(input);
    batches.push({ kind: 'workers', batch });
    return batch;
  };
  store.deleteEndedClaims = async (input) => {
    const batch = await registry.store.deleteEndedClaims(input);
    batches.push({ kind: 'claims', batch });
    return batch;
  };
  const metrics = new Registry();
  const activities = createJanitorActivities({
    store,
    runtime: untouchable as PodRuntime,
    temporal: untouchable as Client,
    metrics: createJanitorMetrics(metrics),
    retentionLimits: { batchSize, ...opts },
  });
  return { activities, batches, metrics };
}

/**
 * `count` workers `<prefix><n>` in `state`, that state entered `endedDaysAgo` (+ n seconds, so
 * they have distinct ages), created `createdDaysAgo`, each with a three-step trail as old as that.
 */
async function seedWorkers(opts: {
  prefix: string;
  count: number;
  state: string;
  endedDaysAgo: number;
  createdDaysAgo: number;
  epoch?: number;
  tenant?: string;
}): Promise<string[]> {
  const { rows } = await registry.db.query(
    `WITH seeded AS (
       INSERT INTO workers (id, pool, image, state, epoch, tenant, state_since, created_at, updated_at)
       SELECT $1 || g, 'ret', 'corral/demo:1', $3, $4, $5,
              now() - make_interval(days => $6, secs => g), now() - make_interval(days => $7),
              now() - make_interval(days => $6, secs => g)
         FROM generate_series(1, $2::int) AS g
       RETURNING id, created_at, state_since
     ), trail AS (
       INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, at)
       SELECT s.id, t.from_state, t.to_state, t.epoch_before, t.epoch_after, t.operation, 'lifecycle_workflow',
              CASE WHEN t.step = 3 THEN s.state_since ELSE s.created_at END
         FROM seeded s
        CROSS JOIN (VALUES (1, NULL, 'spawning', NULL, 1, 'create'), (2, 'spawning', 'activating', 1, 1, 'activate'),
                           (3, 'activating', $3, 1, 1, 'ready')) AS t(step, from_state, to_state, epoch_before, epoch_after, operation)
     )
     SELECT id FROM seeded ORDER BY id`,
    [opts.prefix, opts.count, opts.state, opts.epoch ?? 1, opts.tenant ?? null, opts.endedDaysAgo, opts.createdDaysAgo],
  );
  return rows.map((r) => String(r.id));
}

async function seedClaim(claim: {
  requestId: string;
  status: 'pending' | 'granted' | 'reclaimed';
  workerId: string | null;
  epoch?: number;
  updatedDaysAgo: number;
}): Promise<void> {
  await registry.db.query(
    `INSERT INTO claims (pool, request_id, tenant, status, worker_id, epoch, path, pending_until, created_at, updated_at)
     VALUES ('ret', $1, 'acme', $2, $3, $4, 'warm', now() - make_interval(days => $5),
             now() - make_interval(days => $5), now() - make_interval(days => $5))`,
    [claim.requestId, claim.status, claim.workerId, claim.epoch ?? null, claim.updatedDaysAgo],
  );
}

async function counts(prefix: string): Promise<{ workers: number; transitions: number }> {
  const { rows } = await registry.db.query(
    `SELECT (SELECT count(*) FROM workers WHERE id LIKE $1 || '%')::int AS workers,
            (SELECT count(*) FROM worker_transitions WHERE worker_id LIKE $1 || '%')::int AS transitions`,
    [prefix],
  );
  return rows[0] as { workers: number; transitions: number };
}

async function claimIds(): Promise<string[]> {
  const { rows } = await registry.db.query(`SELECT request_id FROM claims ORDER BY request_id`);
  return rows.map((r) => String(r.request_id));
}

async function retainedTotal(metrics: Registry, kind: string): Promise<number> {
  const metric = await metrics.getSingleMetric('corral_janitor_retention_deleted_total')!.get();
  return metric.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

describe('retention', () => {
  test('deletes only terminal workers and ended claims older than the period, with their trail, in bounded batches', async () => {
    const expired = [
      ...(await seedWorkers({ prefix: 'oldret', count: 2_000, state: 'retired', endedDaysAgo: 8, createdDaysAgo: 9 })),
      ...(await seedWorkers({ prefix: 'oldlost', count: 500, state: 'lost', endedDaysAgo: 10, createdDaysAgo: 10 })),
    ];
    // Created long ago but ended within the period: kept, with their whole trail.
    await seedWorkers({ prefix: 'youngret', count: 50, state: 'retired', endedDaysAgo: 6, createdDaysAgo: 20 });
    // Live workers whose trail is far older than the period: never touched.
    await seedWorkers({ prefix: 'liveidle', count: 20, state: 'idle', endedDaysAgo: 30, createdDaysAgo: 30 });
    const [holder] = await seedWorkers({
      prefix: 'liveclaimed',
      count: 1,
      state: 'claimed',
      endedDaysAgo: 9,
      createdDaysAgo: 30,
      epoch: 4,
      tenant: 'acme',
    });
    const [spawning] = await seedWorkers({
      prefix: 'livespawn',
      count: 1,
      state: 'spawning',
      endedDaysAgo: 8,
      createdDaysAgo: 8,
    });

    // Claims: 1,200 granted long ago to workers now deleted (ended), plus one of each edge.
    await registry.db.query(
      `INSERT INTO claims (pool, request_id, tenant, status, worker_id, epoch, path, pending_until, created_at, updated_at)
       SELECT 'ret', 'ended' || n, 'acme', 'granted', worker_id, 1, 'warm', now() - interval '8 days',
              now() - interval '8 days', now() - interval '8 days'
         FROM unnest($1::text[]) WITH ORDINALITY AS u(worker_id, n)`,
      [expired.slice(0, 1_200)],
    );
    await seedClaim({
      requestId: 'reclaimed-old',
      status: 'reclaimed',
      workerId: 'liveidle1',
      epoch: 1,
      updatedDaysAgo: 9,
    });
    await seedClaim({ requestId: 'pending-orphan', status: 'pending', workerId: null, updatedDaysAgo: 9 });
    await seedClaim({
      requestId: 'lease-ended-old',
      status: 'granted',
      workerId: holder!,
      epoch: 3,
      updatedDaysAgo: 9,
    });
    // Survivors: a lease still held (claimed at that epoch) however old, a cold claim whose worker is
    // still spawning, and an ended claim younger than the period.
    await seedClaim({ requestId: 'lease-held', status: 'granted', workerId: holder!, epoch: 4, updatedDaysAgo: 9 });
    await seedClaim({ requestId: 'pending-live', status: 'pending', workerId: spawning!, updatedDaysAgo: 8 });
    await seedClaim({
      requestId: 'ended-young',
      status: 'granted',
      workerId: 'youngret1',
      epoch: 1,
      updatedDaysAgo: 1,
    });

    const { activities, batches, metrics } = janitorWith();
    const report = await activities.deleteExpiredRecords({ retentionMs });

    assert.deepEqual({ ...report, durationMs: 0 }, {
      retentionMs,
      workers: 2_500,
      transitions: 2_500 * 3,
      claims: 1_203,
      batches: 5,
      complete: true,
      durationMs: 0,
    } satisfies RetentionReport);
    // Bounded: no statement deleted more than a batch; each kind stopped at its first short batch.
    assert.deepEqual(
      batches.map(({ kind, batch }) => [kind, batch.workers + batch.claims]),
      [
        ['workers', 1_000],
        ['workers', 1_000],
        ['workers', 500],
        ['claims', 1_000],
        ['claims', 203],
      ],
    );

    assert.deepEqual(await counts('old'), { workers: 0, transitions: 0 }, 'expired workers go with their trail');
    assert.deepEqual(await counts('youngret'), { workers: 50, transitions: 150 }, 'younger than the period: kept');
    assert.deepEqual(await counts('live'), { workers: 22, transitions: 66 }, 'live workers keep their whole trail');
    assert.deepEqual(await claimIds(), ['ended-young', 'lease-held', 'pending-live']);

    assert.equal(await retainedTotal(metrics, 'worker'), 2_500);
    assert.equal(await retainedTotal(metrics, 'transition'), 7_500);
    assert.equal(await retainedTotal(metrics, 'claim'), 1_203);

    // A second pass finds nothing: one short statement per kind.
    const again = await janitorWith().activities.deleteExpiredRecords({ retentionMs });
    assert.deepEqual(
      [again.workers, again.transitions, again.claims, again.batches, again.complete],
      [0, 0, 0, 2, true],
    );
  });

  test('a pass stops at its budget, oldest first, and the next pass goes on', async () => {
    // Ages 12 days + n seconds: the larger n, the older.
    await seedWorkers({ prefix: 'budget', count: 2_500, state: 'retired', endedDaysAgo: 12, createdDaysAgo: 12 });
    const first = await janitorWith({ maxBatchesPerPass: 2 }).activities.deleteExpiredRecords({ retentionMs });
    assert.deepEqual([first.workers, first.batches, first.complete], [2_000, 2, false]);
    // The 500 left are the youngest of them (n = 1…500).
    const { rows } = await registry.db.query(
      `SELECT min(substr(id, 7)::int) AS lo, max(substr(id, 7)::int) AS hi, count(*)::int AS n
         FROM workers WHERE id LIKE 'budget%'`,
    );
    assert.deepEqual(rows[0], { lo: 1, hi: 500, n: 500 });
    const second = await janitorWith({ maxBatchesPerPass: 2 }).activities.deleteExpiredRecords({ retentionMs });
    assert.deepEqual([second.workers, second.complete], [500, true]);
    assert.deepEqual(await counts('budget'), { workers: 0, transitions: 0 });
  });

  test('a retention below the floor is refused naming the field, before anything is deleted', async () => {
    await seedWorkers({ prefix: 'floor', count: 3, state: 'retired', endedDaysAgo: 1, createdDaysAgo: 1 });
    const { activities, batches } = janitorWith();
    await assert.rejects(
      activities.deleteExpiredRecords({ retentionMs: 60_000 }),
      (err: unknown) =>
        err instanceof ApplicationFailure &&
        err.type === 'JanitorInputError' &&
        err.nonRetryable &&
        /retentionMs/.test(err.message) &&
        (err.details?.[0] as { field?: string }).field === 'retentionMs',
    );
    assert.equal(batches.length, 0);
    assert.equal((await counts('floor')).workers, 3);

    // The setting as operators write it: a duration with a floor of an hour, named in the error.
    assert.equal(parseRetention('7d'), retentionMs);
    assert.equal(parseRetention(janitorRetention.default), janitorRetention.defaultMs);
    assert.equal(parseRetention('90m'), 90 * 60_000);
    // The schedule (the janitor's input) refuses it too, before any call to Temporal.
    await assert.rejects(
      ensureJanitorSchedule(untouchable as Client, { taskQueue: 'q', retentionMs: 60_000 }),
      (err: unknown) => err instanceof JanitorScheduleOptionsError && err.field === 'retentionMs',
    );
    for (const bad of ['30m', 'soon', '-1d', '20000d']) {
      assert.throws(
        () => parseRetention(bad, janitorRetention.env),
        (err: unknown) => err instanceof JanitorScheduleOptionsError && err.field === 'CORRAL_RETENTION',
        bad,
      );
    }
  });
});

describe('corral history after retention', () => {
  test('a worker whose trail was deleted is a not_found that names the retention period; a live one has its trail', async () => {
    const [kept] = await seedWorkers({
      prefix: 'histlive',
      count: 1,
      state: 'idle',
      endedDaysAgo: 40,
      createdDaysAgo: 40,
    });
    const [gone] = await seedWorkers({
      prefix: 'histgone',
      count: 1,
      state: 'retired',
      endedDaysAgo: 8,
      createdDaysAgo: 9,
    });
    await janitorWith().activities.deleteExpiredRecords({ retentionMs });

    const unused = new Proxy({}, { get: () => () => Promise.reject(new Error('not used')) });
    const app = await buildCorralApi({
      claims: unused as ClaimService,
      pools: unused as PoolService,
      workers: registry.store,
      tokens: null,
      retentionMs,
    });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address();
      const client = new CorralClient({ url: `http://127.0.0.1:${typeof address === 'object' ? address?.port : 0}` });

      const trail = await client.history(kept!);
      assert.equal(trail.transitions.length, 3);

      const err = await client.history(gone!).then(
        () => assert.fail('a deleted trail must not answer'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof CorralError);
      assert.equal(err.code, 'not_found');
      assert.equal(err.status, 404);
      assert.deepEqual(err.details, { reason: 'no_record', retention: '7d', retentionMs });
      assert.match(err.message, /has no record/);
      assert.match(err.message, /deleted after the retention period \(7d\)/);
      // What `corral history` prints (exit 1).
      assert.match(describeCliError(err), /^not found: worker histgone1 has no record: .*retention period \(7d\)$/);
    } finally {
      await app.close();
    }
  });
});
