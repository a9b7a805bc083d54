// Pool and claim metrics. Label values: the pool name (operator-configured, a bounded set), the
// claim path and the miss reason (typed constants below). Never a tenant or a request id.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BreakerState } from '../common';
import { throttledLog, withTimeout } from './bounded';

export const claimPaths = ['warm', 'cold'] as const;
export type ClaimPath = (typeof claimPaths)[number];

/** Why a claim got no warm worker: none idle (it took the cold path), maxWorkers reached, breaker not closed. */
export const warmCapacityMissReasons = ['no_idle_worker', 'at_capacity', 'breaker_open'] as const;
export type WarmCapacityMissReason = (typeof warmCapacityMissReasons)[number];

/** How a wait in a pool's queue ended. */
export const claimWaitOutcomes = ['served', 'timed_out'] as const;
export type ClaimWaitOutcome = (typeof claimWaitOutcomes)[number];

/** Where a scrape reads the waiting claims per pool from (the registry's claims table). */
export interface ClaimQueueSource {
  claimQueueDepths(): Promise<{ pool: string; waiting: number }[]>;
}

/** Where a scrape reads each pool's warm-capacity target from (the pool rows, decision 0035). */
export interface WarmCapacitySource {
  warmCapacityTargets(): Promise<{ pool: string; effectiveTarget: number; headroom: number }[]>;
}

export interface PoolMetrics {
  setBreakerState(pool: string, state: BreakerState): void;
  countWarmCapacityMiss(pool: string, reason: WarmCapacityMissReason): void;
  /** A claim refused because its tenant held its quota (by pool only: never a tenant label). */
  countQuotaRefusal(pool: string): void;
  /** A claim that waited in the pool's queue: served, or its timeout ended first. */
  observeWait(pool: string, outcome: ClaimWaitOutcome, seconds: number): void;
  /** A hot_idle worker of another tenant retired to make room for waiting claims. */
  countEviction(pool: string): void;
  observeClaim(pool: string, path: ClaimPath, seconds: number): void;
  /** The hand-over: the worker's activation at the lease's epoch, before the caller is answered. */
  observeHandOver(pool: string, seconds: number): void;
}

/** 0 closed, 1 half-open, 2 open: alert on `> 0`, graph the value. */
export function breakerGaugeValue(state: BreakerState): number {
  return state === 'closed' ? 0 : state === 'half_open' ? 1 : 2;
}

/** Where a scrape reads every pool's breaker from (the registry's `pools.breaker_state`). */
export interface BreakerStateSource {
  breakerStates(): Promise<{ pool: string; state: BreakerState }[]>;
}

/**
 * Without `breakers`, the gauge holds what this process recorded (`setBreakerState`, called by
 * the activity that records a breaker change). With it, each scrape reads every pool's breaker
 * from the registry, so every replica reports the same, current value (aggregate with max), even
 * one that never ran that activity or restarted since; if that read fails, the scrape falls back
 * to what this process recorded.
 */
