// Claims through the corral API, end to end: real dev server, registry, process runtime and demo
// workers, in-process corral worker and API replicas, CorralClient over HTTP. The registry decides
// each claim; these tests hold corral to the semantics a control plane builds on
// (docs/decisions/0012-registry-claims-and-the-corral-api.md).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningCorralApi } from '../../src/api/corral-api';
import { CorralClient, type ClaimResult } from '../../src/client/corral-client';
import { CorralError } from '../../src/client/errors';
import { waitFor } from '../../src/embedded/wait';
import { describeQuery, workerLifecycleWorkflowId } from '../../src/common';
import { recordHistory } from '../harness/lifecycle-env';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

/** Short, so reclaiming is seen within a test; `corral worker` defaults to 15 s. */
const ackWindowMs = 3_000;

let e2e: PoolE2e;
before(async () => {
  e2e = await usePoolE2e({ claimAckWindowMs: ackWindowMs });
});
after(async () => {
  await e2e?.close();
});

const isCode = (code: string) => (err: unknown) => err instanceof CorralError && err.code === code;

async function claimRow(pool: string, requestId: string) {
  const { rows } = await e2e.registry.db.query(
    `SELECT status, worker_id, epoch, acknowledged_at, ack_by < now() AS ack_due FROM claims WHERE pool = $1 AND request_id = $2`,
    [pool, requestId],
  );
  return rows[0] as
    | { status: string; worker_id: string; epoch: string; acknowledged_at: Date | null; ack_due: boolean }
    | undefined;
}

/**
 * The worker's workflow holds what the registry says: state and tenant (what its timers and the
 * Web UI follow), and with `exactEpoch` the epoch too (a burst that ended where it began is not
 * sent, so its epoch is caught up only by the workflow's next compare-and-set).
 */
async function waitForWorkflowToAdopt(pool: string, workerId: string, opts: { exactEpoch?: boolean } = {}) {
  const handle = e2e.client.workflow.getHandle(workerLifecycleWorkflowId(pool, workerId));
  await waitFor(
    async () => {
      const [described, row] = await Promise.all([handle.query(describeQuery), e2e.registry.store.getWorker(workerId)]);
      return (
        row !== null &&
        described.state === row.state &&
        described.tenant === row.tenant &&
        (!opts.exactEpoch || described.epoch === row.epoch)
      );
    },
    { what: `workflow of ${workerId} to adopt its registry row`, timeoutMs: 30_000, intervalMs: 100 },
  );
}

