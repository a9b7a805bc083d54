// The registry at fleet scale: 100,000 retired and lost workers (with their audit trails and
// claims) beside a few hundred live ones. Every hot-path statement — the slot gate, the warm and
// cold claim, release and reclaim, the pool workflow's inventory and drain list, the inventory
// gauges, the API's live list, the janitor's reads — must read indexes only and touch live rows
// only. The statements are the real ones, run through the real stores and SQL functions;
// auto_explain hands the plan each one actually ran with (nested plpgsql statements included,
// as EXPLAIN (ANALYZE, FORMAT JSON)) back to this session as a notice, and the test walks each
// plan tree: no Seq Scan of workers, worker_transitions or claims, and no scan of them that
// reads more rows than the live fleet holds.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { nonTerminalStates } from '../../src/common';
import { RegistryReadings } from '../../src/metrics/registry-readings';
import { ClaimStore } from '../../src/registry/claim-store';
import { WorkerLifecycleStore } from '../../src/registry/lifecycle-store';
import { PoolStore } from '../../src/registry/pool-store';
import { useTestRegistry, type TestRegistry } from '../harness/registry';

const terminalWorkers = 100_000;
/** Transitions per terminal worker: create, activate, ready, claim, release, retire/lost. */
const trailLength = 6;
const pools = ['scale', 'other'] as const;
/** Live workers per pool and state; small beside the terminal rows, as in a real registry. */
const livePerState = { spawning: 10, activating: 5, idle: 60, claimed: 40, hot_idle: 20, draining: 5 } as const;
const liveTotal = pools.length * Object.values(livePerState).reduce((a, b) => a + b, 0);
/** No scan of a hot-path table may read (or filter away) more rows than this: the live fleet, with room. */
const maxRowsTouched = 2_000;
const watchedRelations = new Set(['workers', 'worker_transitions', 'claims']);

let registry: TestRegistry;
/** A pool whose every session auto-explains every statement (nested ones too) as a notice. */
let explaining: pg.Pool;
let plans: { query: string; plan: PlanNode }[] = [];

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

