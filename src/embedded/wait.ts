// Bounded waiting on an observable event (a port answering, a row appearing). Never a bare
// sleep: each attempt checks the event itself, and the deadline turns a hang into an error.
import { setTimeout as delay } from 'node:timers/promises';

export interface WaitOptions {
  /** What we are waiting for, for the error message. */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
}

export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const result = await check();
      if (result !== undefined && result !== false) return result;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${cause}`);
    }
    await delay(opts.intervalMs ?? 100);
  }
}
