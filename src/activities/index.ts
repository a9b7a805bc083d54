// Every activity `corral worker` registers, built from the registry store and the pod runtime it
// was configured with. Workflows see only the types (ESLint keeps implementations out).
import type { Client } from '@temporalio/client';
import type { JanitorMetrics } from '../metrics/janitor-metrics';
import type { PoolMetrics } from '../metrics/pool-metrics';
import { createTransitionObserver, type DurationSource } from '../metrics/transition-observer';
import type { WorkerMetrics } from '../metrics/worker-metrics';
import type { ClaimStore } from '../registry/claim-store';
import type { PoolStore } from '../registry/pool-store';
import type { WorkerLifecycleStore } from '../registry/lifecycle-store';
import type { PodRuntime } from '../runtime/pod-runtime';
import { createHealthActivities } from './health-activities';
import { createJanitorActivities } from './janitor-activities';
import { createPoolActivities } from './pool-activities';
import { createRegistryActivities } from './registry-activities';
import { createRuntimeActivities } from './runtime-activities';

export function createCorralActivities(deps: {
  store: WorkerLifecycleStore;
  /** Cold-path claim binding and per-worker drain marks. */
  claims: ClaimStore;
  /** How long a cold worker's grant may stay unacknowledged before it is reclaimed. */
  claimAckWindowMs: number;
  runtime: PodRuntime;
  heartbeatIntervalMs?: number;
  /** For activities that start or inspect other workflows (pool refill, janitor). */
  temporal?: Client;
  janitorMetrics?: JanitorMetrics;
  /** Pools and claims (the pool workflow's reads and the maxWorkers gate). */
  pools?: PoolStore;
  poolMetrics?: PoolMetrics;
  /** Spawn failures, health probes, zombies, activation and drain (derived where they happen). */
  workerMetrics?: WorkerMetrics;
  /** Where activation, drain and claim durations are read from (the registry's timestamps). */
  durations?: DurationSource;
  /** corral's worker-protocol master key (CORRAL_WORKER_PROTOCOL_KEY): sign every worker call (v2). */
  workerProtocolKey?: Buffer;
}) {
  const observer = deps.workerMetrics
    ? createTransitionObserver({ workers: deps.workerMetrics, durations: deps.durations })
    : undefined;
  return {
    ...createRegistryActivities(deps.store, deps.claims, { observer, claimAckWindowMs: deps.claimAckWindowMs }),
    ...(deps.pools
      ? createPoolActivities({ pools: deps.pools, temporal: deps.temporal, metrics: deps.poolMetrics })
      : {}),
    ...createRuntimeActivities(deps.runtime, {
      heartbeatIntervalMs: deps.heartbeatIntervalMs,
      workerProtocolKey: deps.workerProtocolKey,
    }),
    ...createHealthActivities(deps.runtime, {
      workerProtocolKey: deps.workerProtocolKey,
      metrics: deps.workerMetrics,
      imageOf: async (workerId) => (await deps.store.getWorker(workerId))?.image ?? null,
    }),
    // The janitor describes lifecycle workflows, so it exists only where a client was given.
    ...(deps.temporal
      ? createJanitorActivities({
          store: deps.store,
          runtime: deps.runtime,
          temporal: deps.temporal,
          metrics: deps.janitorMetrics,
          // Where a completed pass is recorded (corral_janitor_seconds_since_last_pass on every replica).
          passes: deps.pools,
        })
      : {}),
  };
}

export type CorralActivities = ReturnType<typeof createCorralActivities>;
