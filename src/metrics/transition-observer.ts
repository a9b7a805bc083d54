// Metrics derived from registry transitions. Workflow code records nothing (its histories are
// replayed), so the activity that performs a transition reports it here once it has applied, and
// the events that only the workflow decides (a failed spawn, a zombie, the end of an activation,
// a drain, a claim) are read off the transition itself: its from/to states, operation and
// failure reason. Counted on `transitioned` only, so each event counts once: a fence miss or a
// retried attempt does not apply, hence does not count (a store error whose write did apply is
// the one, rare, undercount). Durations need the start of the state being left, which the
// registry's audit trail (or the claim request) holds: read after the transition, off the
// activity's path, and dropped if that read fails.
import type { LifecycleOperation, WorkerState } from '../common';
import type { WorkerMetrics } from './worker-metrics';

export interface AppliedTransition {
  /** The state the caller expected to leave (null if it allowed several). */
  from: WorkerState | null;
  to: WorkerState;
  operation: LifecycleOperation;
  /** The row after the transition. */
  worker: {
    id: string;
    pool: string;
    image: string;
    failureReason: string | null;
    claimRequestId: string | null;
    stateSince: Date;
  };
}

export interface DurationSource {
  secondsInState(workerId: string, state: WorkerState, until: Date): Promise<number | null>;
}

export interface TransitionObserver {
  /** Never throws; returns once the derived metrics are recorded (for tests; callers need not wait). */
  observe(transition: AppliedTransition): Promise<void>;
}

const serving: readonly WorkerState[] = ['idle', 'claimed', 'hot_idle'];
const handOverFailures = ['activation_failed', 'type_mismatch'];

export function createTransitionObserver(deps: {
  workers: WorkerMetrics;
  durations?: DurationSource;
}): TransitionObserver {
  const { workers, durations } = deps;

  async function timed(read: () => Promise<number | null>, record: (seconds: number) => void): Promise<void> {
    if (!durations) return;
    try {
      const seconds = await read();
      if (seconds !== null && Number.isFinite(seconds)) record(seconds);
    } catch {
      // A metric is not worth failing (or slowing) a transition for.
    }
  }

  return {
    async observe({ from, to, operation, worker }) {
      const tasks: Promise<void>[] = [];
      try {
        const { image, failureReason: reason } = worker;
        // A spawn attempt that failed: respawned, or given up before the worker ever served.
        if (operation === 'respawn' || (operation === 'mark_lost' && (from === 'spawning' || from === 'activating'))) {
          workers.countSpawnFailure(reason, image);
        }
        // Activation: leaving `activating` for service is a success, for a respawn or lost a failure.
        if (from === 'activating') {
          if (to === 'idle' || to === 'claimed') {
            tasks.push(
              timed(
                () => durations!.secondsInState(worker.id, 'activating', worker.stateSince),
                (s) => workers.observeActivation(image, s),
              ),
            );
          } else if (to === 'spawning' || to === 'lost') {
            workers.countActivationFailure(image);
          }
        }
        // A serving worker found dead or unresponsive is a zombie; one that would not take its
        // identity at a hand-over is an activation failure too.
        if (operation === 'mark_lost' && from !== null && serving.includes(from)) {
          workers.countZombie(reason, image);
          if (handOverFailures.includes(reason ?? '')) workers.countActivationFailure(image);
        }
        if (from === 'draining' && to === 'retired') {
          tasks.push(
            timed(
              () => durations!.secondsInState(worker.id, 'draining', worker.stateSince),
              (s) => workers.observeDrain(s),
            ),
          );
        }
      } catch {
        // Never let a metric fail a transition.
      }
      await Promise.all(tasks);
    },
  };
}
