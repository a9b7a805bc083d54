// The metrics corral derives from registry transitions (no workflow code records any), and the
// registry-wide gauges read at scrape time.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { LifecycleOperation, WorkerState } from '../../src/common';
import { parseExposition, sampleSum } from '../../src/metrics/exposition';
import { createWorkerInventoryMetrics } from '../../src/metrics/inventory-metrics';
import { createPoolMetrics } from '../../src/metrics/pool-metrics';
import { createTransitionObserver, type DurationSource } from '../../src/metrics/transition-observer';
import { createWorkerMetrics, failureReasonLabel } from '../../src/metrics/worker-metrics';

const image = 'registry.example/worker:1';

function world(durations?: Partial<DurationSource>) {
  const register = new Registry();
  const workers = createWorkerMetrics(register);
  const reads: string[] = [];
  const source: DurationSource = {
    secondsInState: async (id, state) => {
      reads.push(`${id}:${state}`);
      return durations?.secondsInState ? durations.secondsInState(id, state, new Date()) : 1.5;
    },
  };
  const observer = createTransitionObserver({ workers, durations: source });
  const observe = (
    from: WorkerState | null,
    to: WorkerState,
    operation: LifecycleOperation,
    extra: { failureReason?: string | null; claimRequestId?: string | null } = {},
  ) =>
    observer.observe({
      from,
      to,
      operation,
      worker: {
        id: 'w1',
        pool: 'p',
        image,
        failureReason: extra.failureReason ?? null,
        claimRequestId: extra.claimRequestId ?? null,
        stateSince: new Date(),
      },
    });
  const value = async (name: string, labels: Record<string, string> = {}) =>
    sampleSum(parseExposition(await register.metrics()), name, labels);
  return { register, observe, value, reads };
}

describe('metrics derived from transitions', () => {
  test('every failed spawn attempt counts once by reason: respawns and the final loss, from spawning or activating', async () => {
    const w = world();
    await w.observe('spawning', 'spawning', 'respawn', { failureReason: 'pod_crashed' });
    await w.observe('activating', 'spawning', 'respawn', { failureReason: 'activation_failed' });
    await w.observe('spawning', 'lost', 'mark_lost', { failureReason: 'pod_oom_killed' });
    await w.observe('activating', 'lost', 'mark_lost', { failureReason: 'type_mismatch' });
    await w.observe('idle', 'lost', 'mark_lost', { failureReason: 'pod_vanished' }); // a zombie, not a spawn
    const spawns = 'corral_worker_spawn_failures_total';
    assert.equal(await w.value(spawns), 4);
    for (const reason of ['pod_crashed', 'activation_failed', 'pod_oom_killed', 'type_mismatch']) {
      assert.equal(await w.value(spawns, { reason, image }), 1, reason);
    }
  });

  test('activation: leaving activating for service observes its duration; for a respawn or lost, a failure', async () => {
    const w = world();
    await w.observe('activating', 'idle', 'ready');
    await w.observe('activating', 'claimed', 'claim', { claimRequestId: 'r1' }); // cold path
    await w.observe('activating', 'spawning', 'respawn', { failureReason: 'activation_failed' });
    await w.observe('activating', 'lost', 'mark_lost', { failureReason: 'type_mismatch' });
    await w.observe('activating', 'draining', 'drain'); // not a failure: someone else ended it
    assert.equal(await w.value('corral_worker_activation_duration_seconds_count', { image }), 2);
    assert.equal(await w.value('corral_worker_activation_duration_seconds_sum', { image }), 3);
    assert.equal(await w.value('corral_worker_activation_failures_total', { image }), 2);
  });

  test('a serving worker declared lost is a zombie by reason; a failed hand-over is an activation failure too', async () => {
    const w = world();
    await w.observe('idle', 'lost', 'mark_lost', { failureReason: 'pod_crashed' });
    await w.observe('claimed', 'lost', 'mark_lost', { failureReason: 'activation_failed' });
    await w.observe('hot_idle', 'lost', 'mark_lost', { failureReason: 'health_check_failed' });
    await w.observe('idle', 'retired', 'reap'); // the janitor's reap is not a zombie
    await w.observe('spawning', 'lost', 'mark_lost', { failureReason: 'invalid_image' }); // a failed spawn
    const zombies = 'corral_zombies_detected_total';
    assert.equal(await w.value(zombies), 3);
    for (const reason of ['pod_crashed', 'activation_failed', 'health_check_failed']) {
      assert.equal(await w.value(zombies, { reason, image }), 1, reason);
    }
    assert.equal(await w.value('corral_worker_activation_failures_total'), 1);
  });

  test('drain duration: draining → retired only, read from when the worker entered draining', async () => {
    const w = world();
    await w.observe('draining', 'retired', 'retire');
    await w.observe('idle', 'retired', 'retire'); // an operator's cancel: not a drain
    assert.equal(await w.value('corral_worker_drain_duration_seconds_count'), 1);
    assert.deepEqual(w.reads, ['w1:draining']);
  });

  test('claims are not derived from transitions: the corral API times them where they are decided', async () => {
    const w = world();
    await w.observe('idle', 'claimed', 'claim', { claimRequestId: 'r1' });
    await w.observe('activating', 'claimed', 'claim', { claimRequestId: 'r3' });
    assert.equal(await w.value('corral_claim_duration_seconds_count'), 0);
    assert.deepEqual(w.reads, ['w1:activating'], 'only the cold worker’s activation is timed');
  });

  test('a duration that cannot be read is dropped: the transition is never failed for a metric', async () => {
    const w = world({
      secondsInState: async () => {
        throw new Error('registry down');
      },
    });
    await w.observe('activating', 'idle', 'ready');
    assert.equal(await w.value('corral_worker_activation_duration_seconds_count'), 0);
  });

  test('label values come from typed constants: an unknown reason is `unknown`, a missing image too', () => {
    assert.equal(failureReasonLabel('pod_crashed'), 'pod_crashed');
    assert.equal(failureReasonLabel('workflow_not_running'), 'unknown');
    assert.equal(failureReasonLabel("tenant'; DROP TABLE"), 'unknown');
    assert.equal(failureReasonLabel(null), 'unknown');
  });
});

