// The corral side of bench/claims.ts, in a process of its own so its CPU is its own: a corral
// worker (Temporal Worker with every activity) and the corral API on 127.0.0.1 without tokens,
// wired as `corral worker` wires them (src/workers/corral-worker.ts: one pg pool with the
// product's default 10 connections, one Temporal client for activities and the API), minus the
// /metrics server and the janitor schedule. Instrumented for the bench, without changing what
// runs: per claim and per release, the time in the registry transaction (ClaimStore.claim /
// .release), in the hand-over (the PoolMetrics hand-over observation, attributed through
// AsyncLocalStorage) and in ClaimService as a whole; the acknowledgement batches; the event
// loop's delay; what the API logged.
// Started by bench/claims.ts with one JSON argument; talks over IPC:
//   → {type:'ready', apiUrl}; ← {type:'reset'} → {type:'reset-done'};
//   ← {type:'stats'} → {type:'stats', ...}; ← {type:'notify', on} → {type:'notify-done'} (a diagnostic:
//   off, the API's workflow signals are counted and dropped); ← {type:'stop'} → exits.
import { AsyncLocalStorage } from 'node:async_hooks';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createCorralActivities } from '../src/activities';
import { startCorralApi } from '../src/api/corral-api';
import { repoRoot } from '../src/embedded/tools';
import { createLifecycleMetrics } from '../src/metrics/lifecycle-metrics';
import { createPoolMetrics, type PoolMetrics } from '../src/metrics/pool-metrics';
import { ClaimStore } from '../src/registry/claim-store';
import { createRegistryPool } from '../src/registry/database';
import { WorkerLifecycleStore } from '../src/registry/lifecycle-store';
import { PoolStore } from '../src/registry/pool-store';
import { ProcessPodRuntime } from '../src/runtime/process/process-runtime';
import { lag, loopDelayResolutionMs, summarise } from './stats';

export interface CorralProcessConfig {
  temporalAddress: string;
  namespace: string;
  databaseUrl: string;
  taskQueue: string;
  stateDir: string;
  claimAckWindowMs: number;
  /** As the e2e harness (test/harness/pool-e2e.ts); the SDK's default is lower. */
  maxConcurrentActivities: number;
}

/** One ClaimService call, as this process spent it. */
interface Sample {
  sqlMs: number;
  handOverMs: number;
  handOvers: number;
  totalMs: number;
  failed: boolean;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

const mean = (xs: number[]) => round2(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));

