// The registry under a database outage, on a private Postgres this file may stop and freeze.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/embedded/postgres';
import { createRegistryPool } from '../../src/registry/database';
import { RegistryUnavailableError, WorkerLifecycleStore } from '../../src/registry/lifecycle-store';
import { migrateRegistry } from '../../src/registry/migrate';
import { waitFor } from '../../src/embedded/wait';

let postgres: RunningPostgres;
let db: pg.Pool;
let store: WorkerLifecycleStore;
const idleErrors: Error[] = [];

before(async () => {
  postgres = await startEmbeddedPostgres();
  await migrateRegistry(postgres.connectionString);
  db = createRegistryPool({
    connectionString: postgres.connectionString,
    connectTimeoutMs: 1_000,
    queryTimeoutMs: 1_500,
    onIdleError: (err) => idleErrors.push(err),
  });
  store = new WorkerLifecycleStore(db);
});
after(async () => {
  await db?.end();
  await postgres?.stop();
});

const claim = (workerId: string, epoch: number) =>
  store.transition({
    workerId,
    expected: { epoch, states: ['idle', 'claimed'] },
    to: 'claimed',
    operation: 'claim',
    origin: 'client',
  });

/** The postmaster and every backend it forked (so a "frozen" server holds its sockets open). */
function postgresPids(): number[] {
  const postmaster = Number(fs.readFileSync(path.join(postgres.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
  return [postmaster, ...children];
}

test('Postgres stopped: callers get store_error, never a hang; after a restart the same store works again', async () => {
  const { worker } = await store.createWorker({ id: 'outage-1', pool: 'p', image: 'i:1', origin: 'client' });
  await db.query(`UPDATE workers SET state = 'idle' WHERE id = $1`, [worker.id]);

  await postgres.stopServer();
  const during = await claim(worker.id, 1);
  assert.equal(during.outcome, 'store_error');
  await assert.rejects(store.getWorker(worker.id), RegistryUnavailableError);

  await postgres.startServer();
  const afterRestart = await claim(worker.id, 1);
  assert.equal(afterRestart.outcome, 'transitioned');
});

test('Postgres frozen (SIGSTOP, sockets open but silent): the query timeout turns the hang into store_error', async () => {
  const row = await store.getWorker('outage-1');
  assert.ok(row);
  const pids = postgresPids();
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  try {
    const frozen = await claim('outage-1', row.epoch);
    assert.equal(frozen.outcome, 'store_error');
    assert.match(frozen.outcome === 'store_error' ? frozen.message : '', /timeout/i);
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  }
  // store_error means "outcome unknown": the frozen server may still run the queued statement
  // once thawed. The fence makes that safe; the caller re-reads and acts on what it finds, here
  // once that statement has run (no other backend of this database is still active).
  await waitFor(
    async () =>
      (
        await db.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND backend_type = 'client backend' AND state = 'active'
             AND pid <> pg_backend_pid()`,
        )
      ).rows[0].n === 0,
    { what: 'the statement queued while frozen to finish', timeoutMs: 30_000, intervalMs: 20 },
  );
  const reread = await store.getWorker('outage-1');
  assert.ok(reread && [row.epoch, row.epoch + 1].includes(reread.epoch));
  const thawed = await claim('outage-1', reread.epoch);
  assert.equal(thawed.outcome, 'transitioned');
  const trail = await store.history('outage-1');
  for (let i = 1; i < trail.length; i++) assert.equal(trail[i].epochBefore, trail[i - 1].epochAfter);
});
