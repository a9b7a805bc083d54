// `corral worker`: one process that runs corral's workflows and activities. Replicas need no
// leader election; the Temporal server hands each task to exactly one poller.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createCorralActivities } from '../activities';
import { ensureJanitorSchedule } from '../client/janitor-schedule';
import { createJanitorMetrics } from '../metrics/janitor-metrics';
import { createPoolMetrics } from '../metrics/pool-metrics';
import { Registry } from 'prom-client';
import { createRegistryPool } from '../registry/database';
import { WorkerLifecycleStore } from '../registry/lifecycle-store';
import { migrateRegistry } from '../registry/migrate';
import { PoolStore } from '../registry/pool-store';
import { createPodRuntime, type PodRuntimeConfig } from '../runtime/create-pod-runtime';
import { corralTaskQueue } from './task-queues';

export interface CorralWorkerOptions {
  temporalAddress: string;
  namespace: string;
  taskQueue?: string;
  /** The registry; migrated before the worker polls (safe with many replicas starting at once). */
  databaseUrl: string;
  /** Where worker pods run: local processes (the embedded default) or a Kubernetes namespace. */
  runtime: PodRuntimeConfig;
  log?: (line: string) => void;
  /** Where corral's metrics are registered (served on /metrics by the caller). */
  metricsRegistry?: Registry;
  /** Serve GET /metrics (corral's and the Temporal SDK's), /readyz and /livez here. */
  http?: { port: number; host?: string };
  /** How long in-flight activities may finish after SIGTERM before they are cancelled. */
  shutdownGraceMs?: number;
  /** Called once the worker polls, so a supervisor can report readiness. */
  onReady?: (info: { metricsUrl?: string }) => void;
}

export async function runCorralWorker(opts: CorralWorkerOptions): Promise<void> {
  // The runtime config is checked first: a typo fails here, naming the field, before any connection.
  const runtime = createPodRuntime(opts.runtime);
  const { applied } = await migrateRegistry(opts.databaseUrl);
  opts.log?.(applied.length > 0 ? `registry migrated: ${applied.join(', ')}` : 'registry schema up to date');
  const db = createRegistryPool({
    connectionString: opts.databaseUrl,
    onIdleError: (err) => opts.log?.(`registry connection dropped: ${err.message}`),
  });
  const connection = await NativeConnection.connect({ address: opts.temporalAddress });
  // Activities that start or inspect workflows (pool refill, janitor) use an ordinary client.
  const clientConnection = await Connection.connect({ address: opts.temporalAddress });
  const temporal = new Client({ connection: clientConnection, namespace: opts.namespace });
  const taskQueue = opts.taskQueue ?? corralTaskQueue;
  const metricsRegistry = opts.metricsRegistry ?? new Registry();
  try {
    const worker = await Worker.create({
      connection,
      namespace: opts.namespace,
      taskQueue,
      workflowsPath: require.resolve('../workflows'),
      activities: createCorralActivities({
        store: new WorkerLifecycleStore(db),
        runtime,
        temporal,
        pools: new PoolStore(db),
        poolMetrics: createPoolMetrics(metricsRegistry),
        janitorMetrics: createJanitorMetrics(metricsRegistry),
      }),
      // SIGINT/SIGTERM (Worker's default shutdownSignals) start a graceful shutdown: in-flight
      // activities get shutdownGraceTime to finish before being cancelled.
      shutdownGraceTime: '10s',
    });
    // Every replica ensures the janitor's schedule (idempotent). A failure is logged, not fatal:
    // serving workers matters more, and the next replica start tries again.
    await ensureJanitorSchedule(temporal, { taskQueue }).then(
      ({ created }) => opts.log?.(`janitor schedule ${created ? 'created' : 'up to date'}`),
      (err: unknown) => opts.log?.(`janitor schedule not ensured: ${err instanceof Error ? err.message : String(err)}`),
    );
    opts.onReady?.({});
    await worker.run();
  } finally {
    await Promise.allSettled([connection.close(), clientConnection.close(), runtime.close(), db.end()]);
  }
}
