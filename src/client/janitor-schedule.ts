// The janitor's Temporal Schedule. Every `corral worker` replica ensures it at start-up: create
// it, or, if it exists, bring its spec, action and policies to what this version of corral wants
// (last writer wins; all replicas want the same). An operator's pause and note are kept. The
// janitor's policy (grace, retention) travels in the schedule's workflow input, so one value
// applies to every pass whichever replica runs it, and the Web UI shows it.
import ms from 'ms';
import { parseDuration } from '../config/duration';
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleHandle,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import { janitorWorkflowType, type CorralWorkflows } from '../common';

export const janitorScheduleId = 'corral/janitor';
export const defaultJanitorInterval = '5m';
/** More often than this only adds load: a pass reads the whole inventory and registry. */
const minIntervalMs = 60_000;
const maxIntervalMs = 24 * 3_600_000;
const maxGraceMs = 7 * 24 * 3_600_000;

const hourMs = 3_600_000;
/**
 * How long retired and lost workers (with their audit trail) and ended claims are kept before the
 * janitor deletes them (docs/decisions/0015-registry-retention-and-janitor-at-scale.md). One
 * setting for every replica: `corral worker` reads it from `env` and passes it to the schedule
 * (the janitor's input) and to the corral API (which names it when a worker's trail is gone).
 */
export const janitorRetention = {
  env: 'CORRAL_RETENTION',
  default: '7d',
  defaultMs: 7 * 24 * hourMs,
  /** Below an hour `corral history` of a worker that just ended could already come up empty. */
  minMs: hourMs,
  maxMs: 3_650 * 24 * hourMs,
} as const;

/**
 * A retention period as operators write durations (`"7d"`, `"36h"`), within the floor and the
 * ceiling. Throws JanitorScheduleOptionsError naming `field` (the caller's name for the setting,
 * e.g. `CORRAL_RETENTION`).
 */
export function parseRetention(value: string, field = 'retention'): number {
  const parsed = parseDuration(value);
  if (parsed === undefined || !Number.isInteger(parsed)) {
    throw new JanitorScheduleOptionsError(field, `not a duration: ${JSON.stringify(value)} (e.g. "7d", "36h")`);
  }
  if (parsed < janitorRetention.minMs || parsed > janitorRetention.maxMs) {
    throw new JanitorScheduleOptionsError(
      field,
      `must be between ${ms(janitorRetention.minMs, { long: true })} and ${ms(janitorRetention.maxMs)}, got ${JSON.stringify(value)}`,
    );
  }
  return parsed;
}

export interface JanitorScheduleOptions {
  /** The task queue `corral worker` polls (where janitorWorkflow and its activity are registered). */
  taskQueue: string;
  /** How often a pass runs, as Temporal writes durations (`"5m"`, `"1h"`); default 5 minutes. */
  interval?: string;
  /** Rows changed more recently than this are left alone; default the activity's (60 s). */
  graceMs?: number;
  /**
   * How long terminal workers, their trail and ended claims are kept, in ms (`parseRetention` reads
   * the setting); default `janitorRetention.defaultMs`, from `minMs` (1 hour) to `maxMs`.
   */
  retentionMs?: number;
  /**
   * Schedule ids are global to a namespace. Only tests that share one dev server across parallel
   * files set this; the workflow id of each run is `<scheduleId>/run` (plus Temporal's timestamp).
   */
  scheduleId?: string;
  /** Bound on the create/update calls together (default 10 s), so a worker's start cannot hang here. */
  timeoutMs?: number;
}

/** A schedule option that cannot work, refused before any call to Temporal. */
export class JanitorScheduleOptionsError extends Error {
  override readonly name = 'JanitorScheduleOptionsError';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`invalid janitor schedule ${field}: ${reason}`);
  }
}

function parseInterval(value: string): number {
  const parsed = parseDuration(value);
  if (parsed === undefined) {
    throw new JanitorScheduleOptionsError('interval', `not a duration: ${JSON.stringify(value)} (e.g. "5m")`);
  }
  if (parsed < minIntervalMs || parsed > maxIntervalMs) {
    throw new JanitorScheduleOptionsError('interval', `must be between ${ms(minIntervalMs)} and ${ms(maxIntervalMs)}`);
  }
  return parsed;
}

function desiredSchedule(opts: JanitorScheduleOptions) {
  if (!opts.taskQueue) throw new JanitorScheduleOptionsError('taskQueue', 'must not be empty');
  const every = parseInterval(opts.interval ?? defaultJanitorInterval);
  const { graceMs } = opts;
  if (graceMs !== undefined && (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > maxGraceMs)) {
    throw new JanitorScheduleOptionsError('graceMs', `must be a whole number of milliseconds from 0 to ${maxGraceMs}`);
  }
  const retentionMs = opts.retentionMs ?? janitorRetention.defaultMs;
  if (!Number.isInteger(retentionMs) || retentionMs < janitorRetention.minMs || retentionMs > janitorRetention.maxMs) {
    throw new JanitorScheduleOptionsError(
      'retentionMs',
      `must be a whole number of milliseconds from ${janitorRetention.minMs} (1 hour) to ${janitorRetention.maxMs}`,
    );
  }
  const scheduleId = opts.scheduleId ?? janitorScheduleId;
  const action = {
    type: 'startWorkflow',
    workflowType: janitorWorkflowType,
    workflowId: `${scheduleId}/run`,
    // The workflow's queue; its activities go to the janitor's own queue derived from it.
    taskQueue: opts.taskQueue,
    args: [{ ...(graceMs === undefined ? {} : { graceMs }), retentionMs }],
    // Overlap SKIP means a stuck run would block every later one: bound it. Covers the
    // reconcile activity's three attempts and retention's two, each with its schedule-to-start
    // and start-to-close bounds and backoff (src/workflows/janitor.ts).
    workflowRunTimeout: '30m',
  } satisfies ScheduleOptionsStartWorkflowAction<CorralWorkflows['janitorWorkflow']>;
  return {
    scheduleId,
    spec: { intervals: [{ every }] },
    action,
    policies: {
      // One pass at a time: a slow pass makes the next one skip, never run beside it.
      overlap: ScheduleOverlapPolicy.SKIP,
      // After an outage one catch-up pass is enough; older missed ones would find the same things.
      catchupWindow: '1m',
      pauseOnFailure: false,
    },
  };
}

/**
 * Creates the janitor's schedule, or updates an existing one to this spec. Idempotent, and safe
 * when many replicas start at once: the losers of the create race update to the same spec.
 */
export async function ensureJanitorSchedule(
  client: Client,
  opts: JanitorScheduleOptions,
): Promise<{ handle: ScheduleHandle; created: boolean }> {
  const { scheduleId, spec, action, policies } = desiredSchedule(opts);
  // The deadline applies to every gRPC call made inside (create, then describe + update).
  return await client.withDeadline(Date.now() + (opts.timeoutMs ?? 10_000), async () => {
    try {
      const handle = await client.schedule.create({
        scheduleId,
        spec,
        action,
        policies,
        state: {
          note: 'managed by corral worker: reconciles stranded pods, secrets and registry rows; deletes records past the retention period',
        },
      });
      return { handle, created: true };
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    }
    const handle = client.schedule.getHandle(scheduleId);
    // Keep the current state (an operator may have paused it, with a note saying why).
    await handle.update((current) => ({ ...current, spec, action, policies }));
    return { handle, created: false };
  });
}
