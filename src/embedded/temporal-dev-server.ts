// The Temporal CLI's dev server: frontend, history, matching and the Web UI in one process on
// a SQLite file (or in memory). This is corral's embedded default and the end-to-end test server.
import { Connection } from '@temporalio/client';
import { corralSearchAttributeKeys } from '../common';
import { startProcess, failOnExit, type ManagedProcess } from './child-process';
import { freePort } from './ports';
import { toolPath } from './tools';
import { waitFor } from './wait';

export interface TemporalDevServerOptions {
  /** SQLite file that keeps state across restarts; omitted means in-memory. */
  dbFile?: string;
  port?: number;
  uiPort?: number;
  namespace?: string;
  /** The address the frontend and Web UI listen on. Default: loopback. */
  ip?: string;
  readyTimeoutMs?: number;
}

export interface TemporalDevServer {
  /** gRPC frontend, host:port. */
  readonly address: string;
  readonly uiUrl: string;
  readonly metricsUrl: string;
  readonly namespace: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

// Temporal's dev server maps the SDK's type names onto its CLI's `Name=Type` flag values.
const cliTypeName: Record<string, string> = { KEYWORD: 'Keyword', TEXT: 'Text', INT: 'Int', BOOL: 'Bool' };

export async function startTemporalDevServer(opts: TemporalDevServerOptions = {}): Promise<TemporalDevServer> {
  const [port, uiPort, metricsPort, httpPort] = await Promise.all([
    opts.port ?? freePort(),
    opts.uiPort ?? freePort(),
    freePort(),
    freePort(),
  ]);
  const namespace = opts.namespace ?? 'default';
  const ip = opts.ip ?? '127.0.0.1';
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--http-port',
    String(httpPort),
    '--metrics-port',
    String(metricsPort),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
    ...corralSearchAttributeKeys.flatMap((key) => ['--search-attribute', `${key.name}=${cliTypeName[key.type]}`]),
  ];
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);

  const proc = startProcess('temporal-dev-server', toolPath('temporal'), args);
  const address = `${ip}:${port}`;
  const uiUrl = `http://${ip}:${uiPort}`;
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  try {
    await Promise.race([
      failOnExit(proc),
      waitFor(
        async () => {
          const connection = await Connection.connect({ address, connectTimeout: 1_000 });
          try {
            await connection.workflowService.describeNamespace({ namespace });
            return true;
          } finally {
            await connection.close();
          }
        },
        { what: `Temporal frontend on ${address}`, timeoutMs },
      ),
    ]);
    await Promise.race([
      failOnExit(proc),
      waitFor(async () => (await fetch(uiUrl, { signal: AbortSignal.timeout(2_000) })).ok, {
        what: `Temporal Web UI on ${uiUrl}`,
        timeoutMs,
      }),
    ]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    address,
    uiUrl,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    namespace,
    process: proc,
    stop: () => proc.stop(),
  };
}