describe('the warm path', () => {
  const pool = 'warm';
  before(async () => {
    await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 3, maxWorkers: 6, releasePolicy: 'recycle' }));
    await e2e.waitForCounts(pool, { idle: 3, spawning: 0, activating: 0 });
  });

  test('a claim is decided by the registry, the worker holds the lease before the caller does, the workflow adopts it', async () => {
    const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'w-1' });
    assert.equal(lease.path, 'warm');
    assert.equal((await e2e.corral.checkLease(lease)).status, 'valid');
    // The worker itself was told: its /activate now refuses the epoch before the lease.
    const refused = await fetch(`${lease.endpoint}/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workerId: lease.workerId, epoch: lease.epoch - 1, tenant: 'mallory' }),
    });
    assert.equal(refused.status, 409, 'the worker refuses an epoch below the lease');
    await waitForWorkflowToAdopt(pool, lease.workerId, { exactEpoch: true });
    const described = await e2e.client.workflow
      .getHandle(workerLifecycleWorkflowId(pool, lease.workerId))
      .query(describeQuery);
    assert.deepEqual([described.state, described.tenant, described.epoch], ['claimed', 'acme', lease.epoch]);
    await waitFor(async () => (await claimRow(pool, 'w-1'))?.acknowledged_at != null, {
      what: 'the grant to be acknowledged',
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    await e2e.corral.release({ workerId: lease.workerId, epoch: lease.epoch });
  });

  test('release is idempotent for the same lease, refuses another tenant, and a repeat of the request id after it is lease_ended', async () => {
    const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'w-2' });
    await assert.rejects(
      e2e.corral.release({ workerId: lease.workerId, epoch: lease.epoch, tenant: 'globex' }),
      isCode('stale_lease'),
    );
    const released = await e2e.corral.release({ workerId: lease.workerId, epoch: lease.epoch, tenant: 'acme' });
    assert.deepEqual([released.state, released.epoch], ['idle', lease.epoch + 1]);
    const again = await e2e.corral.release({ workerId: lease.workerId, epoch: lease.epoch });
    assert.deepEqual(again, released, 'a retried release answers what the first one did');
    await assert.rejects(
      e2e.corral.release({ workerId: lease.workerId, epoch: lease.epoch - 1 }),
      isCode('stale_lease'),
    );
    await assert.rejects(e2e.corral.release({ workerId: 'nobody', epoch: 1 }), isCode('not_found'));

    // Claim R → release → another tenant claims → claim R again: never the dead lease as a success.
    const others: ClaimResult[] = [];
    while (!others.some((o) => o.workerId === lease.workerId)) {
      assert.ok(others.length < 6, 'another tenant got the released worker (maxWorkers 6)');
      others.push(await e2e.corral.claim(pool, { tenant: 'globex', requestId: `g-${others.length}` }));
    }
    await assert.rejects(e2e.corral.claim(pool, { tenant: 'acme', requestId: 'w-2' }), (err) => {
      assert.ok(err instanceof CorralError && err.code === 'lease_ended', String(err));
      assert.deepEqual(err.details?.lease, {
        pool,
        workerId: lease.workerId,
        epoch: lease.epoch,
        endpoint: lease.endpoint,
        tenant: 'acme',
      });
      return true;
    });
    for (const other of others) await e2e.corral.release(other);
  });

  test('a grant whose caller died after the transaction is reclaimed within the ack window, and stays dead', async () => {
    // Exactly the transaction the API runs for a claim, with no answer ever delivered.
    const decision = await e2e.claims.claim({
      pool,
      requestId: 'died-1',
      tenant: 'acme',
      newWorkerId: 'unused',
      pendingMs: 60_000,
      ackMs: ackWindowMs,
      origin: 'api',
    });
    assert.equal(decision.outcome, 'granted');
    if (decision.outcome !== 'granted') return;
    await waitFor(
      async () => {
        const row = await e2e.registry.store.getWorker(decision.workerId);
        return row?.state === 'idle' && row.epoch === decision.epoch + 1;
      },
      { what: 'the unacknowledged claim to be reclaimed', timeoutMs: ackWindowMs + 10_000, intervalMs: 100 },
    );
    assert.equal((await claimRow(pool, 'died-1'))?.status, 'reclaimed');
    const trail = await e2e.registry.store.history(decision.workerId);
    assert.equal(trail.at(-1)?.origin, 'reclaimer');
    await assert.rejects(e2e.corral.claim(pool, { tenant: 'acme', requestId: 'died-1' }), isCode('lease_ended'));
    // The worker was re-activated at the new epoch: the dead lease is refused by the worker too.
    const stale = await fetch(`${decision.endpoint}/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workerId: decision.workerId, epoch: decision.epoch, tenant: 'acme' }),
    });
    assert.equal(stale.status, 409);
    await waitForWorkflowToAdopt(pool, decision.workerId, { exactEpoch: true });
  });
});

