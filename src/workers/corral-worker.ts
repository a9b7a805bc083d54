// `corral worker`: one process that runs corral's workflows and activities. Replicas need no
// leader election; the Temporal server hands each task to exactly one poller.
import { NativeConnection, Worker } from '@temporalio/worker';
import { createCorralActivities } from '../activities';
import { createRegistryPool } from '../registry/database';
import { WorkerLifecycleStore } from '../registry/lifecycle-store';
import { migrateRegistry } from '../registry/migrate';
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
  /** Called once the worker polls, so a supervisor can report readiness. */
  onReady?: () => void;
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
  try {
    const worker = await Worker.create({
      connection,
      namespace: opts.namespace,
      taskQueue: opts.taskQueue ?? corralTaskQueue,
      workflowsPath: require.resolve('../workflows'),
      activities: createCorralActivities({ store: new WorkerLifecycleStore(db), runtime }),
      // SIGINT/SIGTERM (Worker's default shutdownSignals) start a graceful shutdown: in-flight
      // activities get shutdownGraceTime to finish before being cancelled.
      shutdownGraceTime: '10s',
    });
    opts.onReady?.();
    await worker.run();
  } finally {
    await Promise.allSettled([connection.close(), runtime.close(), db.end()]);
  }
}
