// Task queues: the bulkheads of a corral worker. Workflows and quick work poll the base queue;
// pod runtime calls (spawn, readiness, delete) and the janitor each have their own
// queue derived from it, with their own activity slots, so a burst of one kind of work cannot
// starve another (docs/decisions/0013-fleet-scale.md). Workflow-safe: workflows derive the names
// of the queues they schedule onto from their own task queue.

/** The base task queue every corral worker polls (workflows, pool and registry work). */
export const corralTaskQueue = 'corral';

/** Spawns, readiness waits and deletes of worker pods. */
export function runtimeTaskQueueOf(base: string): string {
  return `${base}-runtime`;
}

/** The janitor's reconciliation pass. */
export function janitorTaskQueueOf(base: string): string {
  return `${base}-janitor`;
}
