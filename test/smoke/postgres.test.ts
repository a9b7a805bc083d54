// corral-test-needs: postgres
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { usePostgresDatabase, type Lease } from '../harness/shared';

let db: Lease<{ connectionString: string }>;
let pool: pg.Pool;

before(async () => {
  db = await usePostgresDatabase();
  pool = new pg.Pool({ connectionString: db.value.connectionString, max: 4, connectionTimeoutMillis: 5_000 });
});
after(async () => {
  await pool?.end();
  await db?.release();
});

test('compare-and-set on an epoch: of two concurrent writers exactly one wins', async () => {
  await pool.query('CREATE TABLE fenced (id text PRIMARY KEY, epoch bigint NOT NULL, holder text)');
  await pool.query(`INSERT INTO fenced VALUES ('w1', 1, NULL)`);

  // Two separate connections, each inside a transaction, so the updates truly race on the row lock.
  const writers = await Promise.all([pool.connect(), pool.connect()]);
  try {
    await Promise.all(writers.map((c) => c.query('BEGIN')));
    const attempts = writers.map((c, i) =>
      c.query('UPDATE fenced SET epoch = epoch + 1, holder = $2 WHERE id = $1 AND epoch = $3', [
        'w1',
        `writer-${i}`,
        1,
      ]),
    );
    // The loser blocks on the winner's row lock; committing both lets it re-check the epoch.
    const results = await Promise.all(attempts.map((a, i) => a.then((r) => writers[i].query('COMMIT').then(() => r))));
    const counts = results.map((r) => r.rowCount).sort();
    assert.deepEqual(counts, [0, 1]);
  } finally {
    writers.forEach((c) => c.release());
  }
  const { rows } = await pool.query('SELECT epoch, holder FROM fenced WHERE id = $1', ['w1']);
  assert.equal(rows[0].epoch, '2');
  assert.match(rows[0].holder, /^writer-[01]$/);
});
