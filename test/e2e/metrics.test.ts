// corral's /metrics during workers' lives, scraped over HTTP from the real `corral worker`
// process (bin/corral, with the Temporal SDK's metrics merged in) against the dev server, a
// registry and the process runtime running the real demo worker. Each step makes something
// happen and waits (bounded) for the scrape to show it: a pool filling, warm and cold claims, a
// killed worker, a bad image, a drain. No test reads a metric from inside the process.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CorralClient, type ClaimResult } from '../../src/client/corral-client';
import type { ManagedProcess } from '../../src/embedded/child-process';
import { waitFor } from '../../src/embedded/wait';
import { workerFailureReasons, poolWorkflowId } from '../../src/common';
import { parseExposition, sampleSum, type Exposition } from '../../src/metrics/exposition';
import { designMetricNames, startCorralWorkerProcess } from '../harness/corral-worker-process';
import { useLifecycleE2e, type LifecycleE2e } from '../harness/lifecycle-e2e';
import { demoPoolSpec, demoWorkerImage } from '../harness/pool-e2e';
import { workerProcessGroups } from '../harness/process-inspection';

const pool = 'metrics';
const coldPool = 'metrics-cold';
const badPool = 'metrics-bad';
const badImage = '/nonexistent/corral-metrics-image';
const tenants = ['tenant-metrics-acme', 'tenant-metrics-globex'];

let e2e: LifecycleE2e;
let corral: CorralClient;
let corralWorker: ManagedProcess;
let metricsUrl: string;
let first: Exposition;
const leases: ClaimResult[] = [];

before(async () => {
  e2e = await useLifecycleE2e();
  const taskQueue = `metrics-${process.pid}-${Date.now()}`;
  const started = await startCorralWorkerProcess(e2e, { name: 'corral-worker-metrics', taskQueue });
  corralWorker = started.proc;
  const ready = started.ready;
  metricsUrl = String(ready.metricsUrl);
  corral = new CorralClient({ url: String(ready.apiUrl) });
});

after(async () => {
  for (const record of (await corral?.listPools()) ?? []) {
    await e2e.client.workflow
      .getHandle(poolWorkflowId(record.name))
      .terminate('test cleanup')
      .catch(() => undefined);
  }
  await corralWorker?.stop(30_000);
  await e2e?.close();
});

async function scrape(): Promise<Exposition> {
  const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  const text = await res.text();
  for (const tenant of tenants) assert.ok(!text.includes(tenant), `no tenant name in any label: ${tenant}`);
  return parseExposition(text);
}

/** Scrapes until `check` holds (bounded), and returns that scrape. */
async function scrapeUntil(what: string, check: (m: Exposition) => boolean, timeoutMs = 60_000): Promise<Exposition> {
  let last: Exposition | undefined;
  try {
    return await waitFor(
      async () => {
        last = await scrape();
        return check(last) ? last : undefined;
      },
      { what, timeoutMs, intervalMs: 250 },
    );
  } catch (err) {
    const relevant = last?.samples.filter((s) => s.name.startsWith('corral_') && !s.name.endsWith('_bucket')) ?? [];
    throw new Error(`${(err as Error).message}\nlast scrape: ${JSON.stringify(relevant)}`);
  }
}

const v = sampleSum;

test('/metrics declares every corral metric and carries the Temporal SDK metrics in the same scrape', async () => {
  first = await scrape();
  for (const name of designMetricNames) {
    const family = first.families.get(name);
    assert.ok(family?.help, `# HELP ${name}`);
    assert.ok(family?.type, `# TYPE ${name}`);
  }
  const sdk = [...first.families.keys()].filter((n) => n.startsWith('temporal_'));
  assert.ok(sdk.length > 0, 'Temporal SDK metric families present');
  assert.ok(first.families.get('temporal_request')?.type, 'temporal_request (client RPCs) declared');
  const names = [...first.families.keys()];
  assert.equal(new Set(names).size, names.length, 'no family declared twice');
  // The janitor's counters exist at 0 from the start (3 kinds × 3 outcomes).
  assert.equal(first.samples.filter((s) => s.name === 'corral_stranded_resources_reconciled_total').length, 9);
});