describe('registry-wide gauges, read at scrape time', () => {
  test('corral_workers: counts by pool, image and state, every live state zero-filled, terminal states absent', async () => {
    const register = new Registry();
    createWorkerInventoryMetrics(register, {
      liveWorkerCounts: async () => [
        { pool: 'a', image: 'img:1', state: 'idle', count: 3 },
        { pool: 'a', image: 'img:1', state: 'claimed', count: 1 },
        { pool: 'a', image: 'img:0', state: 'draining', count: 2 }, // an older image still draining
        { pool: 'b', image: 'img:2', state: null, count: 0 }, // a pool with no live worker
      ],
    });
    const m = parseExposition(await register.metrics());
    assert.equal(sampleSum(m, 'corral_workers', { pool: 'a', image: 'img:1', state: 'idle' }), 3);
    assert.equal(sampleSum(m, 'corral_workers', { pool: 'a', image: 'img:0', state: 'draining' }), 2);
    const series = m.samples.filter((s) => s.name === 'corral_workers');
    assert.equal(series.length, 3 * 6, 'three (pool, image) pairs × six live states');
    assert.ok(series.every((s) => !['retired', 'lost'].includes(s.labels.state!)));
    assert.equal(sampleSum(m, 'corral_workers', { pool: 'b' }), 0);
  });

  test('corral_workers: a failed or slow registry read reports no series (absent, not stale), logged', async () => {
    const register = new Registry();
    const logged: string[] = [];
    let fail = false;
    createWorkerInventoryMetrics(
      register,
      {
        liveWorkerCounts: async () => {
          if (fail) return new Promise(() => undefined); // never answers
          return [{ pool: 'a', image: 'i', state: 'idle', count: 1 }];
        },
      },
      { timeoutMs: 50, log: (line) => logged.push(line) },
    );
    assert.equal(sampleSum(parseExposition(await register.metrics()), 'corral_workers', { state: 'idle' }), 1);
    fail = true;
    const m = parseExposition(await register.metrics());
    assert.equal(m.samples.filter((s) => s.name === 'corral_workers').length, 0);
    assert.ok(m.families.get('corral_workers')?.type, 'still declared');
    assert.match(logged.join('\n'), /timed out after 50 ms/);
  });

  test('breaker gauge: the registry’s value for every pool when readable; this process’s own otherwise', async () => {
    const register = new Registry();
    let down = false;
    const metrics = createPoolMetrics(register, {
      breakers: {
        breakerStates: async () => {
          if (down) throw new Error('registry down');
          return [
            { pool: 'a', state: 'open' },
            { pool: 'b', state: 'half_open' },
          ];
        },
      },
      log: () => undefined,
    });
    metrics.setBreakerState('a', 'closed'); // stale: another replica opened it since
    let m = parseExposition(await register.metrics());
    assert.equal(sampleSum(m, 'corral_spawn_breaker_state', { pool: 'a' }), 2);
    assert.equal(sampleSum(m, 'corral_spawn_breaker_state', { pool: 'b' }), 1);
    down = true;
    m = parseExposition(await register.metrics());
    assert.equal(sampleSum(m, 'corral_spawn_breaker_state', { pool: 'a' }), 0);
    assert.equal(m.samples.filter((s) => s.name === 'corral_spawn_breaker_state').length, 1);
  });
});
