// Takes back grants whose answer never reached their caller (decision 0012): every corral
// worker runs one loop; each pass reclaims up to a batch of grants older than the ack window
// (corral_reclaim_unacknowledged, SKIP LOCKED, so replicas never take the same one) and hands the
// workers their new epoch. A worker's unacknowledged claim therefore ends within
// ackWindow + interval of its grant, whichever corral process crashed. A registry outage only
// slows it: the loop backs off (up to 30 s) and goes on until the process stops.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClaimStore } from '../registry/claim-store';
import type { ClaimService } from './claim-service';

export const defaultReclaimIntervalMs = 1_000;
const batch = 100;
const maxBackoffMs = 30_000;

export function startClaimReclaimer(deps: {
  claims: ClaimStore;
  service: ClaimService;
  intervalMs?: number;
  log?: (line: string) => void;
}): { stop(): Promise<void> } {
  const stopping = new AbortController();
  const intervalMs = deps.intervalMs ?? defaultReclaimIntervalMs;
  const loop = (async () => {
    let failures = 0;
    while (!stopping.signal.aborted) {
      try {
        const reclaimed = await deps.claims.reclaimUnacknowledged(batch);
        failures = 0;
        if (reclaimed.length > 0) {
          deps.log?.(`reclaimed ${reclaimed.length} unacknowledged claim(s)`);
          await deps.service.afterReclaim(reclaimed);
          if (reclaimed.length === batch) continue; // more are due: no pause
        }
      } catch (err) {
        failures++;
        deps.log?.(
          `reclaiming claims failed (${failures} in a row): ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      const pause = failures === 0 ? intervalMs : Math.min(maxBackoffMs, intervalMs * 2 ** failures);
      await sleep(pause, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  })();
  return {
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
