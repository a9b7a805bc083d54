// Heartbeats for activities that work through a list (a refill, a drain, the janitor's pass): on a
// timer, so a slow item does not look like a dead corral worker, and between items, where the
// activity also stops once it is cancelled (a cancellation, or a heartbeat the server refused,
// arrives through the context's signal). Outside an activity (unit tests) every call is a no-op.
import { Context } from '@temporalio/activity';

export interface ProgressHeartbeats {
  /** Between items: heartbeat now, and throw the cancellation's reason once the activity is cancelled. */
  check(): void;
  stop(): void;
}

/** The current activity's context, or undefined outside an activity. */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export function startProgressHeartbeats(
  progress: () => unknown,
  everyMs: number,
  context: Context | undefined = activityContext(),
): ProgressHeartbeats {
  const ticker = context ? setInterval(() => context.heartbeat(progress()), everyMs) : undefined;
  return {
    check() {
      context?.heartbeat(progress());
      if (context?.cancellationSignal.aborted) throw context.cancellationSignal.reason;
    },
    stop() {
      clearInterval(ticker);
    },
  };
}
