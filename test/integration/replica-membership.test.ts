// Health watching is sharded across corral worker replicas through the registry's
// `corral_replicas` table: every worker has watchers while any replica lives, two of them once
// there are more than two replicas, and a replica that stops drops out of everyone's view.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRegistryPool } from '../../src/registry/database';
import { ReplicaMembership } from '../../src/registry/replica-membership';
import { useTestRegistry, type TestRegistry } from '../harness/registry';

let registry: TestRegistry;
before(async () => {
  registry = await useTestRegistry();
});
after(async () => {
  await registry?.close();
});

const workerIds = Array.from({ length: 300 }, (_, i) => `w${i.toString(16).padStart(6, '0')}`);

function watchersOf(replicas: ReplicaMembership[], workerId: string): number {
  return replicas.filter((r) => r.watches(workerId)).length;
}

async function beatAll(replicas: ReplicaMembership[]): Promise<void> {
  for (const replica of replicas) await replica.refresh();
}

test('every worker has two watchers among three replicas, spread evenly; a stopped replica hands its share over', async () => {
  const replicas = ['a', 'b', 'c'].map(
    (name) => new ReplicaMembership({ db: registry.db, replicaId: `${name}-${process.pid}`, beatIntervalMs: 60_000 }),
  );
  try {
    await beatAll(replicas);
    await beatAll(replicas); // the first replica to beat saw only itself: now all see all three
    for (const replica of replicas) assert.equal(replica.liveReplicas().length, 3);
    assert.deepEqual(
      workerIds.filter((id) => watchersOf(replicas, id) !== 2),
      [],
      'exactly two watchers per worker',
    );
    for (const replica of replicas) {
      const share = workerIds.filter((id) => replica.watches(id)).length;
      // 2/3 of 300 = 200 on average; rendezvous hashing keeps every replica well inside this.
      assert.ok(share > 140 && share < 260, `replica share ${share} of 300`);
    }

    await replicas[2]!.stop();
    await beatAll(replicas.slice(0, 2));
    for (const replica of replicas.slice(0, 2)) assert.equal(replica.liveReplicas().length, 2);
    assert.deepEqual(
      workerIds.filter((id) => watchersOf(replicas.slice(0, 2), id) !== 2),
      [],
      'the two left watch everything',
    );
  } finally {
    for (const replica of replicas) await replica.stop();
  }
});

test('a replica that cannot reach the registry keeps its last view (and always counts itself)', async () => {
  const ownPool = createRegistryPool({ connectionString: registry.connectionString, maxConnections: 2 });
  const lonely = new ReplicaMembership({ db: ownPool, replicaId: `lonely-${process.pid}`, beatIntervalMs: 60_000 });
  const other = new ReplicaMembership({ db: registry.db, replicaId: `other-${process.pid}`, beatIntervalMs: 60_000 });
  try {
    await other.refresh();
    await lonely.refresh();
    assert.deepEqual([...lonely.liveReplicas()].sort(), [`lonely-${process.pid}`, `other-${process.pid}`].sort());
    await ownPool.end(); // from here every beat of `lonely` fails
    await lonely.refresh();
    assert.equal(lonely.liveReplicas().length, 2, 'the last view is kept');

    const unreachable = createRegistryPool({
      connectionString: 'postgres://corral@127.0.0.1:1/none',
      connectTimeoutMs: 500,
    });
    const blind = new ReplicaMembership({ db: unreachable, replicaId: `blind-${process.pid}`, beatIntervalMs: 60_000 });
    await blind.refresh();
    assert.deepEqual(blind.liveReplicas(), [`blind-${process.pid}`]);
    assert.ok(
      workerIds.every((id) => blind.watches(id)),
      'alone, it watches every worker',
    );
    await blind.stop();
    await unreachable.end();
  } finally {
    await other.stop();
  }
});
