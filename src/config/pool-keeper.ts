// The pool keeper's one setting: how often every `corral worker` makes sure each active or
// draining pool's workflow is running (docs/decisions/0016-controllers-never-fail.md).
import { parseDuration } from './duration';

export const poolCheckIntervalSetting = {
  env: 'CORRAL_POOL_CHECK_INTERVAL',
  default: '30s',
  /** Below this the keeper's describes would cost more than the restarts they buy. */
  floorMs: 1_000,
  ceilingMs: 3_600_000,
} as const;

/** The setting is not a duration, or out of range; named by its environment variable. */
export class PoolKeeperConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = 'PoolKeeperConfigError';
  }
}

/** Checks a check period given in milliseconds (the same bounds as the environment setting). */
export function checkPoolCheckIntervalMs(ms: number, setting: string = poolCheckIntervalSetting.env): number {
  const { floorMs, ceilingMs } = poolCheckIntervalSetting;
  if (!Number.isFinite(ms) || ms < floorMs) throw new PoolKeeperConfigError(setting, `must be at least ${floorMs} ms`);
  if (ms > ceilingMs) throw new PoolKeeperConfigError(setting, `must be at most ${ceilingMs} ms (1h)`);
  return ms;
}

/** `CORRAL_POOL_CHECK_INTERVAL` ("30s", "2m"), default 30 s. */
export function poolCheckIntervalFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env[poolCheckIntervalSetting.env];
  if (raw === undefined || raw.trim() === '') return parseDuration(poolCheckIntervalSetting.default)!;
  const ms = parseDuration(raw);
  if (ms === undefined) {
    throw new PoolKeeperConfigError(poolCheckIntervalSetting.env, `not a duration: ${JSON.stringify(raw)} (e.g. 30s)`);
  }
  return checkPoolCheckIntervalMs(ms);
}
