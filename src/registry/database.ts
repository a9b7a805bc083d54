// The Postgres connection pool for the registry. Every call is bounded: connecting, each query
// (client side) and each statement (server side), so a dead or frozen database turns into a
// `store_error` within seconds instead of a hang. Broken idle connections are dropped and the
// pool reconnects by itself once the database is back.
import pg from 'pg';

export interface RegistryDatabaseOptions {
  connectionString: string;
  maxConnections?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  /** Receives errors of idle connections (e.g. the server restarted); they are already removed. */
  onIdleError?: (err: Error) => void;
}

export function createRegistryPool(opts: RegistryDatabaseOptions): pg.Pool {
  const queryTimeoutMs = opts.queryTimeoutMs ?? 5_000;
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.maxConnections ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 3_000,
    query_timeout: queryTimeoutMs,
    statement_timeout: queryTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: 'corral',
    keepAlive: true,
  });
  pool.on('error', (err) => opts.onIdleError?.(err));
  return pool;
}