describe('the cold path', () => {
  const pool = 'slow';
  before(async () => {
    // A worker that takes 3 s to start, and no warm capacity: claims take the cold path.
    await e2e.corral.applyPool(
      demoPoolSpec(pool, { minIdle: 0, maxWorkers: 3, env: { DEMO_WORKER_START_DELAY_MS: '3000' } }),
    );
  });

  test('a claim that timed out, retried with its request id once the worker is up, keeps its lease', async () => {
    await assert.rejects(
      e2e.corral.claim(pool, { tenant: 'acme', requestId: 'slow-1', timeout: '500ms' }),
      isCode('timeout'),
    );
    // The worker made for it is bound to the claim when ready (nobody has acknowledged it yet).
    await waitFor(async () => (await claimRow(pool, 'slow-1'))?.status === 'granted', {
      what: 'the cold worker to be bound to claim slow-1',
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'slow-1' });
    assert.equal(lease.path, 'cold');
    await recordHistory(
      e2e.client.workflow.getHandle(workerLifecycleWorkflowId(pool, lease.workerId)),
      'api-cold-claim',
    );
    // Past the ack window, with a reclaim pass run: the retried claim was acknowledged, so it stands.
    await waitFor(async () => (await claimRow(pool, 'slow-1'))?.ack_due === true, {
      what: 'the ack window of claim slow-1 to pass',
      timeoutMs: ackWindowMs + 10_000,
      intervalMs: 100,
    });
    assert.deepEqual(await e2e.claims.reclaimUnacknowledged(100), []);
    await waitForWorkflowToAdopt(pool, lease.workerId);
    assert.equal((await e2e.corral.checkLease(lease)).status, 'valid', 'the lease outlived the first attempt');
    const repeat = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'slow-1' });
    assert.deepEqual(repeat, lease, 'a repeat while the lease is valid gets the same lease');
    await e2e.corral.release(lease);
  });

  test('a cold claim nobody retries is reclaimed: the worker joins the pool idle and the request id is ended', async () => {
    await assert.rejects(
      // Another tenant: acme's released worker waits hot_idle for acme only, so this one is cold.
      e2e.corral.claim(pool, { tenant: 'initech', requestId: 'slow-2', timeout: '300ms' }),
      isCode('timeout'),
    );
    await waitFor(async () => (await claimRow(pool, 'slow-2'))?.status === 'reclaimed', {
      what: 'claim slow-2 to be bound, then reclaimed',
      timeoutMs: 60_000 + ackWindowMs,
      intervalMs: 200,
    });
    const row = await claimRow(pool, 'slow-2');
    const worker = await e2e.registry.store.getWorker(row!.worker_id);
    assert.equal(worker?.tenant, null);
    assert.ok(worker?.state === 'idle' || worker?.state === 'hot_idle' || worker?.state === 'claimed');
    await assert.rejects(e2e.corral.claim(pool, { tenant: 'initech', requestId: 'slow-2' }), isCode('lease_ended'));
  });
});

describe('many callers, many replicas', () => {
  const pool = 'burst';
  const replicas: RunningCorralApi[] = [];
  after(async () => {
    for (const replica of replicas) await replica.close();
  });

  test('100 claims over 4 API replicas, each request id sent twice: no worker twice, every repeat the same lease, every lease valid', async (t) => {
    for (let i = 0; i < 4; i++) {
      replicas.push(await e2e.startApiReplica());
    }
    const clients = replicas.map((replica) => new CorralClient({ url: replica.url }));
    const spec = demoPoolSpec(pool, { minIdle: 20, maxWorkers: 25, releasePolicy: 'recycle', onFull: 'reject' });
    await e2e.corral.applyPool(spec);
    await e2e.waitForCounts(pool, { idle: 20, spawning: 0, activating: 0 });
    await e2e.corral.applyPool({ ...spec, minIdle: 0 }); // refills must not race the burst for capacity

    const outcomes = await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const requestId = `burst-${i % 50}`;
        return clients[i % 4]!.claim(pool, { tenant: `tenant-${(i % 50) % 7}`, requestId, timeout: '2m' })
          .then((lease) => ({ requestId, lease }))
          .catch((error: unknown) => ({ requestId, error }));
      }),
    );
    const byRequest = new Map<string, ClaimResult[]>();
    let atCapacity = 0;
    for (const outcome of outcomes) {
      if ('error' in outcome) {
        assert.ok(isCode('at_capacity')(outcome.error), `unexpected failure: ${String(outcome.error)}`);
        atCapacity++;
        continue;
      }
      byRequest.set(outcome.requestId, [...(byRequest.get(outcome.requestId) ?? []), outcome.lease]);
    }
    for (const [requestId, leases] of byRequest) {
      for (const lease of leases) {
        assert.deepEqual(
          [lease.workerId, lease.epoch],
          [leases[0]!.workerId, leases[0]!.epoch],
          `${requestId}: every answer is the same lease`,
        );
      }
    }
    const workers = [...byRequest.values()].map((leases) => leases[0]!.workerId);
    assert.equal(new Set(workers).size, workers.length, 'no worker went to two request ids');
    assert.ok(workers.length <= 25, 'never more leases than maxWorkers');
    for (const leases of byRequest.values()) {
      assert.equal((await e2e.corral.checkLease(leases[0]!)).status, 'valid');
    }
    const warm = [...byRequest.values()].filter((l) => l[0]!.path === 'warm').length;
    t.diagnostic(`${byRequest.size} request ids granted (${warm} warm), ${atCapacity} answers at_capacity`);
    assert.equal(warm, 20, 'every idle worker was used');
    assert.ok(atCapacity > 0, 'the rest were refused at capacity, not double-booked');
  });
});

