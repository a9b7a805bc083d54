// A migrated, empty registry database for one test file, plus a test-only way to put a worker
// row straight into any state (so transition tests need not walk a whole life first).
import pg from 'pg';
import { Registry } from 'prom-client';
import type { WorkerState } from '../../src/common';
import { createRegistryPool } from '../../src/registry/database';
import { WorkerLifecycleStore } from '../../src/registry/lifecycle-store';
import { migrateRegistry } from '../../src/registry/migrate';
import { createLifecycleMetrics } from '../../src/metrics/lifecycle-metrics';
import { usePostgresDatabase } from './shared';

export interface TestRegistry {
  connectionString: string;
  db: pg.Pool;
  store: WorkerLifecycleStore;
  metricsRegistry: Registry;
  /** Inserts (or overwrites) a worker row in the given state and epoch, bypassing the fence. */
  seedWorker(row: {
    id: string;
    pool?: string;
    image?: string;
    state: WorkerState;
    epoch?: number;
    tenant?: string;
    /** The pod template generation it runs (default 1, its pool's first). */
    generation?: number | null;
  }): Promise<void>;
  close(): Promise<void>;
}

export async function useTestRegistry(opts: { maxConnections?: number } = {}): Promise<TestRegistry> {
  const database = await usePostgresDatabase();
  const connectionString = database.value.connectionString;
  await migrateRegistry(connectionString);
  const db = createRegistryPool({ connectionString, maxConnections: opts.maxConnections ?? 10 });
  const metricsRegistry = new Registry();
  const store = new WorkerLifecycleStore(db, createLifecycleMetrics(metricsRegistry));
  return {
    connectionString,
    db,
    store,
    metricsRegistry,
    async seedWorker({ id, pool = 'p', image = 'corral/demo-worker:0.1.0', state, epoch = 1, tenant, generation = 1 }) {
      await db.query(
        `INSERT INTO workers (id, pool, image, state, epoch, tenant, generation) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET state = $4, epoch = $5, tenant = $6, generation = $7`,
        [id, pool, image, state, epoch, tenant ?? null, generation],
      );
    },
    async close() {
      await db.end();
      await database.release();
    },
  };
}