async function loadRegistry(): Promise<void> {
  const client = new pg.Client({ connectionString: registry.connectionString });
  await client.connect();
  try {
    // Deadlines as the pool spec stores them (ms): the janitor's overdue read joins them in.
    for (const pool of pools) {
      await client.query(`INSERT INTO pools (name, spec) VALUES ($1, $2::jsonb)`, [
        pool,
        JSON.stringify({
          name: pool,
          image: 'corral/demo:1',
          maxWorkers: 5_000,
          releasePolicy: 'hot_idle',
          deadlines: { spawn: 120_000, activation: 30_000, drain: 600_000 },
        }),
      ]);
    }
    // Terminal workers, ended over the last ~5 days, each with its whole trail and one claim.
    await client.query(
      `INSERT INTO workers (id, pool, image, state, epoch, tenant, pod_name, spawn_attempt, failure_reason,
                            state_since, created_at, updated_at)
       SELECT 'dead' || g, CASE WHEN g % 2 = 0 THEN 'scale' ELSE 'other' END, 'corral/demo:1',
              CASE WHEN g % 5 = 0 THEN 'lost' ELSE 'retired' END, 3, 'acme', 'p-dead' || g || '-1', 1,
              CASE WHEN g % 5 = 0 THEN 'pod_crashed' END,
              now() - make_interval(mins => g % 7_000), now() - make_interval(mins => g % 7_000 + 60),
              now() - make_interval(mins => g % 7_000)
         FROM generate_series(1, $1::int) AS g`,
      [terminalWorkers],
    );
    await client.query(
      `INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin, tenant, at)
       SELECT 'dead' || g, t.from_state, t.to_state, t.epoch_before, t.epoch_after, t.operation, 'lifecycle_workflow',
              'acme', now() - make_interval(mins => g % 7_000 + 60 - t.step * 10)
         FROM generate_series(1, $1::int) AS g
        CROSS JOIN (VALUES
          (1, NULL, 'spawning', NULL, 1, 'create'),
          (2, 'spawning', 'activating', 1, 1, 'activate'),
          (3, 'activating', 'idle', 1, 1, 'ready'),
          (4, 'idle', 'claimed', 1, 2, 'claim'),
          (5, 'claimed', 'draining', 2, 3, 'release'),
          (6, 'draining', 'retired', 3, 3, 'retire')
        ) AS t(step, from_state, to_state, epoch_before, epoch_after, operation)`,
      [terminalWorkers],
    );
    await client.query(
      `INSERT INTO claims (pool, request_id, tenant, status, worker_id, epoch, endpoint, path, pending_until,
                           granted_at, ack_by, acknowledged_at, created_at, updated_at)
       SELECT w.pool, 'req-' || w.id, 'acme', CASE WHEN g % 10 = 0 THEN 'reclaimed' ELSE 'granted' END, w.id, 2,
              'http://127.0.0.1:1', 'warm', w.created_at, w.created_at, w.created_at, w.created_at, w.created_at,
              w.created_at
         FROM generate_series(1, $1::int) AS g JOIN workers w ON w.id = 'dead' || g`,
      [terminalWorkers],
    );
    // Live workers in every live state, each with its creation in the trail; claimed ones hold a grant.
    let n = 0;
    for (const pool of pools) {
      for (const [state, count] of Object.entries(livePerState)) {
        const ids = Array.from({ length: count }, () => `live${pool}${state.replace('_', '')}${++n}`);
        await client.query(
          `INSERT INTO workers (id, pool, image, state, epoch, tenant, endpoint, spawn_attempt, state_since, updated_at)
           SELECT id, $2, 'corral/demo:1', $3, 2, CASE WHEN $3 IN ('claimed', 'hot_idle') THEN 'acme' END,
                  'http://127.0.0.1:1', 1, now() - interval '1 minute', now() - interval '1 minute'
             FROM unnest($1::text[]) AS id`,
          [ids, pool, state],
        );
        await client.query(
          `INSERT INTO worker_transitions (worker_id, from_state, to_state, epoch_before, epoch_after, operation, origin)
           SELECT id, NULL, 'spawning', NULL, 1, 'create', 'pool_workflow' FROM unnest($1::text[]) AS id`,
          [ids],
        );
        if (state === 'claimed') {
          await client.query(
            `INSERT INTO claims (pool, request_id, tenant, status, worker_id, epoch, endpoint, path, pending_until,
                                 granted_at, ack_by, acknowledged_at)
             SELECT $2, 'live-req-' || id, 'acme', 'granted', id, 2, 'http://127.0.0.1:1', 'warm', now(), now(),
                    now() + interval '15 seconds', now()
               FROM unnest($1::text[]) AS id`,
            [ids, pool],
          );
          await client.query(`UPDATE workers SET claim_request_id = 'live-req-' || id WHERE id = ANY ($1::text[])`, [
            ids,
          ]);
        }
      }
    }
    // Fresh statistics, as autovacuum would have them on a registry this size.
    await client.query('ANALYZE workers, worker_transitions, claims, pools');
  } finally {
    await client.end();
  }
}

before(async () => {
  registry = await useTestRegistry();
  await loadRegistry();
  explaining = new pg.Pool({
    connectionString: registry.connectionString,
    max: 4,
    // auto_explain is a superuser setting: the test database's owner is the server's superuser.
    options: [
      '-c session_preload_libraries=auto_explain',
      '-c auto_explain.log_min_duration=0',
      '-c auto_explain.log_analyze=on',
      '-c auto_explain.log_timing=off',
      '-c auto_explain.log_nested_statements=on',
      '-c auto_explain.log_format=json',
      '-c auto_explain.log_level=notice',
      '-c statement_timeout=30000',
    ].join(' '),
  });
  explaining.on('connect', (client) => {
    client.on('notice', (notice) => {
      const text = notice.message ?? '';
      const at = text.indexOf('{');
      if (!text.includes('plan:') || at < 0) return;
      const parsed = JSON.parse(text.slice(at)) as { 'Query Text': string; Plan: PlanNode };
      plans.push({ query: parsed['Query Text'], plan: parsed.Plan });
    });
  });
});
after(async () => {
  await explaining?.end();
  await registry?.close();
});

function scansOf(node: PlanNode): PlanNode[] {
  const own = node['Relation Name'] && watchedRelations.has(node['Relation Name']) ? [node] : [];
  return [...own, ...(node.Plans ?? []).flatMap(scansOf)];
}

/** The indexes a Bitmap Heap Scan's bitmap came from (its Bitmap Index Scan children). */
function bitmapIndexesOf(node: PlanNode): string[] {
  return (node.Plans ?? []).flatMap((child) => [
    ...(child['Node Type'] === 'Bitmap Index Scan' && child['Index Name'] ? [child['Index Name']] : []),
    ...(child['Relation Name'] ? [] : bitmapIndexesOf(child)),
  ]);
}