test('a pool fills: corral_workers idle 1, transitions and activation recorded, health probes ok', async () => {
  const transitions = 'corral_worker_lifecycle_transitions_total';
  await corral.applyPool(demoPoolSpec(pool, { minIdle: 1, maxWorkers: 4 }));
  const filled = await scrapeUntil(
    'corral_workers idle 1 and an activation observed',
    (m) =>
      v(m, 'corral_workers', { pool, state: 'idle' }) === 1 &&
      v(m, 'corral_worker_activation_duration_seconds_count', { image: demoWorkerImage }) >= 1,
  );
  assert.equal(v(filled, 'corral_workers', { pool, image: demoWorkerImage, state: 'spawning' }), 0, 'zero-filled');
  for (const operation of ['activate', 'ready']) {
    const labels = { operation, outcome: 'transitioned', origin: 'lifecycle_workflow', image: demoWorkerImage };
    assert.ok(v(filled, transitions, labels) - v(first, transitions, labels) >= 1, `${operation} transition counted`);
    const count = 'corral_worker_lifecycle_transition_duration_seconds_count';
    assert.ok(v(filled, count, { operation }) - v(first, count, { operation }) >= 1, `${operation} duration observed`);
  }
  assert.equal(v(filled, 'corral_worker_activation_failures_total'), 0);
  assert.equal(v(filled, 'corral_worker_spawn_failures_total'), 0);
  await scrapeUntil(
    'an ok health probe',
    (m) => v(m, 'corral_worker_health_checks_total', { result: 'ok', image: demoWorkerImage }) >= 1,
  );
});

test('claims: warm and cold latency by path, a warm-capacity miss, corral_workers claimed', async () => {
  const before = await scrape();
  const count = 'corral_claim_duration_seconds_count';
  leases.push(await corral.claim(pool, { tenant: tenants[0]!, requestId: 'metrics-warm-1' }));
  assert.equal(leases[0]!.path, 'warm');
  await scrapeUntil(
    'the warm claim observed, its worker claimed',
    (m) =>
      v(m, count, { pool, path: 'warm' }) === v(before, count, { pool, path: 'warm' }) + 1 &&
      v(m, 'corral_workers', { pool, state: 'claimed' }) === 1,
  );

  await corral.applyPool(demoPoolSpec(coldPool, { minIdle: 0, maxWorkers: 2 }));
  leases.push(await corral.claim(coldPool, { tenant: tenants[1]!, requestId: 'metrics-cold-1' }));
  assert.equal(leases[1]!.path, 'cold');
  const afterCold = await scrapeUntil(
    'the cold claim observed',
    (m) => v(m, count, { pool: coldPool, path: 'cold' }) === 1,
  );
  assert.equal(v(afterCold, count, { pool: coldPool, path: 'warm' }), 0);
  assert.equal(
    v(afterCold, 'corral_warm_capacity_misses_total', { pool: coldPool, reason: 'no_idle_worker' }),
    1,
    'the cold path is a warm-capacity miss',
  );
  assert.equal(v(afterCold, 'corral_workers', { pool: coldPool, state: 'claimed' }), 1);
  assert.ok(
    v(afterCold, 'corral_claim_duration_seconds_sum', { pool: coldPool, path: 'cold' }) > 0,
    'a cold claim takes a spawn',
  );
  // The warm claim was the API's transaction; the cold one the worker's workflow binding it.
  for (const origin of ['api', 'lifecycle_workflow']) {
    const claims = { operation: 'claim', outcome: 'transitioned', origin };
    assert.equal(
      v(afterCold, 'corral_worker_lifecycle_transitions_total', claims) -
        v(before, 'corral_worker_lifecycle_transitions_total', claims),
      1,
      `one claim transition by ${origin}`,
    );
  }
});

