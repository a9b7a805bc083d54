// Every activity `corral worker` registers, built from the registry store and the pod runtime it
// was configured with. Workflows see only the types (ESLint keeps implementations out).
import type { WorkerLifecycleStore } from '../registry/lifecycle-store';
import type { PodRuntime } from '../runtime/pod-runtime';
import { createHealthActivities } from './health-activities';
import { createRegistryActivities } from './registry-activities';
import { createRuntimeActivities } from './runtime-activities';

export function createCorralActivities(deps: {
  store: WorkerLifecycleStore;
  runtime: PodRuntime;
  heartbeatIntervalMs?: number;
}) {
  return {
    ...createRegistryActivities(deps.store),
    ...createRuntimeActivities(deps.runtime, { heartbeatIntervalMs: deps.heartbeatIntervalMs }),
    ...createHealthActivities(deps.runtime),
  };
}

export type CorralActivities = ReturnType<typeof createCorralActivities>;
