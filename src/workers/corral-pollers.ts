// The Temporal workers one corral replica runs: one per bulkhead (docs/decisions/0013-fleet-scale.md).
// - the base queue: workflows, local activities (registry, worker protocol) and the pool's
//   activities; it registers every activity, because runs recorded before the runtime queue
//   existed still schedule their pod runtime calls here;
// - the runtime queue: creates, readiness waits and deletes, with their own slots;
// - the janitor queue: the janitor's pass, with its own slots.
// Each has explicit slots from WorkerCapacity. On shutdown each stops polling at once and gives
// in-flight activities `shutdownGraceMs`, then cancels them (the server retries them elsewhere).
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import type { CorralActivities } from '../activities';
import type { WorkerCapacity } from '../config/worker-capacity';
import { failoverBounds, janitorTaskQueueOf, runtimeTaskQueueOf } from '../common';
import type { ActivityRetryMetrics } from '../metrics/activity-metrics';
import { corralActivityInterceptors } from './activity-interceptors';

export interface CorralPollersOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: CorralActivities;
  capacity: WorkerCapacity;
  shutdownGraceMs?: number;
  /** Where activities count retries that outlast an outage (corral_activity_prolonged_retries_total). */
  retryMetrics?: ActivityRetryMetrics;
  /** Extra options for every worker (tests: heartbeat throttling). */
  workerOptions?: Partial<Pick<WorkerOptions, 'maxHeartbeatThrottleInterval' | 'defaultHeartbeatThrottleInterval'>>;
}

export async function createCorralPollers(o: CorralPollersOptions): Promise<Worker[]> {
  const { capacity, activities } = o;
  const common = {
    connection: o.connection,
    namespace: o.namespace,
    ...(o.shutdownGraceMs === undefined ? {} : { shutdownGraceTime: o.shutdownGraceMs }),
    // A workflow task left on a dead replica's sticky queue moves to the shared queue after this
    // (the SDK default is 10 s): part of the failover budget (decision 0019). A graceful
    // shutdown tells the server to drop the sticky queue at once (the SDK's ShutdownWorker call).
    stickyQueueScheduleToStartTimeout: failoverBounds.stickyScheduleToStartMs,
    interceptors: { activity: corralActivityInterceptors(o.retryMetrics) },
    ...o.workerOptions,
  };
  const { spawnWorkerPod, awaitWorkerReady, deleteWorkerPod } = activities;
  const workers = [
    await Worker.create({
      ...common,
      taskQueue: o.taskQueue,
      workflowsPath: require.resolve('../workflows'),
      activities,
      maxConcurrentWorkflowTaskExecutions: capacity.workflowTaskSlots,
      maxCachedWorkflows: capacity.workflowCacheSize,
      maxConcurrentLocalActivityExecutions: capacity.localActivitySlots,
      maxConcurrentActivityTaskExecutions: capacity.activitySlots,
    }),
    await Worker.create({
      ...common,
      taskQueue: runtimeTaskQueueOf(o.taskQueue),
      activities: { spawnWorkerPod, awaitWorkerReady, deleteWorkerPod },
      maxConcurrentActivityTaskExecutions: capacity.runtimeActivitySlots,
    }),
  ];
  // The janitor exists only where activities were given a Temporal client.
  const { reconcileStrandedResources, deleteExpiredRecords } = activities;
  if (reconcileStrandedResources && deleteExpiredRecords) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: janitorTaskQueueOf(o.taskQueue),
        activities: { reconcileStrandedResources, deleteExpiredRecords },
        maxConcurrentActivityTaskExecutions: capacity.janitorActivitySlots,
      }),
    );
  }
  return workers;
}

/** Runs every worker until all stop; one failing stops the others (a replica polls all its queues or none). */
export async function runCorralPollers(workers: Worker[]): Promise<void> {
  await Promise.all(
    workers.map((w) =>
      w.run().catch((err: unknown) => {
        for (const other of workers) if (other.getState() === 'RUNNING') other.shutdown();
        throw err;
      }),
    ),
  );
}
