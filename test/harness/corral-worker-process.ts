// The real `corral worker` CLI as a child process against a test world (dev server, registry
// database, process runtime), resolved once it reports ready over IPC with its metrics URL.
import { withoutTemporalConnectionSettings } from '../../src/config/temporal-connection';
import path from 'node:path';
import { generateWorkerProtocolKey, workerProtocolKeyVariable } from '../../src/runtime/worker-protocol-proof';
import { failOnExit, nextMessage, startProcess, type ManagedProcess } from '../../src/embedded/child-process';
import { repoRoot } from '../../src/embedded/tools';
import type { LifecycleE2e } from './lifecycle-e2e';

/** Every corral metric (docs/decisions/0009-metrics-and-worker-endpoints.md): what /metrics and the dashboard must cover. */
export const designMetricNames = [
  'corral_worker_lifecycle_transitions_total',
  'corral_worker_lifecycle_transition_duration_seconds',
  'corral_workers',
  'corral_worker_spawn_failures_total',
  'corral_worker_health_checks_total',
  'corral_zombies_detected_total',
  'corral_worker_activation_duration_seconds',
  'corral_worker_activation_failures_total',
  'corral_worker_drain_duration_seconds',
  'corral_claim_duration_seconds',
  'corral_warm_capacity_misses_total',
  'corral_spawn_breaker_state',
  'corral_stranded_resources_reconciled_total',
] as const;

/**
 * One worker-protocol key for every `corral worker` a test process starts: replicas of one fleet
 * share it (a worker spawned by one must be activated by another after a failover).
 */
const harnessWorkerProtocolKey = generateWorkerProtocolKey().toString('hex');

export interface CorralWorkerProcess {
  proc: ManagedProcess;
  /** The `ready` IPC message: `{ type: 'ready', metricsUrl, apiUrl }`. */
  ready: Record<string, unknown>;
}

/**
 * Starts `bin/corral worker` polling `taskQueue`. The metrics and API ports are 0 (any free
 * port), so it never collides with a running `make start` or another test. `env` adds or overrides variables.
 */
export async function startCorralWorkerProcess(
  world: Pick<LifecycleE2e, 'temporal' | 'registry' | 'stateDir'>,
  opts: { name: string; taskQueue: string; env?: NodeJS.ProcessEnv },
): Promise<CorralWorkerProcess> {
  const proc = startProcess(opts.name, path.join(repoRoot, 'bin', 'corral'), ['worker'], {
    env: {
      // The dev server is plaintext: settings for another Temporal (exported for the CLI) stay out.
      ...withoutTemporalConnectionSettings(process.env),
      TEMPORAL_ADDRESS: world.temporal.address,
      TEMPORAL_NAMESPACE: world.temporal.namespace,
      DATABASE_URL: world.registry.connectionString,
      CORRAL_TASK_QUEUE: opts.taskQueue,
      CORRAL_RUNTIME: 'process',
      CORRAL_PROCESS_STATE_DIR: world.stateDir,
      CORRAL_METRICS_PORT: '0',
      CORRAL_API_PORT: '0',
      CORRAL_API_HOST: '127.0.0.1',
      CORRAL_API_TOKENS_FILE: '',
      [workerProtocolKeyVariable]: harnessWorkerProtocolKey,
      ...opts.env,
    },
    ipc: true,
  });
  try {
    const ready = await Promise.race([failOnExit(proc), nextMessage(proc, 'ready')]);
    return { proc, ready };
  } catch (err) {
    await proc.kill();
    throw err;
  }
}
