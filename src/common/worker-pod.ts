// What workflows, activities and runtimes say about one worker's pod, as plain types: the pod's
// identity and the parts of its spec a pool's settings carry. The runtime validates them
// (src/runtime/worker-pod-spec.ts, whose zod schemas are checked against these types).

/**
 * Where workers run: a pod per worker (`kubernetes`) or a child process per worker (`process`). A
 * pool's spec names one; a corral worker runs one (`--runtime`) and refuses pools of the other.
 */
export const runtimeKinds = ['kubernetes', 'process'] as const;
export type RuntimeKind = (typeof runtimeKinds)[number];

/** Identifies one spawn of one worker; everything a runtime needs to find it again. */
export interface WorkerPodRef {
  workerId: string;
  pool: string;
  spawnAttempt: number;
  /** The pod (or process directory) name: `<pool>-<workerId>-<spawnAttempt>`. */
  name: string;
}

/** One env entry's value: a literal, or a reference to a Secret's key (never its value: decision 0021). */
export type WorkerEnvValue = string | { valueFrom: { secretKeyRef: { name: string; key: string } } };

export interface WorkerResourceAmounts {
  cpuMillis: number;
  memoryMiB: number;
}

export interface WorkerResources {
  requests: WorkerResourceAmounts;
  limits: WorkerResourceAmounts;
}
