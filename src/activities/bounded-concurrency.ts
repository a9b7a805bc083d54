// Fleet-sized loops inside one activity (start 1,000 workflows, ask 1,000 workers to drain) run
// with a bounded number of calls in flight: fast, without flooding Temporal or the registry.

/** Runs `work` over `items` with at most `concurrency` in flight; `beforeEach` may throw to stop (cancellation). */
export async function forEachBounded<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
  beforeEach: () => void = () => undefined,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      beforeEach();
      await work(items[next++]!);
    }
  });
  await Promise.all(lanes);
}
