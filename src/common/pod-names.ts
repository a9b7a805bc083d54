// The name of one spawn of one worker, `<pool>-<workerId>-<spawnAttempt>`: derived, never
// stored alone, so a retried create lands on the same pod and a workflow can name the pod it
// must clean up even when the spawn activity's answer was lost. Pure (workflows import it);
// the runtime validates the result as a DNS label.

export function workerPodName(pool: string, workerId: string, spawnAttempt: number): string {
  return `${pool}-${workerId}-${spawnAttempt}`;
}
