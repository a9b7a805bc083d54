// `corral worker`: runs corral's workflows and activities; what the Deployment runs.
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration';
import path from 'node:path';
import { runCorralWorker } from '../../workers/corral-worker';
import { UsageError } from '../cli-errors';
import { defaultStateDir, requiredEnv } from '../endpoints';
import { parsePort } from '../option-parsers';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a corral worker: polls Temporal for corral workflows and activities, serves /metrics')
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
    .option(
      '--metrics-port <port>',
      '/metrics, /readyz and /livez port; 0 picks one (env CORRAL_METRICS_PORT)',
      parsePort,
    )
    .option('--metrics-host <host>', 'address /metrics listens on (env CORRAL_METRICS_HOST)')
    .option(
      '--shutdown-grace <duration>',
      'how long in-flight activities may finish after SIGTERM (env CORRAL_SHUTDOWN_GRACE)',
    )
    .addHelpText('after', '\nThe registry is DATABASE_URL (environment only: it holds a password).')
    .action(
      async (opts: {
        temporalAddress?: string;
        namespace?: string;
        taskQueue?: string;
        runtime?: string;
        processStateDir?: string;
        kubeNamespace?: string;
        metricsPort?: number;
        metricsHost?: string;
        shutdownGrace?: string;
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
                  opts.processStateDir ?? process.env.CORRAL_PROCESS_STATE_DIR ?? path.join(defaultStateDir, 'workers'),
              };
        const metricsPort = opts.metricsPort ?? envPort('CORRAL_METRICS_PORT') ?? 9464;
        const shutdownGrace = opts.shutdownGrace ?? process.env.CORRAL_SHUTDOWN_GRACE ?? '20s';
        const shutdownGraceMs = parseShutdownGrace(shutdownGrace);
        await runCorralWorker({
          temporalAddress,
          namespace,
          taskQueue: opts.taskQueue ?? process.env.CORRAL_TASK_QUEUE,
          runtime: runtime as Parameters<typeof runCorralWorker>[0]['runtime'],
          databaseUrl: requiredEnv('DATABASE_URL'),
          http: { port: metricsPort, host: opts.metricsHost ?? process.env.CORRAL_METRICS_HOST ?? '127.0.0.1' },
          shutdownGraceMs,
          log: (line) => console.log(line),
          onReady: ({ metricsUrl }) => {
            console.log(
              `corral worker ready: polling ${temporalAddress} namespace ${namespace}; metrics ${metricsUrl}`,
            );
            process.send?.({ type: 'ready', metricsUrl });
          },
        });
      },
    );
}

function envPort(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  try {
    return parsePort(value);
  } catch {
    throw new UsageError(`${name}: not a TCP port: ${value}`);
  }
}

function parseShutdownGrace(value: string): number {
  const parsed = parseDuration(value);
  if (parsed === undefined || parsed < 0) {
    throw new UsageError(`--shutdown-grace: not a duration (e.g. "20s"): ${JSON.stringify(value)}`);
  }
  return parsed;
}
