// `corral worker`: runs corral's workflows and activities; what the Deployment runs.
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration';
import path from 'node:path';
import type { runCorralWorker } from '../../workers/corral-worker';
import { UsageError } from '../cli-errors';
import { stateDir } from '../../embedded/state-dir';
import { requiredEnv } from '../endpoints';
import { loadCorralWorker, loadJanitorSchedule, loadWorkerCapacity, loadWorkerProtocolKey } from '../lazy-modules';
import { parsePort } from '../option-parsers';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a corral worker: polls Temporal for corral workflows and activities, serves /metrics')
    .option('--temporal-address <host:port>', 'Temporal frontend (env TEMPORAL_ADDRESS)')
    .option('--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE)')
    .option('--task-queue <name>', 'the task queue to poll (env CORRAL_TASK_QUEUE)')
    .option('--runtime <process|kubernetes>', 'where worker pods run; required (env CORRAL_RUNTIME)')
    .option(
      '--process-state-dir <dir>',
      'process runtime: where worker processes keep their state (env CORRAL_PROCESS_STATE_DIR; default $CORRAL_STATE_DIR/workers, else .corral/workers)',
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
    .option('--api-port <port>', 'the corral API port; 0 picks one (env CORRAL_API_PORT, default 7070)', parsePort)
    .option(
      '--api-host <host>',
      'address the corral API listens on; beyond loopback it needs a tokens file (env CORRAL_API_HOST)',
    )
    .option('--api-tokens-file <file>', 'bearer tokens for the corral API, one per line (env CORRAL_API_TOKENS_FILE)')
    .option(
      '--claim-ack-window <duration>',
      'a claim whose answer never reached its caller is reclaimed after this (env CORRAL_CLAIM_ACK_WINDOW, default 15s)',
    )
    .option(
      '--shutdown-grace <duration>',
      'how long in-flight activities may finish after SIGTERM (env CORRAL_SHUTDOWN_GRACE)',
    )
    // A function, so the slot variables' module loads only when this help is shown.
    .addHelpText(
      'after',
      () =>
        '\nThe registry is DATABASE_URL (environment only: it holds a password).\n' +
        'CORRAL_WORKER_PROTOCOL_KEY (required, environment only; 64 hex digits, `openssl rand -hex 32`) signs every\n' +
        'call to a worker (corral.worker/v2, docs/worker-protocol.md); pools opt into the unsigned v1 by workerProtocol.\n' +
        `Slots per kind of work (environment; docs/decisions/0013-fleet-scale.md): ${Object.values(loadWorkerCapacity().workerCapacityEnv).join(', ')}.`,
    )
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
        apiPort?: number;
        apiHost?: string;
        apiTokensFile?: string;
        claimAckWindow?: string;
        shutdownGrace?: string;
      }) => {
        const temporalAddress = opts.temporalAddress ?? requiredEnv('TEMPORAL_ADDRESS');
        const namespace = opts.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default';
        const runtimeKind = opts.runtime ?? (process.env.CORRAL_RUNTIME || undefined);
        if (runtimeKind === undefined) throw new RuntimeNotChosenError();
        const runtime =
          runtimeKind === 'kubernetes'
            ? { runtime: runtimeKind, namespace: opts.kubeNamespace ?? requiredEnv('CORRAL_KUBE_NAMESPACE') }
            : {
                runtime: runtimeKind,
                stateDir:
                  opts.processStateDir ?? process.env.CORRAL_PROCESS_STATE_DIR ?? path.join(stateDir(), 'workers'),
              };
        const metricsPort = opts.metricsPort ?? envPort('CORRAL_METRICS_PORT') ?? 9464;
        const shutdownGrace = opts.shutdownGrace ?? process.env.CORRAL_SHUTDOWN_GRACE ?? '20s';
        const shutdownGraceMs = parseDurationOption('--shutdown-grace', shutdownGrace, 0);
        const claimAckWindowMs = parseDurationOption(
          '--claim-ack-window',
          opts.claimAckWindow ?? process.env.CORRAL_CLAIM_ACK_WINDOW ?? '15s',
          minClaimAckWindowMs,
        );
        const apiPort = opts.apiPort ?? envPort('CORRAL_API_PORT') ?? 7070;
        const { janitorRetention, JanitorScheduleOptionsError, parseRetention } = loadJanitorSchedule();
        const { workerCapacityFromEnv, WorkerCapacityError } = loadWorkerCapacity();
        const { WorkerProtocolKeyError, resolveWorkerProtocolKey } = loadWorkerProtocolKey();
        let retentionMs: number;
        try {
          retentionMs = parseRetention(
            process.env[janitorRetention.env] || janitorRetention.default,
            janitorRetention.env,
          );
        } catch (err) {
          if (err instanceof JanitorScheduleOptionsError) throw new UsageError(err.message);
          throw err;
        }
        let capacity;
        try {
          capacity = workerCapacityFromEnv(process.env);
        } catch (err) {
          if (err instanceof WorkerCapacityError) throw new UsageError(err.message);
          throw err;
        }
        let workerProtocolKey: Buffer;
        try {
          // Required: without it a pool's workers could be activated or drained by anyone who can reach them.
          workerProtocolKey = resolveWorkerProtocolKey({ env: process.env, mode: 'production' });
        } catch (err) {
          if (err instanceof WorkerProtocolKeyError) throw new UsageError(err.message);
          throw err;
        }
        await loadCorralWorker().runCorralWorker({
          temporalAddress,
          namespace,
          taskQueue: opts.taskQueue ?? process.env.CORRAL_TASK_QUEUE,
          runtime: runtime as Parameters<typeof runCorralWorker>[0]['runtime'],
          databaseUrl: requiredEnv('DATABASE_URL'),
          http: { port: metricsPort, host: opts.metricsHost ?? process.env.CORRAL_METRICS_HOST ?? '127.0.0.1' },
          api: {
            port: apiPort,
            host: opts.apiHost ?? process.env.CORRAL_API_HOST ?? '127.0.0.1',
            tokensFile: opts.apiTokensFile ?? (process.env.CORRAL_API_TOKENS_FILE || undefined),
          },
          claimAckWindowMs,
          shutdownGraceMs,
          capacity,
          retentionMs,
          workerProtocolKey,
          log: (line) => console.log(line),
          onReady: ({ metricsUrl, apiUrl }) => {
            console.log(
              `corral worker ready: polling ${temporalAddress} namespace ${namespace}; API ${apiUrl}; metrics ${metricsUrl}`,
            );
            process.send?.({ type: 'ready', metricsUrl, apiUrl });
          },
        });
      },
    );
}

/**
 * `corral worker` without `--runtime` or `CORRAL_RUNTIME`. There is no default: the process
 * runtime isolates nothing between workers, so nobody should get it by leaving a variable unset.
 */
export class RuntimeNotChosenError extends UsageError {
  readonly field = 'runtime';
  constructor() {
    super(
      '--runtime: required (or set CORRAL_RUNTIME): kubernetes for production (pods in their own namespace), ' +
        'process for a laptop (local child processes; isolates nothing between workers)',
    );
    this.name = 'RuntimeNotChosenError';
  }
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

/** Below this an ordinary answer could be reclaimed before its acknowledgement is written. */
const minClaimAckWindowMs = 2_000;

function parseDurationOption(option: string, value: string, floorMs: number): number {
  const parsed = parseDuration(value);
  if (parsed === undefined || parsed < 0) {
    throw new UsageError(`${option}: not a duration (e.g. "20s"): ${JSON.stringify(value)}`);
  }
  if (parsed < floorMs)
    throw new UsageError(`${option}: must be at least ${floorMs / 1000}s: ${JSON.stringify(value)}`);
  return parsed;
}
