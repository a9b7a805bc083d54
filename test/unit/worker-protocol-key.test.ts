import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  WorkerProtocolKeyError,
  resolveWorkerProtocolKey,
  workerProtocolKeyVariable,
} from '../../src/config/worker-protocol-key';

const hex = 'ab'.repeat(32);

test('a 64-hex-digit key is read as 32 bytes, upper case and surrounding space accepted', () => {
  const env = { [workerProtocolKeyVariable]: ` ${hex.toUpperCase()}\n` };
  assert.equal(resolveWorkerProtocolKey({ env, mode: 'production' }).toString('hex'), hex);
  assert.equal(resolveWorkerProtocolKey({ env, mode: 'embedded' }).toString('hex'), hex);
});

test('production requires the key; the embedded stack generates a fresh one', () => {
  assert.throws(
    () => resolveWorkerProtocolKey({ env: {}, mode: 'production' }),
    (err: unknown) =>
      err instanceof WorkerProtocolKeyError &&
      err.variable === 'CORRAL_WORKER_PROTOCOL_KEY' &&
      /CORRAL_WORKER_PROTOCOL_KEY is not set/.test(err.message),
  );
  const a = resolveWorkerProtocolKey({ env: {}, mode: 'embedded' });
  const b = resolveWorkerProtocolKey({ env: {}, mode: 'embedded' });
  assert.equal(a.length, 32);
  assert.notDeepEqual(a, b);
});

test('a malformed key is a typed error naming the variable, never echoing the value', () => {
  for (const value of ['abc', 'zz'.repeat(32), 'ab'.repeat(33), `${'ab'.repeat(31)}a`]) {
    assert.throws(
      () => resolveWorkerProtocolKey({ env: { [workerProtocolKeyVariable]: value }, mode: 'production' }),
      (err: unknown) =>
        err instanceof WorkerProtocolKeyError &&
        err.message.startsWith('CORRAL_WORKER_PROTOCOL_KEY must be 64 hex digits') &&
        !err.message.includes(value),
    );
  }
});
