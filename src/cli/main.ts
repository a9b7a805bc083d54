// The `corral` command. Sub-commands are thin: they parse and validate, then call the modules
// that do the work, so the same behaviour is reachable from tests and the TypeScript client.
import { Command, InvalidArgumentError } from 'commander';
import path from 'node:path';
import { startEmbeddedStack } from '../embedded/stack';
import { repoRoot } from '../embedded/tools';
import { migrateRegistry } from '../registry/migrate';
import { runCorralWorker } from '../workers/corral-worker';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`not a TCP port: ${value}`);
  return n;
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`environment variable ${name} is not set`);
  }
  return value;
}

const program = new Command('corral')
  .description('Warm, fenced pools of worker pods for a multi-tenant control plane, on Temporal.')
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => write(str) });

program
  .command('worker')
  .description('run a corral worker: polls Temporal for corral workflows and activities')
  .option('--temporal-address <host:port>', 'Temporal frontend (env TEMPORAL_ADDRESS)')
  .option('--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE)')
  .option('--task-queue <name>', 'the task queue to poll (env CORRAL_TASK_QUEUE)')
  .option('--runtime <process|kubernetes>', 'where worker pods run (env CORRAL_RUNTIME)')
  .option(
    '--process-state-dir <dir>',
    'process runtime: where worker processes keep their state (env CORRAL_PROCESS_STATE_DIR)',
  )
  .option(
    '--kube-namespace <name>',
    'kubernetes runtime: the namespace for pods and secrets (env CORRAL_KUBE_NAMESPACE)',
  )
  .action(
    async (opts: {
      temporalAddress?: string;
      namespace?: string;
      taskQueue?: string;
      runtime?: string;
      processStateDir?: string;
      kubeNamespace?: string;
    }) => {
      const temporalAddress = opts.temporalAddress ?? requiredEnv('TEMPORAL_ADDRESS');
      const namespace = opts.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default';
      const runtimeKind = opts.runtime ?? process.env.CORRAL_RUNTIME ?? 'process';
      const runtime =
        runtimeKind === 'kubernetes'
          ? { runtime: runtimeKind, namespace: opts.kubeNamespace ?? requiredEnv('CORRAL_KUBE_NAMESPACE') }
          : {
              runtime: runtimeKind,
              stateDir:
                opts.processStateDir ??
                process.env.CORRAL_PROCESS_STATE_DIR ??
                path.join(repoRoot, '.corral', 'workers'),
            };
      await runCorralWorker({
        temporalAddress,
        namespace,
        taskQueue: opts.taskQueue ?? process.env.CORRAL_TASK_QUEUE,
        runtime: runtime as Parameters<typeof runCorralWorker>[0]['runtime'],
        databaseUrl: requiredEnv('DATABASE_URL'),
        log: (line) => console.log(line),
        onReady: () => {
          console.log(`corral worker ready: polling ${temporalAddress} namespace ${namespace}`);
          process.send?.({ type: 'ready' });
        },
      });
    },
  );

program
  .command('migrate')
  .description('apply registry schema migrations to DATABASE_URL (also done at worker start)')
  .action(async () => {
    const { applied } = await migrateRegistry(requiredEnv('DATABASE_URL'));
    console.log(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'schema up to date');
  });

program
  .command('dev')
  .description('run corral on embedded defaults: Temporal dev server + Web UI, embedded Postgres, one worker')
  .option('--state-dir <dir>', 'where Temporal and Postgres keep their data', path.join(repoRoot, '.corral'))
  .option('--temporal-port <port>', 'Temporal frontend port', port, 7233)
  .option('--ui-port <port>', 'Temporal Web UI port', port, 8233)
  .option('--postgres-port <port>', 'Postgres port', port, 5433)
  .action(async (opts: { stateDir: string; temporalPort: number; uiPort: number; postgresPort: number }) => {
    const log = (line: string) => console.log(`[corral dev] ${line}`);
    const stack = await startEmbeddedStack({ ...opts, log });
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: stopping the worker, Temporal and Postgres`);
      stack.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(err);
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    // If the worker dies on its own, take the stack down rather than leave a half-running system.
    void stack.worker.exited.then((code) => {
      if (!stopping) {
        log(`corral worker exited (${String(code)}); see ${stack.worker.logFile}`);
        shutdown('worker exit');
      }
    });
    log(`Temporal frontend: ${stack.temporal.address}`);
    log(`Postgres:          127.0.0.1:${stack.postgres.port} (database ${stack.postgres.database})`);
    log(`logs:              ${path.dirname(stack.worker.logFile)}`);
    log(`Temporal Web UI:   ${stack.temporal.uiUrl}`);
    log('ready. Ctrl-C stops everything.');
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`corral: ${err instanceof Error ? err.message : String(err)}`);
  if (process.argv.includes('--debug') && err instanceof Error) console.error(err.stack);
  process.exit(1);
});
