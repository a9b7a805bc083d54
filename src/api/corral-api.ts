// The corral API with everything behind it, as one unit a `corral worker` (or a test, or the
// bench) starts: the claim and pool services, the workflow notifier, the reclaimer of
// unacknowledged claims and the HTTP server. Closing stops taking requests first, then the
// reclaimer, then sends what notifications are pending.
import type { Client } from '@temporalio/client';
import type { RuntimeKind } from '../common';
import type { PoolMetrics } from '../metrics/pool-metrics';
import type { ClaimStore } from '../registry/claim-store';
import type { WorkerLifecycleStore } from '../registry/lifecycle-store';
import type { PoolStore } from '../registry/pool-store';
import { buildCorralApi } from './api-server';
import { startClaimReclaimer } from './claim-reclaimer';
import { ClaimService } from './claim-service';
import { PoolService } from './pool-service';
import { WorkflowNotifier } from './workflow-notifier';

export interface CorralApiOptions {
  claims: ClaimStore;
  workers: WorkerLifecycleStore;
  pools: PoolStore;
  temporal: Client;
  /** The task queue `corral worker` polls (pool and cold-path worker workflows start there). */
  taskQueue: string;
  /** The runtime `corral worker` spawns workers on: pools applied for the other one are refused. */
  runtime?: RuntimeKind;
  port: number;
  host: string;
  /** Bearer tokens; null: no authentication (callers allow that on loopback only). */
  tokens: string[] | null;
  ackWindowMs: number;
  /** The janitor's retention period, named when a worker's trail has aged out (default 7 days). */
  retentionMs?: number;
  /** Coalescing of workflow notifications (WorkflowNotifier); defaults 500 ms quiet, 1.5 s at most. */
  notify?: { quietMs?: number; maxDelayMs?: number };
  reclaimIntervalMs?: number;
  handOverTimeoutMs?: number;
  /** As ClaimServiceOptions': signs hand-overs (corral.worker/v2). */
  workerProtocolKey?: Buffer;
  metrics?: PoolMetrics;
  log?: (line: string) => void;
}

export interface RunningCorralApi {
  url: string;
  service: ClaimService;
  notifier: WorkflowNotifier;
  close(): Promise<void>;
}

export async function startCorralApi(o: CorralApiOptions): Promise<RunningCorralApi> {
  const notifier = new WorkflowNotifier(o.temporal, { ...o.notify, log: o.log });
  const service = new ClaimService({
    claims: o.claims,
    workers: o.workers,
    pools: o.pools,
    temporal: o.temporal,
    taskQueue: o.taskQueue,
    notifier,
    ackWindowMs: o.ackWindowMs,
    handOverTimeoutMs: o.handOverTimeoutMs,
    workerProtocolKey: o.workerProtocolKey,
    metrics: o.metrics,
    log: o.log,
  });
  const app = await buildCorralApi({
    claims: service,
    pools: new PoolService(o.pools, o.temporal, o.taskQueue, o.runtime),
    workers: o.workers,
    tokens: o.tokens,
    retentionMs: o.retentionMs,
    log: o.log,
  });
  await app.listen({ port: o.port, host: o.host });
  const reclaimer = startClaimReclaimer({
    claims: o.claims,
    service,
    intervalMs: o.reclaimIntervalMs,
    log: o.log,
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  return {
    url: `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`,
    service,
    notifier,
    async close() {
      await app.close();
      await reclaimer.stop();
      await service.close();
      await notifier.close();
    },
  };
}
