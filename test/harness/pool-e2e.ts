// End-to-end plumbing for pools and claims: the lifecycle e2e world (dev server, fresh registry,
// process runtime running the real demo worker) plus an in-process corral worker with every
// activity (pools, janitor, a Temporal client) and a CorralClient on the same task queue.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createCorralActivities } from '../../src/activities';
import { startCorralApi, type CorralApiOptions, type RunningCorralApi } from '../../src/api/corral-api';
import { CorralClient } from '../../src/client/corral-client';
import type { PoolSpecInput } from '../../src/config/pool-spec';
import { parseWorkerCapacity } from '../../src/config/worker-capacity';
import { repoRoot } from '../../src/embedded/tools';
import { HealthWatcher } from '../../src/health/health-watcher';
import { waitFor } from '../../src/embedded/wait';
import { type WorkerState, poolWorkflowId } from '../../src/common';
import { createJanitorMetrics } from '../../src/metrics/janitor-metrics';
import { createPoolMetrics } from '../../src/metrics/pool-metrics';
import { ClaimStore } from '../../src/registry/claim-store';
import { PoolStore } from '../../src/registry/pool-store';
import { ReplicaMembership } from '../../src/registry/replica-membership';
import type { PodRuntime } from '../../src/runtime/pod-runtime';
import { createCorralPollers, runCorralPollers } from '../../src/workers/corral-pollers';
import { useLifecycleE2e, type LifecycleE2e } from './lifecycle-e2e';
import type { TestRegistry } from './registry';
import type { TemporalEndpoint } from './shared';

/**
 * corral on top of some runtime: an in-process corral worker and corral API, a CorralClient of
 * that API, and ways to look.
 */
export interface PoolWorld {
  corral: CorralClient;
  api: RunningCorralApi;
  pools: PoolStore;
  claims: ClaimStore;
  taskQueue: string;
  /** The corral worker's metrics (breaker gauge, warm-capacity misses, janitor counters). */
  metrics: Registry;
  /** Live workers of a pool by state, from the registry. */
  counts(pool: string): Promise<Partial<Record<WorkerState, number>>>;
  waitForCounts(pool: string, want: Partial<Record<WorkerState, number>>, timeoutMs?: number): Promise<void>;
  metricValue(name: string, labels: Record<string, string>): Promise<number>;
  /**
   * Stops the in-process corral worker's Temporal worker (every workflow of this world stops
   * making progress: unresponsive, as if wedged) while the corral API keeps serving; the returned
   * function starts a new Temporal worker on the same task queue.
   */
  pauseWorkflows(): Promise<() => Promise<void>>;
  /** Another corral API replica on this world's registry and Temporal (any replica answers any request). */
  startApiReplica(opts?: { tokens?: string[] }): Promise<RunningCorralApi>;
  /** Ends every pool workflow (so none respawns what cleanup deletes), then the corral worker. */
  stop(): Promise<void>;
}

export type PoolE2e = LifecycleE2e & PoolWorld;

export const demoWorkerImage = path.join(repoRoot, 'bin', 'corral-demo-worker');

/** A small, quick pool of demo workers; tests override what they look at. */
export function demoPoolSpec(name: string, overrides: Partial<PoolSpecInput> = {}): PoolSpecInput {
  return {
    name,
    runtime: 'process',
    image: demoWorkerImage,
    port: 8080,
    minIdle: 1,
    maxWorkers: 10,
    refillPerMinute: 600,
    releasePolicy: 'hot_idle',
    maxSpawnAttempts: 2,
    resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 256 } },
    deadlines: { spawn: '60s', activation: '15s', hotIdleTtl: '10m', maxLifetime: '1h', drain: '5m' },
    health: { interval: '1s', failureThreshold: 2 },
    breaker: { failureThreshold: 3, cooldown: '2s', successThreshold: 1 },
    ...overrides,
  };
}

