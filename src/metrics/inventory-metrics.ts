// corral_workers{pool,image,state}: live workers, read from the registry at scrape time.
//
// The registry is the one place that knows every worker, so every corral worker replica reports
// the same registry-wide numbers: dashboards and alerts take max() over replicas, never sum().
// A scrape whose registry read fails or times out reports no series for it (absent, not stale:
// alert with absent()), and the error is logged at most once a minute.
import { Gauge, type Registry } from 'prom-client';
import { nonTerminalStates } from '../common';
import { throttledLog, withTimeout } from './bounded';
import type { LiveWorkerCount } from './registry-readings';

export interface WorkerInventorySource {
  liveWorkerCounts(): Promise<LiveWorkerCount[]>;
}

export function createWorkerInventoryMetrics(
  register: Registry,
  source: WorkerInventorySource,
  opts: { timeoutMs?: number; log?: (line: string) => void } = {},
): void {
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const warn = throttledLog(opts.log);
  new Gauge({
    name: 'corral_workers',
    help: 'Live workers by pool, image and state, from the registry at scrape time (registry-wide: every replica reports the same numbers; aggregate with max, not sum).',
    labelNames: ['pool', 'image', 'state'] as const,
    registers: [register],
    async collect() {
      this.reset();
      let counts: LiveWorkerCount[];
      try {
        counts = await withTimeout(source.liveWorkerCounts(), timeoutMs, 'reading live workers');
      } catch (err) {
        warn(`corral_workers not reported: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      // Every (pool, image) seen reports every live state, 0 where nobody is.
      for (const { pool, image } of counts) {
        for (const state of nonTerminalStates) this.set({ pool, image, state }, 0);
      }
      for (const { pool, image, state, count } of counts) {
        if (state !== null) this.set({ pool, image, state }, count);
      }
    },
  });
}