async function main() {
  const config = JSON.parse(process.argv[2] ?? '{}') as CorralProcessConfig;
  const log = (line: string) => console.error(`[bench:corral] ${line}`);
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
  });

  const current = new AsyncLocalStorage<Sample>();
  let claims: Sample[] = [];
  let releases: Sample[] = [];
  let acks = { batches: 0, claims: 0, ms: 0 };
  let apiLog: Record<string, number> = {};
  const noteApiLog = (line: string) => {
    log(line);
    // Counted by shape: ids and epochs stripped, so the same problem is one key.
    const key = line
      .replace(/\b[0-9a-f]{8,}\b/gi, '…')
      .replace(/\d+/g, 'N')
      .slice(0, 160);
    apiLog[key] = (apiLog[key] ?? 0) + 1;
  };

  class TimedClaimStore extends ClaimStore {
    override async claim(input: Parameters<ClaimStore['claim']>[0]) {
      const t0 = performance.now();
      try {
        return await super.claim(input);
      } finally {
        const sample = current.getStore();
        if (sample) sample.sqlMs += performance.now() - t0;
      }
    }
    override async release(input: Parameters<ClaimStore['release']>[0]) {
      const t0 = performance.now();
      try {
        return await super.release(input);
      } finally {
        const sample = current.getStore();
        if (sample) sample.sqlMs += performance.now() - t0;
      }
    }
    override async acknowledge(batch: { pool: string; requestId: string }[]) {
      const t0 = performance.now();
      try {
        await super.acknowledge(batch);
      } finally {
        acks.batches++;
        acks.claims += batch.length;
        acks.ms += performance.now() - t0;
      }
    }
  }

  const db = createRegistryPool({ connectionString: config.databaseUrl });
  const metricsRegistry = new Registry();
  const lifecycleMetrics = createLifecycleMetrics(metricsRegistry);
  const store = new WorkerLifecycleStore(db, lifecycleMetrics);
  const pools = new PoolStore(db);
  const claimStore = new TimedClaimStore(db, lifecycleMetrics);
  const poolMetrics = createPoolMetrics(metricsRegistry);
  const apiMetrics: PoolMetrics = {
    ...poolMetrics,
    observeHandOver(pool, seconds) {
      const sample = current.getStore();
      if (sample) {
        sample.handOverMs += seconds * 1000;
        sample.handOvers++;
      }
      poolMetrics.observeHandOver(pool, seconds);
    },
  };
  const runtime = new ProcessPodRuntime({ stateDir: config.stateDir, workDir: repoRoot });

  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const clientConnection = await Connection.connect({ address: config.temporalAddress });
  const temporal = new Client({ connection: clientConnection, namespace: config.namespace });
  // The API's own Client on the same connection (`corral worker` shares one; a Client is a thin
  // wrapper), so the signals its notifier sends can be counted, and dropped for the diagnostic.
  const apiTemporal = new Client({ connection: clientConnection, namespace: config.namespace });
  let notify = true;
  let signals = { worker: 0, pool: 0, dropped: 0 };
  const getHandle = apiTemporal.workflow.getHandle.bind(apiTemporal.workflow);
  apiTemporal.workflow.getHandle = ((...args: Parameters<typeof getHandle>) => {
    const handle = getHandle(...args);
    const signal = handle.signal.bind(handle);
    const kind = args[0].endsWith('/pool') ? 'pool' : 'worker';
    handle.signal = (async (...signalArgs: Parameters<typeof signal>) => {
      if (!notify) {
        signals.dropped++;
        return;
      }
      signals[kind]++;
      await signal(...signalArgs);
    }) as typeof handle.signal;
    return handle;
  }) as typeof apiTemporal.workflow.getHandle;
  const worker = await Worker.create({
    connection,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    workflowsPath: require.resolve('../src/workflows'),
    activities: createCorralActivities({
      store,
      claims: claimStore,
      claimAckWindowMs: config.claimAckWindowMs,
      runtime,
      temporal,
      pools,
      poolMetrics,
    }),
    maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
    maxConcurrentLocalActivityExecutions: config.maxConcurrentActivities,
  });
  const running = worker.run();
  const api = await startCorralApi({
    claims: claimStore,
    workers: store,
    pools,
    temporal: apiTemporal,
    taskQueue: config.taskQueue,
    port: 0,
    host: '127.0.0.1',
    tokens: null,
    ackWindowMs: config.claimAckWindowMs,
    metrics: apiMetrics,
    log: noteApiLog,
  });

  // Every claim and release the API serves, timed as a whole with its parts attributed to it.
  const service = api.service;
  const timed = <A extends unknown[], R>(into: () => Sample[], call: (...args: A) => Promise<R>) => {
    return (...args: A): Promise<R> => {
      const sample: Sample = { sqlMs: 0, handOverMs: 0, handOvers: 0, totalMs: 0, failed: false };
      return current.run(sample, async () => {
        const t0 = performance.now();
        try {
          return await call(...args);
        } catch (err) {
          sample.failed = true;
          throw err;
        } finally {
          sample.totalMs = performance.now() - t0;
          into().push(sample);
        }
      });
    };
  };
  service.claim = timed(() => claims, service.claim.bind(service));
  service.release = timed(() => releases, service.release.bind(service));

  const loopDelay = monitorEventLoopDelay({ resolution: loopDelayResolutionMs });
  loopDelay.enable();

  const handOverHistogram = async () => {
    const metric = (await metricsRegistry.getMetricsAsJSON()).find(
      (m) => m.name === 'corral_claim_handover_duration_seconds',
    );
    let count = 0;
    let sum = 0;
    const buckets: Record<string, number> = {};
    for (const v of metric?.values ?? []) {
      const name = (v as { metricName?: string }).metricName ?? '';
      if (name.endsWith('_count')) count += v.value;
      else if (name.endsWith('_sum')) sum += v.value;
      else if (name.endsWith('_bucket')) {
        const le = String(v.labels.le);
        const key = le === '+Inf' ? '+Inf' : `${round2(Number(le) * 1000)}`;
        buckets[key] = (buckets[key] ?? 0) + v.value;
      }
    }
    return { count, mean_ms: round2((sum * 1000) / Math.max(1, count)), cumulative_le_ms: buckets };
  };

  const part = (samples: Sample[]) => {
    const ok = samples.filter((s) => !s.failed);
    const other = ok.map((s) => s.totalMs - s.sqlMs - s.handOverMs);
    return {
      n: samples.length,
      failed: samples.length - ok.length,
      hand_overs: ok.reduce((a, s) => a + s.handOvers, 0),
      mean_ms: {
        total: mean(ok.map((s) => s.totalMs)),
        sql: mean(ok.map((s) => s.sqlMs)),
        hand_over: mean(ok.map((s) => s.handOverMs)),
        rest: mean(other),
      },
      total_ms: summarise(ok.map((s) => s.totalMs)),
      sql_ms: summarise(ok.map((s) => s.sqlMs)),
      hand_over_ms: summarise(ok.map((s) => s.handOverMs)),
    };
  };

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    await api.close();
    worker.shutdown();
    await running;
    await runtime.close();
    await connection.close();
    await clientConnection.close();
    await db.end();
    process.exit(0);
  };

  process.on('message', (message: { type?: string }) => {
    switch (message.type) {
      case 'reset':
        claims = [];
        releases = [];
        acks = { batches: 0, claims: 0, ms: 0 };
        apiLog = {};
        signals = { worker: 0, pool: 0, dropped: 0 };
        metricsRegistry.resetMetrics();
        loopDelay.reset();
        process.send?.({ type: 'reset-done' });
        break;
      case 'stats':
        void handOverHistogram().then((histogram) =>
          process.send?.({
            type: 'stats',
            claim: part(claims),
            release: part(releases),
            acknowledgements: { ...acks, ms: round2(acks.ms) },
            signals_sent: signals,
            hand_over_histogram: histogram,
            event_loop_lag_ms: lag(loopDelay),
            api_log: apiLog,
          }),
        );
        break;
      case 'notify':
        notify = (message as { on?: boolean }).on !== false;
        process.send?.({ type: 'notify-done' });
        break;
      case 'stop':
        void stop();
        break;
    }
  });
  process.on('SIGTERM', () => void stop());
  process.on('disconnect', () => void stop());
  process.send?.({ type: 'ready', apiUrl: api.url, pid: process.pid });
  log(`corral worker polling ${config.taskQueue}; API on ${api.url}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
