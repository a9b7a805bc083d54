// A pool's `runtime` decides where its workers run: the corral API of a worker running one
// runtime refuses a pool that asks for the other (invalid_request naming `runtime`) before
// anything is written, instead of spawning the pool's workers where its spec says they do not run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Client } from '@temporalio/client';
import { PoolService } from '../../src/api/pool-service';
import { CorralError } from '../../src/client/errors';
import type { PoolStore } from '../../src/registry/pool-store';

const spec = (runtime: string) => ({
  name: 'demo',
  runtime,
  image: runtime === 'process' ? '/usr/local/bin/worker' : 'registry.example/worker:1',
  minIdle: 1,
  maxWorkers: 2,
});

/** A registry that records writes and stops there (the tests only ask whether one was attempted). */
function recordingStore(): { store: PoolStore; written: unknown[] } {
  const written: unknown[] = [];
  const store = {
    async applyPool(record: unknown) {
      written.push(record);
      throw new Error('written');
    },
  } as unknown as PoolStore;
  return { store, written };
}

const temporal = {} as Client;

test('a kubernetes corral refuses a process pool: invalid_request on runtime, nothing written', async () => {
  const { store, written } = recordingStore();
  const service = new PoolService(store, temporal, 'corral', 'kubernetes');
  await assert.rejects(service.applyPool(spec('process')), (err: unknown) => {
    assert.ok(err instanceof CorralError, String(err));
    assert.equal(err.code, 'invalid_request');
    assert.equal(err.field, 'runtime');
    assert.match(err.message, /process/);
    return true;
  });
  assert.deepEqual(written, []);
});

test('a process corral refuses a kubernetes pool', async () => {
  const { store, written } = recordingStore();
  const service = new PoolService(store, temporal, 'corral', 'process');
  await assert.rejects(service.applyPool(spec('kubernetes')), { code: 'invalid_request', field: 'runtime' });
  assert.deepEqual(written, []);
});

test("a pool of the corral's own runtime is written", async () => {
  const { store, written } = recordingStore();
  const service = new PoolService(store, temporal, 'corral', 'kubernetes');
  await assert.rejects(service.applyPool(spec('kubernetes')), /written/);
  assert.equal(written.length, 1);
});
