// corral-test-needs: temporal postgres prometheus
//
// A real Prometheus scraping the real `corral worker` (bin/corral, Temporal SDK metrics merged in)
// every second through pools' lives: a pool filling, warm and cold claims, a worker that refuses
// activation, a hung worker whose row another writer moved (failed probes, a fence miss), a killed
// worker (a zombie), a bad image that opens the breaker, a spawn whose workflow is terminated under
// it, cut Temporal connections (failed long polls), a drain (failed SDK requests). Then every
// PromQL expression of deploy/grafana/corral-dashboard.json is evaluated through Prometheus' query
// API, with the dashboard's variables resolved from Prometheus as Grafana does: each must parse and
// return data. deploy/prometheus/corral-rules.yaml is checked and unit-tested with promtool, loaded
// into this Prometheus (a copy with only `for` shortened) and one rule, the open breaker, must fire
// from the live scrape. Every wait polls Prometheus (or the API) for the event, bounded; no sleeps.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CorralClient, type ClaimResult } from '../../src/client/corral-client';
import { poolWorkflowId } from '../../src/common/pool-messages';
import { workerLifecycleWorkflowId } from '../../src/common/worker-lifecycle-messages';
import type { ManagedProcess } from '../../src/embedded/child-process';
import { repoRoot, toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { startCorralWorkerProcess } from '../harness/corral-worker-process';
import { useLifecycleE2e, type LifecycleE2e } from '../harness/lifecycle-e2e';
import { demoPoolSpec } from '../harness/pool-e2e';
import { workerProcessGroups } from '../harness/process-inspection';
import { PromQueryError, startPrometheus, type PromSample, type RunningPrometheus } from '../harness/prometheus';

const rulesDir = path.join(repoRoot, 'deploy', 'prometheus');
const rulesFile = path.join(rulesDir, 'corral-rules.yaml');
const dashboardFile = path.join(repoRoot, 'deploy', 'grafana', 'corral-dashboard.json');

const pool = 'prom-demo';
const coldPool = 'prom-cold';
const refusingPool = 'prom-refuses';
const badPool = 'prom-bad';
const slowPool = 'prom-slow';
const badImage = '/nonexistent/corral-prometheus-image';

let e2e: LifecycleE2e;
let corral: CorralClient;
let corralWorker: ManagedProcess;
let prometheus: RunningPrometheus;
let temporalProxy: TcpProxy;
let scratch: string;
let refusingImage: string;
const startedAt = Date.now();
const leases: ClaimResult[] = [];

/** A TCP relay in front of Temporal for the corral worker: `cut()` drops every open connection. */
interface TcpProxy {
  address: string;
  cut(): number;
  close(): Promise<void>;
}

async function startTcpProxy(upstream: string): Promise<TcpProxy> {
  const [host, port] = [
    upstream.slice(0, upstream.lastIndexOf(':')),
    Number(upstream.slice(upstream.lastIndexOf(':') + 1)),
  ];
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const target = net.connect({ host, port });
    const pair: [net.Socket, net.Socket] = [client, target];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      target.destroy();
    };
    client.on('error', drop).on('close', drop);
    target.on('error', drop).on('close', drop);
    client.pipe(target);
    target.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut() {
      const n = pairs.size;
      for (const [client, target] of [...pairs]) {
        client.destroy();
        target.destroy();
      }
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [client, target] of pairs) {
          client.destroy();
          target.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

/** A worker "image" that is healthy but refuses every /activate: activation failures on demand. */
function writeRefusingImage(dir: string): string {
  const file = path.join(dir, 'refusing-worker');
  fs.writeFileSync(
    file,
    `#!${process.execPath}
require('node:http')
  .createServer((req, res) => {
    if (req.url === '/healthz') return res.end('ok');
    res.statusCode = 500;
    res.end('this worker refuses every activation');
  })
  .listen(Number(process.env.PORT), process.env.HOST || '0.0.0.0');
`,
    { mode: 0o755 },
  );
  return file;
}

/**
 * The rules file with only every `for:` shortened to 1 s, so a rule can fire within the test
 * (the real file waits minutes before firing). Expressions, labels and annotations are untouched.
 */
function rulesWithShortFor(dir: string): string {
  const text = fs.readFileSync(rulesFile, 'utf8');
  const shortened = text.replace(/^(\s+for:\s*)\S+\s*$/gm, '$11s');
  assert.notEqual(shortened, text, 'the rules file has `for:` clauses to shorten');
  const file = path.join(dir, 'corral-rules-short-for.yaml');
  fs.writeFileSync(file, shortened);
  return file;
}

before(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-prometheus-test-'));
  refusingImage = writeRefusingImage(scratch);
  e2e = await useLifecycleE2e();
  temporalProxy = await startTcpProxy(e2e.temporal.address);
  const taskQueue = `prometheus-${process.pid}-${Date.now()}`;
  const started = await startCorralWorkerProcess(e2e, {
    name: 'corral-worker-prometheus',
    taskQueue,
    // Through the relay, so the test can cut the worker's Temporal connections (long polls fail).
    env: { TEMPORAL_ADDRESS: temporalProxy.address },
  });
  corralWorker = started.proc;
  corral = new CorralClient({ url: String(started.ready.apiUrl) });
  prometheus = await startPrometheus({
    targets: [{ job: 'corral', url: String(started.ready.metricsUrl) }],
    ruleFiles: [rulesWithShortFor(scratch)],
    intervalSeconds: 1,
    name: 'prometheus-corral',
  });
});

after(async () => {
  for (const record of (await corral?.listPools().catch(() => [])) ?? []) {
    await e2e.client.workflow
      .getHandle(poolWorkflowId(record.name))
      .terminate('test cleanup')
      .catch(() => undefined);
  }
  await prometheus?.stop();
  await corralWorker?.stop(30_000);
  await temporalProxy?.close();
  await e2e?.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

/** Polls Prometheus until `expr` returns a sample that `accept` takes (bounded); returns the samples. */
async function promUntil(
  what: string,
  expr: string,
  accept: (samples: PromSample[]) => boolean = (s) => s.length > 0,
  timeoutMs = 90_000,
): Promise<PromSample[]> {
  let last: PromSample[] | undefined;
  try {
    return await waitFor(
      async () => {
        last = await prometheus.query(expr);
        return accept(last) ? last : undefined;
      },
      { what: `${what} (${expr})`, timeoutMs, intervalMs: 500 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last answer ${JSON.stringify(last)}`);
  }
}

const value = (samples: PromSample[]) => Number(samples[0]?.value[1]);

test('promtool: the rules file passes `check rules` and its unit tests', () => {
  const promtool = toolPath('promtool');
  const check = spawnSync(promtool, ['check', 'rules', rulesFile], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(check.status, 0, `promtool check rules:\n${check.stdout}${check.stderr}`);
  assert.match(check.stdout, /SUCCESS: 6 rules found/);
  const unit = spawnSync(promtool, ['test', 'rules', 'corral-rules.test.yaml'], {
    cwd: rulesDir,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(unit.status, 0, `promtool test rules:\n${unit.stdout}${unit.stderr}`);
  assert.match(unit.stdout, /SUCCESS/);
});

test('Prometheus scrapes corral worker and loads every rule, each evaluating without error', async () => {
  await promUntil('the corral target up', 'up{job="corral"} == 1');
  await promUntil(
    'corral and SDK metrics stored',
    'count(corral_stranded_resources_reconciled_total) + count(temporal_num_pollers)',
  );
  const groups = await waitFor(
    async () => {
      const g = await prometheus.rules();
      const rules = g.flatMap((group) => group.rules);
      // Evaluated at least once: health leaves `unknown`.
      return rules.length > 0 && rules.every((r) => r.health !== 'unknown') ? g : undefined;
    },
    { what: 'every rule evaluated once', timeoutMs: 30_000, intervalMs: 500 },
  );
  const rules = groups.flatMap((g) => g.rules);
  assert.deepEqual(rules.map((r) => r.name).sort(), [
    'CorralFenceMissRate',
    'CorralJanitorStale',
    'CorralPoolBelowMinIdle',
    'CorralRegistryStoreErrors',
    'CorralSpawnBreakerOpen',
    'CorralSpawnFailureRate',
  ]);
  for (const rule of rules) {
    assert.equal(rule.type, 'alerting', rule.name);
    assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError ?? ''}`);
    assert.match(rule.labels?.severity ?? '', /^(warning|critical)$/, `${rule.name} severity`);
    assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.name} summary and description`);
    assert.equal(rule.duration, 1, `${rule.name}: the test's copy has for: 1s`);
  }
});

test('a pool fills, takes warm and cold claims', async () => {
  await corral.applyPool(demoPoolSpec(pool, { minIdle: 1, maxWorkers: 4 }));
  await promUntil('an idle worker', `max(corral_workers{pool="${pool}", state="idle"}) == 1`);
  await promUntil('an activation observed', `sum(corral_worker_activation_duration_seconds_count) > 0`);
  // Two claims per path: a labelled series is born at its first observation, and rate() sees
  // only increases after a series' first sample, so the dashboard's claim latency needs a second.
  for (const n of [1, 2]) {
    await promUntil(`an idle worker for warm claim ${n}`, `max(corral_workers{pool="${pool}", state="idle"}) >= 1`);
    const lease = await corral.claim(pool, { tenant: `tenant-prom-warm-${n}`, requestId: `prom-warm-${n}` });
    assert.equal(lease.path, 'warm');
    leases.push(lease);
    await promUntil(
      `warm claim ${n} observed`,
      `sum(corral_claim_duration_seconds_count{pool="${pool}", path="warm"}) == ${n}`,
    );
  }
  await corral.applyPool(demoPoolSpec(coldPool, { minIdle: 0, maxWorkers: 2 }));
  for (const n of [1, 2]) {
    const lease = await corral.claim(coldPool, { tenant: `tenant-prom-cold-${n}`, requestId: `prom-cold-${n}` });
    assert.equal(lease.path, 'cold');
    leases.push(lease);
    await promUntil(
      `cold claim ${n} observed`,
      `sum(corral_claim_duration_seconds_count{pool="${coldPool}", path="cold"}) == ${n}`,
    );
  }
  await promUntil(
    'the cold claims as warm-capacity misses',
    `corral_warm_capacity_misses_total{pool="${coldPool}", reason="no_idle_worker"} == 2`,
  );
});

test('a worker that refuses activation: activation failures by image', async () => {
  await corral.applyPool(
    demoPoolSpec(refusingPool, {
      image: refusingImage,
      minIdle: 1,
      maxWorkers: 1,
      maxSpawnAttempts: 1,
      breaker: { failureThreshold: 1, cooldown: '1h', successThreshold: 1 },
    }),
  );
  await promUntil(
    'an activation failure of the refusing image',
    `corral_worker_activation_failures_total{image="${refusingImage}"} >= 1`,
  );
});

/** The one process group of a worker's process (the process runtime starts each in its own). */
function workerGroup(workerId: string): number {
  const groups = workerProcessGroups(workerId);
  assert.equal(groups.length, 1, `one process group for ${workerId}`);
  return Number(groups[0]);
}

async function anIdleWorker(): Promise<string> {
  await promUntil(`an idle ${pool} worker`, `max(corral_workers{pool="${pool}", state="idle"}) >= 1`);
  const idle = await waitFor(
    async () => (await corral.listWorkers({ pool, states: ['idle'] })).find((w) => w.pool === pool),
    { what: `an idle ${pool} worker in the API`, timeoutMs: 30_000, intervalMs: 250 },
  );
  return idle.id;
}

test('a hung worker whose row another writer moved: failed health probes, then a fence miss', async () => {
  const victim = await anIdleWorker();
  // Another writer bumped the row's epoch behind the worker's workflow (as a stale replica
  // would): the workflow's next transition, marking the hung worker lost, misses the fence.
  await e2e.registry.db.query('UPDATE workers SET epoch = epoch + 1 WHERE id = $1', [victim]);
  const group = workerGroup(victim);
  // Stopped, not killed: it still holds its port, so probes time out instead of seeing an exit.
  process.kill(-group, 'SIGSTOP');
  try {
    await promUntil('a failed health probe', 'sum(corral_worker_health_checks_total{result!="ok"}) >= 1');
    await promUntil(
      'a fence miss counted',
      'sum(corral_worker_lifecycle_transitions_total{outcome=~"fence_miss_epoch|fence_miss_state"}) >= 1',
    );
  } finally {
    for (const signal of ['SIGCONT', 'SIGKILL'] as const) {
      try {
        process.kill(-group, signal);
      } catch {
        // already gone: the runtime deleted it
      }
    }
  }
});

test('a killed worker: a zombie', async () => {
  const victim = await anIdleWorker();
  process.kill(-workerGroup(victim), 'SIGKILL');
  await promUntil('a zombie counted', 'sum(corral_zombies_detected_total) >= 1');
});

test('a bad image opens the breaker, and CorralSpawnBreakerOpen fires from the live scrape', async () => {
  await corral.applyPool(
    demoPoolSpec(badPool, {
      image: badImage,
      minIdle: 1,
      maxWorkers: 2,
      breaker: { failureThreshold: 1, cooldown: '1h', successThreshold: 1 },
    }),
  );
  await promUntil(
    'invalid_image spawn failures',
    `corral_worker_spawn_failures_total{reason="invalid_image", image="${badImage}"} >= 1`,
  );
  await promUntil('the breaker open', `max by (pool) (corral_spawn_breaker_state{pool="${badPool}"}) == 2`);
  const firing = await waitFor(
    async () =>
      (await prometheus.alerts()).find(
        (a) => a.labels.alertname === 'CorralSpawnBreakerOpen' && a.labels.pool === badPool && a.state === 'firing',
      ),
    { what: `CorralSpawnBreakerOpen firing for ${badPool}`, timeoutMs: 60_000, intervalMs: 500 },
  );
  assert.equal(firing.labels.severity, 'critical');
  assert.equal(Number(firing.value), 2, 'the alert carries the breaker value (2: open)');
  assert.match(firing.annotations.summary ?? '', new RegExp(`corral pool ${badPool}: spawn breaker not closed`));
  const alerts = await prometheus.alerts();
  for (const healthy of [pool, coldPool]) {
    assert.ok(
      !alerts.some((a) => a.labels.alertname === 'CorralSpawnBreakerOpen' && a.labels.pool === healthy),
      `no breaker alert for ${healthy}`,
    );
  }
});

test('a spawning pool whose workflows are terminated under their in-flight work', async () => {
  await corral.applyPool(
    demoPoolSpec(slowPool, {
      minIdle: 1,
      maxWorkers: 1,
      env: { DEMO_WORKER_START_DELAY_MS: '300000' },
      deadlines: { spawn: '10m', activation: '15s', hotIdleTtl: '10m', maxLifetime: '1h', drain: '5m' },
    }),
  );
  const spawning = await waitFor(
    async () => (await corral.listWorkers({ pool: slowPool, states: ['spawning'] })).find((w) => w.pool === slowPool),
    { what: `a ${slowPool} worker spawning`, timeoutMs: 60_000, intervalMs: 250 },
  );
  // The spawn activity waits for readiness (the worker starts in 5 minutes), heartbeating.
  const handle = e2e.client.workflow.getHandle(workerLifecycleWorkflowId(slowPool, spawning.id));
  await waitFor(
    async () => {
      const { raw } = await handle.describe();
      return raw.pendingActivities?.some((a) => a.lastHeartbeatTime) ?? false;
    },
    { what: 'the spawn activity heartbeating', timeoutMs: 60_000, intervalMs: 250 },
  );
  // Its pool must not start it again: the pool workflow ends first, then the worker's.
  await e2e.client.workflow.getHandle(poolWorkflowId(slowPool)).terminate('test: no refill of the slow pool');
  await handle.terminate('test: its spawn is still running');
  const { status } = await handle.describe();
  assert.equal(status.name, 'TERMINATED');
});

test('the worker’s Temporal connections cut: long polls fail (temporal_long_request_failure), then resume', async () => {
  const before = value(await prometheus.query('sum(temporal_long_request)'));
  assert.ok(temporalProxy.cut() > 0, 'connections to cut');
  await promUntil('a failed long poll', 'sum(temporal_long_request_failure) >= 1');
  await promUntil('long polls again', 'sum(temporal_long_request)', (s) => value(s) > before);
});

// Failed SDK requests come from work in flight when a workflow ends: the spawning pool's workflows
// terminated above, and drains, where a worker's workflow completes while signals still arrive (its
// last workflow task completion answers NOT_FOUND or INVALID_ARGUMENT "UnhandledCommand", and the
// SDK evicts the run). Which of them a run produces depends on timing, so the count is taken here.
test('a drain: drain durations, completed workflows, failed SDK requests', async () => {
  for (const lease of leases) await corral.release(lease);
  await corral.drainPool(pool);
  await corral.drainPool(coldPool);
  await corral.waitForDrained(pool);
  await corral.waitForDrained(coldPool);
  await promUntil('drains observed', 'sum(corral_worker_drain_duration_seconds_count) >= 2');
  await promUntil('workflows completed', 'sum(temporal_workflow_completed) >= 1');
  await promUntil('a failed Temporal request', 'sum(temporal_request_failure) >= 1');
});

interface Panel {
  title: string;
  type: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
}

/** A Grafana multi-value variable as Grafana formats it into a Prometheus regex: `(a|b)`, escaped. */
function regexOf(values: string[]): string {
  const escaped = values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const regex = escaped.length === 1 ? escaped[0]! : `(${escaped.join('|')})`;
  return regex.replace(/\\/g, '\\\\'); // inside a PromQL string literal
}

/**
 * SDK series born only on an event this test cannot cause on demand: a sticky-cache miss needs a
 * run evicted while the server still routes its tasks to this worker's sticky queue (a full
 * cache: corral's cache is at least 100 runs, this test has a few dozen; or an eviction after a
 * failed task report), and forced evictions come from such failures too. Their expressions must
 * still parse; if the run happened to produce the series, they are checked like the rest.
 */
const notDriven = ['temporal_sticky_cache_miss', 'temporal_sticky_cache_total_forced_eviction'];

test('every PromQL expression of the Grafana dashboard parses and returns data from the real scrape', async (t) => {
  const dashboard = JSON.parse(fs.readFileSync(dashboardFile, 'utf8')) as {
    panels: Panel[];
    templating: { list: { name: string; definition?: string }[] };
  };
  // The dashboard's variables, resolved the way Grafana does: label_values(metric, label).
  const variables = new Map<string, string>();
  for (const v of dashboard.templating.list) {
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(v.definition ?? '');
    if (!m) continue;
    const values = await prometheus.labelValues(m[2]!, m[1]!);
    assert.ok(values.length > 0, `variable ${v.name}: ${v.definition} has values`);
    variables.set(v.name, regexOf(values));
  }
  assert.ok(variables.has('pool') && variables.has('task_queue'), 'pool and task_queue variables resolved');
  const pools = await prometheus.labelValues('pool', 'corral_workers');
  for (const p of [pool, coldPool, badPool]) assert.ok(pools.includes(p), `${p} among the pool variable's values`);

  const exprs = dashboard.panels
    .flatMap((p) => [p, ...(p.panels ?? [])])
    .filter((p) => p.type !== 'row')
    .flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr ?? '' })));
  assert.ok(exprs.length >= 30, `${exprs.length} expressions`);

  // A range that covers this whole test, so every event it drove is inside every rate window
  // (recomputed at each evaluation).
  const resolve = (expr: string) =>
    expr
      .replace(/\$__rate_interval|\$__range/g, `${Math.ceil((Date.now() - startedAt) / 1000) + 60}s`)
      .replace(/\$(\w+)/g, (whole, name: string) => variables.get(name) ?? whole);

  // Evaluated together, again while some lack data (a scrape may not have caught up), bounded.
  const pending = new Map(exprs.map(({ panel, expr }) => [`${panel}: ${expr}`, expr]));
  const last = new Map<string, string>();
  const parseErrors: string[] = [];
  for (const expr of pending.values()) assert.ok(!resolve(expr).includes('$'), `every variable resolved in ${expr}`);
  try {
    await waitFor(
      async () => {
        for (const [key, expr] of pending) {
          const query = resolve(expr);
          try {
            const samples = await prometheus.query(query);
            if (samples.some((sample) => !Number.isNaN(Number(sample.value[1])))) {
              t.diagnostic(`${samples.length} series: ${key}`);
              pending.delete(key);
            } else {
              last.set(key, `${query} → ${JSON.stringify(samples)}`);
            }
          } catch (err) {
            if (!(err instanceof PromQueryError) || err.errorType !== 'bad_data') throw err;
            parseErrors.push(`${key}: ${err.message}`);
            pending.delete(key);
          }
        }
        return [...pending.values()].every((expr) => notDriven.some((name) => expr.includes(name)));
      },
      { what: 'every dashboard expression to return data', timeoutMs: 120_000, intervalMs: 1_000 },
    );
  } catch (err) {
    t.diagnostic((err as Error).message);
  }
  assert.deepEqual(parseErrors, [], 'every expression parses');
  // Parsed (no bad_data above) but allowed to be empty: events this test cannot cause on demand.
  for (const key of pending.keys()) {
    if (notDriven.some((name) => key.includes(name))) {
      t.diagnostic(`parses, no data (event not driven by this test): ${last.get(key) ?? key}`);
      pending.delete(key);
    }
  }
  const failures = [...pending.keys()].map((key) => last.get(key) ?? key);
  assert.deepEqual(failures, [], `expressions without data:\n${failures.join('\n')}`);
});
