// Schema migrations with node-pg-migrate, from the plain SQL files in ./migrations. They run at
// `corral worker` start and through `corral migrate`. node-pg-migrate holds a Postgres advisory
// lock while it migrates; in `wait` mode a second process starting at the same time waits for
// the first and then finds nothing left to do.
import path from 'node:path';
import { runner } from 'node-pg-migrate';

export const migrationsDir = path.join(__dirname, 'migrations');

export interface MigrateResult {
  applied: string[];
}

export async function migrateRegistry(connectionString: string, log: (line: string) => void = () => undefined) {
  const applied = await runner({
    databaseUrl: { connectionString, connectionTimeoutMillis: 5_000, statement_timeout: 60_000 },
    dir: migrationsDir,
    direction: 'up',
    migrationsTable: 'corral_migrations',
    advisoryLockMode: 'wait',
    singleTransaction: true,
    checkOrder: true,
    log,
    logger: { debug: () => undefined, info: log, warn: log, error: log },
  });
  return { applied: applied.map((m) => m.name) } satisfies MigrateResult;
}
