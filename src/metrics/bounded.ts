// Small bounds for metric reads: a deadline on a promise, and a log that cannot flood.

/** Rejects after `ms` unless `work` settles first. */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Calls `log` at most once per `everyMs` (a failing registry must not flood the log every scrape). */
export function throttledLog(log: ((line: string) => void) | undefined, everyMs = 60_000): (line: string) => void {
  let last = -Infinity;
  return (line) => {
    const now = Date.now();
    if (now - last < everyMs) return;
    last = now;
    log?.(line);
  };
}
