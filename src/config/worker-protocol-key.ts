// corral's worker-protocol master key (corral.worker/v2, docs/worker-protocol.md): from
// CORRAL_WORKER_PROTOCOL_KEY, 32 bytes as 64 hex digits. Required in production; the embedded
// stack and tests generate one per run (its workers are spawned by the same process that signs).
// A malformed value is a WorkerProtocolKeyError naming the variable, never echoing the value.
import {
  WorkerProtocolKeyError,
  generateWorkerProtocolKey,
  parseWorkerProtocolKey,
  workerProtocolKeyVariable,
} from '../runtime/worker-protocol-proof';

export { WorkerProtocolKeyError, workerProtocolKeyVariable };

export interface WorkerProtocolKeySource {
  env?: NodeJS.ProcessEnv;
  /** `production`: the variable must be set. `embedded`: a fresh key when it is not. */
  mode: 'production' | 'embedded';
}

export function resolveWorkerProtocolKey(source: WorkerProtocolKeySource): Buffer {
  const value = (source.env ?? process.env)[workerProtocolKeyVariable];
  if ((value === undefined || value.trim() === '') && source.mode === 'embedded') return generateWorkerProtocolKey();
  if (value === undefined || value.trim() === '') {
    throw new WorkerProtocolKeyError(
      workerProtocolKeyVariable,
      'is not set (required: it signs every call to a worker)',
    );
  }
  return parseWorkerProtocolKey(value, workerProtocolKeyVariable);
}