test('a killed worker: probes counted while it served, its death a health verdict, then a zombie counted with the reason its row got', async (t) => {
  // The pool refilled behind the claim: one idle worker again.
  await scrapeUntil('the pool refilled', (m) => v(m, 'corral_workers', { pool, state: 'idle' }) === 1);
  const before = await scrape();
  const [victim] = (await corral.listWorkers({ pool, states: ['idle'] })).filter((w) => w.pool === pool);
  assert.ok(victim);
  const groups = workerProcessGroups(victim.id);
  assert.equal(groups.length, 1);
  process.kill(-Number(groups[0]), 'SIGKILL');

  const after = await scrapeUntil(
    'a zombie counted',
    (m) => v(m, 'corral_zombies_detected_total') === v(before, 'corral_zombies_detected_total') + 1,
  );
  // The replica's prober probed the worker while it served, and saw its exit at once: one verdict.
  assert.ok(v(before, 'corral_worker_health_checks_total', { image: demoWorkerImage, result: 'ok' }) >= 1);
  assert.equal(
    v(after, 'corral_health_verdicts_total', { outcome: 'signalled' }) -
      v(before, 'corral_health_verdicts_total', { outcome: 'signalled' }),
    1,
    'one health verdict signalled',
  );
  const row = await corral.getWorker(victim.id);
  assert.equal(row?.state, 'lost');
  const reason = row!.failureReason!;
  assert.ok((workerFailureReasons as readonly string[]).includes(reason), reason);
  t.diagnostic(`the SIGKILLed worker was counted as a zombie with reason ${reason}`);
  assert.equal(
    v(after, 'corral_zombies_detected_total', { reason, image: demoWorkerImage }) -
      v(before, 'corral_zombies_detected_total', { reason, image: demoWorkerImage }),
    1,
    `counted as ${reason}`,
  );
  const lost = { operation: 'mark_lost', outcome: 'transitioned', image: demoWorkerImage };
  assert.equal(
    v(after, 'corral_worker_lifecycle_transitions_total', lost) -
      v(before, 'corral_worker_lifecycle_transitions_total', lost),
    1,
  );
});

test('a bad image: spawn failures by reason invalid_image, the breaker gauge open', async () => {
  await corral.applyPool(
    demoPoolSpec(badPool, {
      image: badImage,
      minIdle: 1,
      maxWorkers: 2,
      breaker: { failureThreshold: 1, cooldown: '1h', successThreshold: 1 },
    }),
  );
  const after = await scrapeUntil(
    'an invalid_image spawn failure and the breaker open',
    (m) =>
      v(m, 'corral_worker_spawn_failures_total', { reason: 'invalid_image', image: badImage }) >= 1 &&
      v(m, 'corral_spawn_breaker_state', { pool: badPool }) === 2,
  );
  assert.equal(v(after, 'corral_spawn_breaker_state', { pool }), 0, 'the good pool stays closed');
  assert.equal(
    v(after, 'corral_worker_spawn_failures_total', { image: badImage }),
    v(after, 'corral_worker_spawn_failures_total', { image: badImage, reason: 'invalid_image' }),
    'every failure of the bad image is invalid_image',
  );
  // A pool with no live worker still reports its (configured) image in every state, at 0.
  assert.ok(after.samples.some((s) => s.name === 'corral_workers' && s.labels.pool === badPool));
  assert.equal(v(after, 'corral_workers', { pool: badPool }), 0);
});

test('drain: drain durations, retire transitions; Temporal SDK counters moved over the run', async () => {
  const before = await scrape();
  for (const lease of leases) await corral.release(lease);
  await corral.drainPool(pool);
  await corral.drainPool(coldPool);
  await corral.waitForDrained(pool);
  await corral.waitForDrained(coldPool);
  const drained = (await corral.listWorkers({ states: ['retired'] })).filter(
    (w) => w.pool === pool || w.pool === coldPool,
  );
  assert.ok(drained.length >= 3, `${drained.length} workers retired by the drain`);
  const count = 'corral_worker_drain_duration_seconds_count';
  const after = await scrapeUntil(
    'every drained worker observed',
    (m) => v(m, count) - v(before, count) === drained.length,
  );
  const retire = { operation: 'retire', outcome: 'transitioned', origin: 'lifecycle_workflow' };
  assert.equal(
    v(after, 'corral_worker_lifecycle_transitions_total', retire) -
      v(before, 'corral_worker_lifecycle_transitions_total', retire),
    drained.length,
  );
  assert.equal(v(after, 'corral_workers', { pool }), 0, 'a drained pool has no live worker');

  // The SDK's own metrics, from the same scrapes: activities ran, workflows completed.
  for (const name of [
    'temporal_activity_execution_latency_count',
    'temporal_workflow_task_execution_latency_count',
    'temporal_workflow_completed',
  ]) {
    assert.ok(v(after, name) > v(first, name), `${name} moved: ${v(first, name)} → ${v(after, name)}`);
  }
});
