/** Percentiles (nearest-rank) of a sample, rounded to 0.01. */
export function summarise(samples: number[]): {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
} {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    n: sorted.length,
    min: round(sorted[0]),
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    max: round(at(1)),
  };
}

/** monitorEventLoopDelay's sampling interval in the benches. */
export const loopDelayResolutionMs = 10;

/** Event-loop lag: timer lateness beyond the sampling interval (the histogram records interval + lateness), in ms. */
export function lag(h: { percentile(p: number): number; max: number }): { p50: number; p99: number; max: number } {
  const late = (ns: number) => Math.round(Math.max(0, ns / 1e6 - loopDelayResolutionMs) * 100) / 100;
  return { p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max) };
}