export function createPoolMetrics(
  register: Registry,
  opts: {
    breakers?: BreakerStateSource;
    queues?: ClaimQueueSource;
    warmCapacity?: WarmCapacitySource;
    timeoutMs?: number;
    log?: (line: string) => void;
  } = {},
): PoolMetrics {
  const recorded = new Map<string, BreakerState>();
  const warn = throttledLog(opts.log);
  const { breakers, queues, warmCapacity } = opts;
  const warmGauge = (name: string, help: string, value: (t: { effectiveTarget: number; headroom: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool'] as const,
      registers: [register],
      async collect() {
        if (!warmCapacity) return;
        try {
          const read = await withTimeout(
            warmCapacity.warmCapacityTargets(),
            opts.timeoutMs ?? 3_000,
            'reading warm capacity targets',
          );
          this.reset();
          for (const t of read) this.set({ pool: t.pool }, value(t));
        } catch (err) {
          warn(`${name} not reported: ${err instanceof Error ? err.message : String(err)}`);
          this.reset();
        }
      },
    });
  warmGauge(
    'corral_warm_capacity_effective_target',
    'Idle workers the pool keeps now: minIdle, or in demand mode clamp(minIdle, forecast + headroom, maxIdle) (registry-wide: aggregate with max).',
    (t) => t.effectiveTarget,
  );
  warmGauge(
    'corral_warm_capacity_headroom',
    "The burst term of a demand-mode pool's target: ceil(burst × √forecast) (0 for static pools; registry-wide: aggregate with max).",
    (t) => t.headroom,
  );
  const breaker = new Gauge({
    name: 'corral_spawn_breaker_state',
    help: "A pool's spawn circuit breaker: 0 closed, 1 half-open, 2 open (registry-wide: aggregate with max, not sum).",
    labelNames: ['pool'] as const,
    registers: [register],
    async collect() {
      if (!breakers) return;
      let states: { pool: string; state: BreakerState }[];
      try {
        states = await withTimeout(breakers.breakerStates(), opts.timeoutMs ?? 3_000, 'reading breaker states');
      } catch (err) {
        warn(`corral_spawn_breaker_state from this process only: ${err instanceof Error ? err.message : String(err)}`);
        states = [...recorded].map(([pool, state]) => ({ pool, state }));
      }
      this.reset();
      for (const { pool, state } of states) this.set({ pool }, breakerGaugeValue(state));
    },
  });
  const misses = new Counter({
    name: 'corral_warm_capacity_misses_total',
    help: 'Claims that found no warm worker, by reason: no_idle_worker (took the cold path), at_capacity, breaker_open.',
    labelNames: ['pool', 'reason'] as const,
    registers: [register],
  });
  const quotaRefusals = new Counter({
    name: 'corral_claim_quota_refusals_total',
    help: "Claims refused with quota_exceeded: the tenant held its quota of the pool's workers (maxPerTenant or tenantQuotas).",
    labelNames: ['pool'] as const,
    registers: [register],
  });
  new Gauge({
    name: 'corral_claim_queue_depth',
    help: "Claims waiting in a pool's queue whose callers still ask (registry-wide: aggregate with max, not sum).",
    labelNames: ['pool'] as const,
    registers: [register],
    async collect() {
      if (!queues) return;
      try {
        const depths = await withTimeout(queues.claimQueueDepths(), opts.timeoutMs ?? 3_000, 'reading claim queues');
        this.reset();
        for (const { pool, waiting } of depths) this.set({ pool }, waiting);
      } catch (err) {
        warn(`corral_claim_queue_depth not reported: ${err instanceof Error ? err.message : String(err)}`);
        this.reset();
      }
    },
  });
  const waits = new Histogram({
    name: 'corral_claim_wait_seconds',
    help: "Time a claim waited in its pool's queue, by how the wait ended (served, timed_out).",
    labelNames: ['pool', 'outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [register],
  });
  const evictions = new Counter({
    name: 'corral_evictions_total',
    help: "Other tenants' hot_idle workers retired to make room for waiting claims at maxWorkers.",
    labelNames: ['pool'] as const,
    registers: [register],
  });
  const claims = new Histogram({
    name: 'corral_claim_duration_seconds',
    help: 'From claim request to lease, by pool and path (warm: an idle worker; cold: spawned for the claim).',
    labelNames: ['pool', 'path'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [register],
  });
  const handOvers = new Histogram({
    name: 'corral_claim_handover_duration_seconds',
    help: 'A claimed worker accepting its lease (POST /activate at the new epoch) before the caller is answered.',
    labelNames: ['pool'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [register],
  });
  return {
    setBreakerState: (pool, state) => {
      recorded.set(pool, state);
      breaker.set({ pool }, breakerGaugeValue(state));
    },
    countWarmCapacityMiss: (pool, reason) => misses.inc({ pool, reason }),
    countQuotaRefusal: (pool) => quotaRefusals.inc({ pool }),
    observeWait: (pool, outcome, seconds) => waits.observe({ pool, outcome }, Math.max(0, seconds)),
    countEviction: (pool) => evictions.inc({ pool }),
    observeClaim: (pool, path, seconds) => claims.observe({ pool, path }, Math.max(0, seconds)),
    observeHandOver: (pool, seconds) => handOvers.observe({ pool }, Math.max(0, seconds)),
  };
}

/**
 * The pool keeper's view of the pool workflows: `expected` (pools `active` or `draining` in the
 * registry) and `running` (of those, the ones whose workflow it found running or started again).
 */
export const poolWorkflowCounts = ['expected', 'running'] as const;
export type PoolWorkflowCount = (typeof poolWorkflowCounts)[number];

export interface PoolKeeperMetrics {
  /** The latest check's counts (replaces the previous check's). */
  setPoolWorkflows(counts: Record<PoolWorkflowCount, number>): void;
  /** A pool workflow the keeper found not running and started again. */
  countRestart(pool: string): void;
  /** A check that could not read the pools, or a pool it could not check or start. */
  countCheckFailure(): void;
}

export function createPoolKeeperMetrics(register: Registry): PoolKeeperMetrics {
  const workflows = new Gauge({
    name: 'corral_pool_workflows',
    help:
      "Pool workflows this replica's pool keeper expects (pools active or draining in the registry) and found running " +
      '(or started again) in its latest check. expected > running for longer than a check period: alert.',
    labelNames: ['state'] as const,
    registers: [register],
  });
  const restarts = new Counter({
    name: 'corral_pool_workflow_restarts_total',
    help: 'Pool workflows the pool keeper found not running (terminated, failed, never started) and started again.',
    labelNames: ['pool'] as const,
    registers: [register],
  });
  const failures = new Counter({
    name: 'corral_pool_keeper_check_failures_total',
    help: "The pool keeper's failed calls (reading the pools, describing or starting a pool workflow); retried next period.",
    registers: [register],
  });
  failures.inc(0);
  return {
    setPoolWorkflows(counts) {
      for (const state of poolWorkflowCounts) workflows.set({ state }, counts[state]);
    },
    countRestart: (pool) => restarts.inc({ pool }),
    countCheckFailure: () => failures.inc(),
  };
}
