// Durations as operators write them ("30s", "5m", "1h", "7d"), parsed by `ms`, in one place so
// the pool spec, claim timeouts, the janitor interval and CLI flags accept the same spellings.
import ms, { type StringValue } from 'ms';

/** Milliseconds, or undefined when `value` is not a finite duration. */
export function parseDuration(value: string): number | undefined {
  let parsed: number | undefined;
  try {
    parsed = ms(value.trim() as StringValue);
  } catch {
    return undefined;
  }
  return typeof parsed === 'number' && Number.isFinite(parsed) ? parsed : undefined;
}