describe('claims do not wait on workflows', () => {
  const pool = 'wedged';
  before(async () => {
    await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 4, maxWorkers: 4, releasePolicy: 'recycle' }));
    await e2e.waitForCounts(pool, { idle: 4, spawning: 0, activating: 0 });
  });

  test('with every worker workflow unresponsive, claims and releases go on; the workflows catch up afterwards', async () => {
    const resume = await e2e.pauseWorkflows();
    let resumed = false;
    try {
      // 40 claim → release cycles over 4 callers while no workflow task can run anywhere.
      const leases: ClaimResult[] = [];
      await Promise.all(
        Array.from({ length: 4 }, async (_, caller) => {
          for (let i = 0; i < 10; i++) {
            const lease = await e2e.corral.claim(pool, { tenant: `t-${caller}`, requestId: `wedged-${caller}-${i}` });
            assert.equal((await e2e.corral.checkLease(lease)).status, 'valid');
            leases.push(lease);
            await e2e.corral.release(lease);
          }
        }),
      );
      assert.equal(leases.length, 40);
      assert.ok(leases.every((l) => l.path === 'warm'));
      await resume();
      resumed = true;
      // Told afterwards (coalesced: one signal per worker per window carrying its latest row), each
      // worker's workflow adopts the row the registry holds now.
      for (const workerId of new Set(leases.map((l) => l.workerId))) await waitForWorkflowToAdopt(pool, workerId);
    } finally {
      if (!resumed) await resume();
    }
  });
});

describe('notifications are coalesced', () => {
  const pool = 'tight';
  before(async () => {
    await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 1, maxWorkers: 1, releasePolicy: 'recycle' }));
    await e2e.waitForCounts(pool, { idle: 1, spawning: 0, activating: 0 });
  });

  test('a tight claim → release loop costs its workflow (almost) no signals; a claim that stays is told', async (t) => {
    const [worker] = await e2e.registry.store.listWorkers({ pool, states: ['idle'] });
    const handle = e2e.client.workflow.getHandle(workerLifecycleWorkflowId(pool, worker!.id));
    const signals = async () =>
      ((await handle.fetchHistory()).events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    const before = await signals();
    const cycles = 30;
    for (let i = 0; i < cycles; i++) {
      const lease = await e2e.corral.claim(pool, { tenant: 'acme', requestId: `tight-${i}` });
      await e2e.corral.release(lease);
    }
    await e2e.api.notifier.settled();
    await waitForWorkflowToAdopt(pool, worker!.id);
    const received = (await signals()) - before;
    t.diagnostic(`${2 * cycles} registry changes reached the workflow as ${received} signal(s)`);
    assert.ok(received < cycles, `${received} signals for ${2 * cycles} changes: coalesced`);

    // A claim the tenant keeps changes what the workflow must hold: it is told, with one signal.
    const kept = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'tight-kept' });
    await e2e.api.notifier.settled();
    await waitForWorkflowToAdopt(pool, worker!.id, { exactEpoch: true });
    assert.equal((await signals()) - before, received + 1);
    await e2e.corral.release(kept);
  });
});
