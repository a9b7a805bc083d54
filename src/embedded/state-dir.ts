// Where corral keeps local state when no option says otherwise. The container image sets
// CORRAL_STATE_DIR: its /app is root-owned (and read-only under the Kubernetes manifests).
import path from 'node:path';
import { repoRoot } from './tools';

/** CORRAL_STATE_DIR, else `.corral/` in the checkout: `corral dev`'s data, the endpoints file, process-runtime workers, logs. */
export function stateDir(): string {
  return process.env.CORRAL_STATE_DIR || path.join(repoRoot, '.corral');
}
