// deploy/grafana/corral-dashboard.json, checked statically (no Grafana here): its structure, that
// every query names only metrics corral registers (or the Temporal SDK's `temporal_*`), and that
// every corral metric (docs/decisions/0009-metrics-and-worker-endpoints.md) is on some panel.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { repoRoot } from '../../src/embedded/tools';
import { createWorkerInventoryMetrics } from '../../src/metrics/inventory-metrics';
import { createJanitorMetrics } from '../../src/metrics/janitor-metrics';
import { createLifecycleMetrics } from '../../src/metrics/lifecycle-metrics';
import { createPoolMetrics } from '../../src/metrics/pool-metrics';
import { createWorkerMetrics } from '../../src/metrics/worker-metrics';
import { designMetricNames } from '../harness/corral-worker-process';

interface Target {
  expr?: string;
  refId?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
  datasource?: { type?: string; uid?: string };
}

const dashboard = JSON.parse(
  fs.readFileSync(path.join(repoRoot, 'deploy', 'grafana', 'corral-dashboard.json'), 'utf8'),
) as {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
};

const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })));

/** The metric families `corral worker` registers, from the very functions it calls. */
function registeredCorralMetrics(): Map<string, string> {
  const register = new Registry();
  createLifecycleMetrics(register);
  createPoolMetrics(register);
  createJanitorMetrics(register);
  createWorkerMetrics(register);
  createWorkerInventoryMetrics(register, { liveWorkerCounts: async () => [] });
  return new Map(register.getMetricsAsArray().map((m) => [m.name, m.type as unknown as string]));
}

/** Temporal Core SDK metric names (without their `temporal_` prefix) the dashboard may use. */
const sdkMetrics = new Set([
  'workflow_task_execution_latency',
  'workflow_task_schedule_to_start_latency',
  'workflow_task_replay_latency',
  'workflow_task_queue_poll_succeed',
  'workflow_task_queue_poll_empty',
  'workflow_task_execution_failed',
  'workflow_completed',
  'workflow_failed',
  'workflow_endtoend_latency',
  'activity_schedule_to_start_latency',
  'activity_execution_latency',
  'activity_execution_failed',
  'activity_poll_no_task',
  'activity_task_received',
  'sticky_cache_size',
  'sticky_cache_hit',
  'sticky_cache_miss',
  'sticky_cache_total_forced_eviction',
  'num_pollers',
  'worker_task_slots_available',
  'worker_task_slots_used',
  'request',
  'request_failure',
  'request_latency',
  'long_request',
  'long_request_failure',
  'long_request_latency',
]);

/** Metric names in a PromQL expression: identifiers outside label matchers and strings. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, '{}');
  return [...withoutStrings.matchAll(/\b((?:corral|temporal)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
}

function familyOf(name: string, registered: Map<string, string>): string | undefined {
  if (registered.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && registered.get(base) === 'histogram') return base;
  }
  return undefined;
}

test('a Grafana dashboard of the current schema, with datasource and pool variables', () => {
  assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
  assert.equal(dashboard.uid, 'corral-overview');
  const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(variables.get('datasource')?.type, 'datasource');
  assert.equal(variables.get('datasource')?.query, 'prometheus');
  assert.equal(variables.get('pool')?.type, 'query');
  assert.equal(variables.get('pool')?.definition, 'label_values(corral_workers, pool)');
  for (const p of queryPanels) assert.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the variable`);
});

test('panels: unique ids, a grid position each, inside 24 columns, no two overlapping', () => {
  const ids = allPanels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
  const cells = new Set<string>();
  for (const p of allPanels) {
    const g = p.gridPos;
    assert.ok(g && [g.h, g.w, g.x, g.y].every((n) => Number.isInteger(n) && n >= 0), `${p.title}: gridPos`);
    assert.ok(g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${p.title}: within 24 columns`);
    for (let x = g.x; x < g.x + g.w; x++) {
      for (let y = g.y; y < g.y + g.h; y++) {
        assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
        cells.add(`${x},${y}`);
      }
    }
  }
  for (const p of queryPanels) {
    assert.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    const refIds = (p.targets ?? []).map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${p.title}: unique refIds`);
  }
});

test('every query names only metrics corral registers or Temporal SDK metrics', () => {
  const registered = registeredCorralMetrics();
  assert.ok(registered.size >= designMetricNames.length);
  for (const { panel, expr } of exprs) {
    const names = metricNames(expr);
    assert.ok(names.length > 0, `${panel}: ${expr} names a metric`);
    for (const name of names) {
      if (name.startsWith('temporal_')) {
        const base = name.replace(/^temporal_/, '').replace(/_(bucket|sum|count)$/, '');
        assert.ok(sdkMetrics.has(base), `${panel}: ${name} is not a Temporal SDK metric`);
      } else {
        assert.ok(familyOf(name, registered), `${panel}: ${name} is not registered by corral`);
      }
    }
    // Registry-wide gauges are the same on every replica: aggregated with max, never summed raw.
    if (/corral_(workers|spawn_breaker_state)\b/.test(expr))
      assert.match(expr, /max by/, `${panel}: max over replicas`);
    assert.equal((expr.match(/\(/g) ?? []).length, (expr.match(/\)/g) ?? []).length, `${panel}: balanced parentheses`);
  }
});

test('every corral metric is on at least one panel, and the Temporal SDK has its own', () => {
  const registered = registeredCorralMetrics();
  const used = new Set(exprs.flatMap(({ expr }) => metricNames(expr).map((n) => familyOf(n, registered) ?? n)));
  for (const name of designMetricNames) assert.ok(used.has(name), `${name} on a panel`);
  for (const name of designMetricNames) assert.ok(registered.has(name), `${name} registered`);
  for (const sdk of [
    'temporal_workflow_task_execution_latency',
    'temporal_activity_schedule_to_start_latency',
    'temporal_sticky_cache_size',
    'temporal_workflow_task_queue_poll_succeed',
  ]) {
    assert.ok(
      exprs.some(({ expr }) => metricNames(expr).some((n) => n.startsWith(sdk))),
      `${sdk} on a panel`,
    );
  }
});
