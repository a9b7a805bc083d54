// bench/capacity/release-to-waiter (issue 20: "a waiting claim is served by a release within 1 s of
// it"): on the real stack (Temporal dev server, embedded Postgres, one `bin/corral worker` replica,
// the process runtime's small protocol worker), a pool of one worker (releasePolicy recycle): tenant
// A holds it, tenant B's claim waits in the queue, A releases; measured from the release call to B's
// answer, n times. Two placements of B: through the same replica as the release (woken at once) and
// through a second replica (it finds the worker at its next ask, every 250 ms).
// Usage: node --require tsx/cjs bench/capacity/release-to-waiter.ts [n=20] → JSON on stdout, also
// written to bench/results/capacity-release-to-waiter.json.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { repoRoot } from '../../src/embedded/tools';
import { PoolStore } from '../../src/registry/pool-store';
import { provenance } from '../provenance';
import { machine, processPool, say, startReplica, startWorld, summarise, until } from '../chaos/support';

/** `until`, failing the bench instead of going on when the condition is not reached. */
async function reached(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  if ((await until(check, { timeoutMs, intervalMs: 20, what })) === null) throw new Error(`not reached: ${what}`);
}

const n = Number(process.argv[2] ?? 20);

async function main(): Promise<void> {
  const world = await startWorld({ name: 'release-to-waiter' });
  const result: Record<string, unknown> = {
    bench: 'capacity-release-to-waiter',
    provenance: provenance(),
    machine: machine(),
    n,
  };
  try {
    const image = await smallWorkerPath();
    const a = await startReplica(world, 'a');
    const b = await startReplica(world, 'b');
    const store = new PoolStore(world.db);
    const pool = 'one-worker';
    await a.corral.applyPool(processPool(pool, image, { minIdle: 1, maxWorkers: 1, releasePolicy: 'recycle' }));
    await reached(async () => ((await store.inventory(pool)).counts.idle ?? 0) === 1, 'the worker idle', 120_000);
    for (const [placement, waiterApi] of [
      ['same_replica', a],
      ['other_replica', b],
    ] as const) {
      const samples: number[] = [];
      for (let i = 0; i < n; i++) {
        const held = await a.corral.claim(pool, { tenant: 'a', requestId: `${placement}-a-${i}`, timeout: '60s' });
        const waiting = waiterApi.corral.claim(pool, { tenant: 'b', requestId: `${placement}-b-${i}`, timeout: '60s' });
        await reached(
          async () =>
            (
              await world.db.query(`SELECT 1 FROM claims WHERE pool = $1 AND request_id = $2 AND status = 'waiting'`, [
                pool,
                `${placement}-b-${i}`,
              ])
            ).rowCount === 1,
          'the claim waiting',
        );
        const t0 = performance.now();
        await a.corral.release(held);
        const served = await waiting;
        samples.push(performance.now() - t0);
        await waiterApi.corral.release(served);
        await reached(async () => ((await store.inventory(pool)).counts.idle ?? 0) === 1, 'the worker idle again');
      }
      result[placement] = { release_to_served_ms: summarise(samples) };
      say(`${placement}: ${JSON.stringify(result[placement])}`);
    }
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  } finally {
    await world.cleanups.run();
  }
  const json = JSON.stringify(result, null, 2);
  fs.writeFileSync(path.join(repoRoot, 'bench', 'results', 'capacity-release-to-waiter.json'), `${json}\n`);
  console.log(json);
}

void main();
