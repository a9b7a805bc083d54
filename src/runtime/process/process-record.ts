// The on-disk record of one process worker: what the runtime and its health prober share.
import type { PodFailureReason, WorkerPodRef } from '../../common';
import type { ProcessIdentity } from './process-identity';

/** The on-disk record of one worker spawn; plain JSON, written atomically. */
export interface WorkerRecord {
  name: string;
  workerId: string;
  pool: string;
  spawnAttempt: number;
  epoch: number;
  image: string;
  port: number;
  /** null: the worker has no health hook; it is ready (and healthy) while its port accepts. */
  healthPath: string | null;
  /** Steady-state probing, like a pod's readinessProbe (absent in records written before it). */
  healthIntervalMs?: number;
  healthFailureThreshold?: number;
  createdAt: string;
  /** When a readiness wait first found the worker ready: from then on its death is a health verdict. */
  readyAt?: string;
  process: ProcessIdentity | null;
  /** A failure known at spawn time (missing executable), reported by the readiness wait. */
  failure: { reason: PodFailureReason; detail: string } | null;
  /** Set before a delete signals the process, like a pod's deletionTimestamp: its death is not a crash. */
  deletionRequestedAt?: string;
}

export function refOfRecord(record: WorkerRecord): WorkerPodRef {
  return { name: record.name, workerId: record.workerId, pool: record.pool, spawnAttempt: record.spawnAttempt };
}
