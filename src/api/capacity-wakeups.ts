// Wakes the claims waiting on a pool in this process when this process frees capacity there (a
// release): they ask the registry again at once instead of at their next poll. Claims waiting on
// other replicas, and capacity from elsewhere (refills, retirements), are found by polling.
export class CapacityWakeups {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Resolves after `ms`, when `wake(pool)` is called, or when `signal` aborts, whichever is first. */
  wait(pool: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.waiting.get(pool) ?? new Set<() => void>();
      this.waiting.set(pool, waiters);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        waiters.delete(done);
        if (waiters.size === 0 && this.waiting.get(pool) === waiters) this.waiting.delete(pool);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
  }

  wake(pool: string): void {
    for (const done of [...(this.waiting.get(pool) ?? [])]) done();
  }
}