export async function startPoolWorld(deps: {
  temporal: TemporalEndpoint;
  client: Client;
  registry: TestRegistry;
  runtime: PodRuntime;
  /** Extra context for a failed wait (e.g. a fake kubelet's last error). */
  explainWait?: () => string;
  /** How long a grant may go unacknowledged (default 15 s, as `corral worker`). */
  claimAckWindowMs?: number;
  /** corral's worker-protocol master key: every worker call signed (corral.worker/v2). Default: v1. */
  workerProtocolKey?: Buffer;
}): Promise<PoolWorld> {
  const { client, registry } = deps;
  const taskQueue = `pools-e2e-${process.pid}-${Date.now()}`;
  const metrics = new Registry();
  const pools = new PoolStore(registry.db);
  const claims = new ClaimStore(registry.db);
  const claimAckWindowMs = deps.claimAckWindowMs ?? 15_000;
  const poolMetrics = createPoolMetrics(metrics);
  const connection = await NativeConnection.connect({ address: deps.temporal.address });
  const activities = createCorralActivities({
    store: registry.store,
    claims,
    claimAckWindowMs,
    runtime: deps.runtime,
    heartbeatIntervalMs: 1_000,
    temporal: client,
    pools,
    poolMetrics,
    janitorMetrics: createJanitorMetrics(metrics),
    workerProtocolKey: deps.workerProtocolKey,
  });
  // What `corral worker` runs: its pollers (default slots) and its health watcher.
  const createWorkers = () =>
    createCorralPollers({
      connection,
      namespace: deps.temporal.namespace,
      taskQueue,
      activities,
      capacity: parseWorkerCapacity({}),
    });
  let workers = await createWorkers();
  let running = runCorralPollers(workers);
  const membership = new ReplicaMembership({ db: registry.db, replicaId: `${taskQueue}-replica` });
  await membership.start();
  const healthWatcher = new HealthWatcher({
    runtime: deps.runtime,
    temporal: client,
    membership,
    log: (line) => console.log(`[health] ${line}`),
  });
  healthWatcher.start();
  const startApi = (extra: Pick<CorralApiOptions, 'tokens'> & Partial<CorralApiOptions>) =>
    startCorralApi({
      claims,
      workers: registry.store,
      pools,
      temporal: client,
      taskQueue,
      port: 0,
      host: '127.0.0.1',
      ackWindowMs: claimAckWindowMs,
      workerProtocolKey: deps.workerProtocolKey,
      ...extra,
    });
  const api = await startApi({
    tokens: null,
    metrics: poolMetrics,
    log: (line) => console.log(`[corral api] ${line}`),
  });
  const corral = new CorralClient({ url: api.url });

  const counts = async (pool: string) => (await pools.inventory(pool)).counts;
  return {
    corral,
    api,
    pools,
    claims,
    taskQueue,
    metrics,
    counts,
    async waitForCounts(pool, want, timeoutMs = 120_000) {
      let last: Partial<Record<WorkerState, number>> = {};
      try {
        await waitFor(
          async () => {
            last = await counts(pool);
            return Object.entries(want).every(([state, n]) => (last[state as WorkerState] ?? 0) === n);
          },
          { what: `pool ${pool} to have ${JSON.stringify(want)}`, timeoutMs, intervalMs: 200 },
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}${deps.explainWait?.() ?? ''}`);
      }
    },
    async metricValue(name, labels) {
      const metric = (await metrics.getMetricsAsJSON()).find((m) => m.name === name);
      const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
      return value?.value ?? 0;
    },
    startApiReplica: (opts = {}) => startApi({ tokens: opts.tokens ?? null }),
    async pauseWorkflows() {
      for (const w of workers) w.shutdown();
      await running;
      return async () => {
        workers = await createWorkers();
        running = runCorralPollers(workers);
      };
    },
    async stop() {
      await api.close();
      for (const record of await pools.listPools()) {
        try {
          await client.workflow.getHandle(poolWorkflowId(record.name)).terminate('test cleanup');
        } catch {
          // already ended
        }
      }
      await healthWatcher.close();
      await membership.stop();
      for (const w of workers) w.shutdown();
      await running;
      await connection.close();
    },
  };
}

export async function usePoolE2e(
  opts: { claimAckWindowMs?: number; workerProtocolKey?: Buffer } = {},
): Promise<PoolE2e> {
  const e2e = await useLifecycleE2e();
  const world = await startPoolWorld({ ...e2e, ...opts });
  return {
    ...e2e,
    ...world,
    async close() {
      await world.stop();
      await e2e.close();
    },
  };
}
