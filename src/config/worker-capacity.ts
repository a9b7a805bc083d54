// How much of each kind of work one `corral worker` replica runs at once: the bulkheads of
// docs/decisions/0013-fleet-scale.md. Each kind has its own slots (and its own task queue), so a
// burst of spawns cannot starve registry calls, nor the janitor a refill. Defaults hold 1,000
// serving workers per replica on 2 cores; floors keep a typo from wedging a replica.
import { z } from 'zod';
import { firstIssue } from './first-issue';

const slots = (floor: number, max: number, fallback: number) =>
  z.number().int('must be a whole number').min(floor, `must be at least ${floor}`).max(max).default(fallback);

export const workerCapacitySchema = z.strictObject({
  /** Workflow tasks run at once (the SDK's maxConcurrentWorkflowTaskExecutions). */
  workflowTaskSlots: slots(2, 1_000, 40),
  /** Workflows kept in memory between tasks; below the fleet size every wake replays history. */
  workflowCacheSize: slots(100, 100_000, 2_000),
  /** Local activities at once: registry compare-and-sets and worker protocol calls. */
  localActivitySlots: slots(10, 2_000, 200),
  /** Activities on the base queue at once: pool refills and drains. */
  activitySlots: slots(10, 2_000, 100),
  /** Pod runtime activities at once (runtime queue): creates, readiness waits, deletes. */
  runtimeActivitySlots: slots(10, 5_000, 200),
  /** Janitor passes at once (janitor queue). */
  janitorActivitySlots: slots(1, 10, 2),
  /** Registry connections of this replica (claims, activities, readings share them). */
  databaseConnections: slots(4, 500, 20),
});

export type WorkerCapacity = z.output<typeof workerCapacitySchema>;
export type WorkerCapacityInput = z.input<typeof workerCapacitySchema>;

/** The environment variable of each setting (`corral worker` reads them). */
export const workerCapacityEnv: Record<keyof WorkerCapacity, string> = {
  workflowTaskSlots: 'CORRAL_WORKFLOW_TASK_SLOTS',
  workflowCacheSize: 'CORRAL_WORKFLOW_CACHE_SIZE',
  localActivitySlots: 'CORRAL_LOCAL_ACTIVITY_SLOTS',
  activitySlots: 'CORRAL_ACTIVITY_SLOTS',
  runtimeActivitySlots: 'CORRAL_RUNTIME_ACTIVITY_SLOTS',
  janitorActivitySlots: 'CORRAL_JANITOR_ACTIVITY_SLOTS',
  databaseConnections: 'CORRAL_DATABASE_CONNECTIONS',
};

/** A capacity setting out of range or not a number, named by its environment variable. */
export class WorkerCapacityError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = 'WorkerCapacityError';
  }
}

export function parseWorkerCapacity(input: WorkerCapacityInput): WorkerCapacity {
  const parsed = workerCapacitySchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const { field, message } = firstIssue(parsed.error);
  throw new WorkerCapacityError(workerCapacityEnv[field as keyof WorkerCapacity] ?? field, message);
}

/** Reads every capacity setting from the environment; unset ones take their defaults. */
export function workerCapacityFromEnv(env: NodeJS.ProcessEnv): WorkerCapacity {
  const input: Record<string, number> = {};
  for (const [key, name] of Object.entries(workerCapacityEnv)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    if (!/^\d+$/.test(raw.trim())) throw new WorkerCapacityError(name, `not a whole number: ${JSON.stringify(raw)}`);
    input[key] = Number(raw.trim());
  }
  return parseWorkerCapacity(input);
}