/** Runs `work`, then checks every statement it ran (nested ones included) and returns what each scanned. */
async function assertLiveRowsOnly(what: string, work: () => Promise<unknown>): Promise<string[]> {
  plans = [];
  await work();
  // Notices arrive before each statement's answer; the work has awaited every answer.
  const ran = plans.filter((p) => scansOf(p.plan).length > 0);
  assert.ok(ran.length > 0, `${what}: no statement touching workers, worker_transitions or claims was explained`);
  const seen: string[] = [];
  for (const { query, plan } of ran) {
    for (const scan of scansOf(plan)) {
      const relation = scan['Relation Name']!;
      const statement = query.replace(/\s+/g, ' ').trim().slice(0, 160);
      assert.notEqual(scan['Node Type'], 'Seq Scan', `${what}: Seq Scan on ${relation} in: ${statement}`);
      const touched =
        ((scan['Actual Rows'] ?? 0) +
          (scan['Rows Removed by Filter'] ?? 0) +
          (scan['Rows Removed by Index Recheck'] ?? 0)) *
        Math.max(1, scan['Actual Loops'] ?? 1);
      assert.ok(
        touched <= maxRowsTouched,
        `${what}: ${scan['Node Type']} on ${relation} (${scan['Index Name'] ?? '-'}) touched ${touched} rows in: ${statement}`,
      );
      const indexes = [scan['Index Name'], ...bitmapIndexesOf(scan)].filter(Boolean);
      seen.push(
        `${scan['Node Type']} ${relation}${indexes.length ? ` using ${indexes.join(', ')}` : ''} (${touched} rows)`,
      );
    }
  }
  console.log(`${what}:\n  ${[...new Set(seen)].join('\n  ')}`);
  return seen;
}

const stores = () => ({
  lifecycle: new WorkerLifecycleStore(explaining),
  pools: new PoolStore(explaining),
  claims: new ClaimStore(explaining),
  readings: new RegistryReadings(explaining, 30_000),
});

let seq = 0;
const claimOnce = (pool: string, tenant: string) =>
  stores().claims.claim({
    pool,
    tenant,
    requestId: `scale-req-${++seq}`,
    newWorkerId: `cold${seq}`,
    pendingMs: 60_000,
    ackMs: 15_000,
    origin: 'api',
  });

test('the registry holds 100,000 terminal workers with their trails and claims beside the live fleet', async () => {
  const { rows } = await registry.db.query(
    `SELECT (SELECT count(*) FROM workers WHERE state IN ('retired', 'lost'))::int AS terminal,
            (SELECT count(*) FROM workers WHERE state NOT IN ('retired', 'lost'))::int AS live,
            (SELECT count(*) FROM worker_transitions)::int AS transitions,
            (SELECT count(*) FROM claims)::int AS claims`,
  );
  assert.deepEqual(rows[0], {
    terminal: terminalWorkers,
    live: liveTotal,
    transitions: terminalWorkers * trailLength + liveTotal,
    claims: terminalWorkers + pools.length * livePerState.claimed,
  });
});

test('the slot gate (corral_reserve_worker_slot) counts live rows only', async () => {
  // Plpgsql caches its plans and may switch to a generic one after five runs: run it past that.
  await assertLiveRowsOnly('slot gate', async () => {
    for (let i = 0; i < 8; i++) {
      const result = await stores().pools.reserveWorkerSlot({
        pool: 'scale',
        workerId: `slot${i}`,
        image: 'corral/demo:1',
        origin: 'pool_workflow',
        requireClosedBreaker: true,
      });
      assert.equal(result.outcome, 'reserved');
    }
  });
});

test('warm claims (the tenant’s hot_idle worker, then the longest idle), repeats, and the cold path read live rows only', async () => {
  await assertLiveRowsOnly('warm claims', async () => {
    for (let i = 0; i < 8; i++) {
      assert.equal((await claimOnce('scale', 'acme')).outcome, 'granted');
      assert.equal((await claimOnce('scale', `tenant${i}`)).outcome, 'granted');
    }
  });
  await assertLiveRowsOnly('a repeated request id', async () => {
    const first = await claimOnce('other', 'globex');
    assert.equal(first.outcome, 'granted');
    const repeat = await stores().claims.claim({
      pool: 'other',
      tenant: 'globex',
      requestId: `scale-req-${seq}`,
      newWorkerId: 'unused',
      pendingMs: 60_000,
      ackMs: 15_000,
      origin: 'api',
    });
    assert.equal(repeat.outcome, 'repeat');
    // A request id of a long-ended claim: the lease has ended.
    const ended = await stores().claims.claim({
      pool: 'scale',
      tenant: 'acme',
      requestId: 'req-dead2',
      newWorkerId: 'unused2',
      pendingMs: 60_000,
      ackMs: 15_000,
      origin: 'api',
    });
    assert.equal(ended.outcome, 'lease_ended');
  });
  // Exhaust the warm workers of a small pool so the claim takes the cold path (the live count).
  await registry.db.query(
    `UPDATE workers SET state = 'draining' WHERE pool = 'other' AND state IN ('idle', 'hot_idle')`,
  );
  await assertLiveRowsOnly('cold claims', async () => {
    for (let i = 0; i < 6; i++) assert.equal((await claimOnce('other', `cold-tenant${i}`)).outcome, 'cold');
  });
});

test('release, reclaim and lease checks read by key', async () => {
  const granted = await claimOnce('scale', 'initech');
  assert.equal(granted.outcome, 'granted');
  const lease = granted.outcome === 'granted' ? granted : assert.fail();
  await assertLiveRowsOnly('release', async () => {
    const released = await stores().claims.release({
      workerId: lease.workerId,
      epoch: lease.epoch,
      tenant: 'initech',
      origin: 'api',
    });
    assert.equal(released.outcome, 'released');
    const again = await stores().claims.release({
      workerId: lease.workerId,
      epoch: lease.epoch,
      tenant: 'initech',
      origin: 'api',
    });
    assert.equal(again.outcome, 'already_released');
  });
  await assertLiveRowsOnly('reclaim and acknowledge', async () => {
    await stores().claims.reclaimUnacknowledged(100);
    await stores().claims.acknowledge([{ pool: 'scale', requestId: `scale-req-${seq}` }]);
    await stores().claims.pendingClaimStatus({ pool: 'scale', requestId: `scale-req-${seq}` });
    await stores().lifecycle.checkLease({ workerId: lease.workerId, epoch: lease.epoch });
  });
});

test('the pool workflow’s inventory and drain list, the inventory gauges and the API’s live list read live rows only', async () => {
  await assertLiveRowsOnly('pool inventory', async () => {
    const inventory = await stores().pools.inventory('scale', ['dead2', 'slot1']);
    assert.equal(inventory.asked.dead2, 'retired');
    assert.equal(inventory.asked.slot1, 'spawning');
    assert.ok(inventory.live > 0);
  });
  await assertLiveRowsOnly('drain list', async () => {
    assert.ok((await stores().pools.liveWorkers('scale')).length > 0);
  });
  await assertLiveRowsOnly('inventory gauges', async () => {
    const counts = await stores().readings.liveWorkerCounts();
    assert.ok(counts.some((c) => c.pool === 'scale' && c.state === 'idle' && c.count > 0));
    assert.ok(counts.every((c) => c.state !== 'retired' && c.state !== 'lost'));
  });
  await assertLiveRowsOnly('API live list', async () => {
    const all = await stores().lifecycle.listWorkers({ states: [...nonTerminalStates], limit: 10_000 });
    assert.ok(all.length >= liveTotal);
    await stores().lifecycle.listWorkers({ pool: 'scale', states: ['idle', 'claimed'], limit: 500 });
  });
  await assertLiveRowsOnly('durations from the trail', async () => {
    assert.equal((await stores().readings.secondsInState('dead2', 'idle', new Date())) !== null, true);
  });
});

test('the janitor’s reads (inventory rows, live rows, respawns, overdue rows) and retention read indexes only', async () => {
  await assertLiveRowsOnly('janitor reads', async () => {
    const ids = ['dead1', 'dead2', 'livescalespawning1', 'nosuchworker'];
    assert.equal((await stores().lifecycle.getWorkers(ids)).size, 3);
    assert.ok((await stores().lifecycle.listLiveWorkers(100_000)).length >= liveTotal);
    await stores().lifecycle.respawnedAt(['dead1', 'livescalespawning1']);
    await stores().lifecycle.overdueWorkers({ marginMs: 0, limit: 1_000 });
    await stores().lifecycle.history('dead3');
  });
  // Nothing is old enough to go (the oldest terminal row ended ~5 days ago): the plans still
  // must find that out from the indexes, not by reading every row.
  await assertLiveRowsOnly('retention', async () => {
    const workers = await stores().lifecycle.deleteExpiredWorkers({
      retentionMs: 7 * 24 * 3_600_000,
      batchSize: 1_000,
    });
    const claims = await stores().lifecycle.deleteEndedClaims({ retentionMs: 7 * 24 * 3_600_000, batchSize: 1_000 });
    assert.deepEqual([workers.workers, claims.claims], [0, 0]);
  });
});
