// corral.worker/v2 against hostile neighbours (issue 17): both demo workers (Node and Go) run as
// real processes with a protocol key in their credentials file; a hostile process on the same
// machine tries /activate with a forged proof, without one, with a replayed request, with another
// worker's key, and /drain on a reused port. Every attempt is refused, the worker keeps serving,
// and corral's own signed calls (the client and the lifecycle activities) succeed.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHealthActivities } from '../../src/activities/health-activities';
import { createRuntimeActivities } from '../../src/activities/runtime-activities';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { repoRoot } from '../../src/embedded/tools';
import { freePort } from '../../src/embedded/ports';
import { waitFor } from '../../src/embedded/wait';
import type { PodRuntime } from '../../src/runtime/pod-runtime';
import { workerProtocolV1, workerProtocolV2, type WorkerProtocolName } from '../../src/common';
import { postActivation, postDrain } from '../../src/runtime/worker-protocol-client';
import {
  checkAnswer,
  deriveWorkerKey,
  generateWorkerProtocolKey,
  nonceHeader,
  proofHeader,
  proofHeaders,
  timestampHeader,
} from '../../src/runtime/worker-protocol-proof';

const implementations = [
  { name: 'Node demo worker', image: async () => path.join(repoRoot, 'bin', 'corral-demo-worker') },
  { name: 'small worker (Go)', image: smallWorkerPath },
];

const masterKey = generateWorkerProtocolKey();
const timeout = () => AbortSignal.timeout(10_000);

interface Running {
  child: ChildProcess;
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

function writeCredentials(dir: string, workerId: string, withKey: boolean): string {
  const file = path.join(dir, `${workerId}.json`);
  const content = {
    workerId,
    epoch: 1,
    version: 1,
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    token: crypto.randomBytes(24).toString('base64url'),
    ...(withKey ? { protocolKey: deriveWorkerKey(masterKey, workerId).toString('hex') } : {}),
  };
  fs.writeFileSync(file, JSON.stringify(content), { mode: 0o600 });
  return file;
}

async function start(image: string, workerId: string, credentialsFile: string, port?: number): Promise<Running> {
  const listenPort = port ?? (await freePort());
  const child = spawn(image, [], {
    env: {
      PATH: [path.dirname(process.execPath), process.env.PATH ?? '/usr/bin:/bin'].join(path.delimiter),
      HOST: '127.0.0.1',
      PORT: String(listenPort),
      CORRAL_WORKER_ID: workerId,
      CORRAL_CREDENTIALS_FILE: credentialsFile,
    },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${listenPort}`;
  await Promise.race([
    exited.then(() => assert.fail(`${image} exited before it served`)),
    waitFor(async () => (await fetch(`${endpoint}/healthz`, { signal: AbortSignal.timeout(1_000) })).ok, {
      what: `${image} to serve`,
      timeoutMs: 20_000,
    }),
  ]);
  return {
    child,
    endpoint,
    port: listenPort,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A raw POST as a hostile process would send it. */
async function post(endpoint: string, route: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${endpoint}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    signal: timeout(),
  });
  const text = await res.text();
  return {
    status: res.status,
    json: JSON.parse(text) as Record<string, unknown>,
    text,
    proof: res.headers.get(proofHeader),
  };
}

async function health(endpoint: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${endpoint}/healthz`, { signal: timeout() })).json()) as Record<string, unknown>;
}

for (const implementation of implementations) {
  describe(implementation.name, () => {
    let dir: string;
    let image: string;
    let worker: Running;
    const workerId = `w-v2-${crypto.randomBytes(4).toString('hex')}`;
    const neighbourId = `w-v2-${crypto.randomBytes(4).toString('hex')}`;
    const workerKey = deriveWorkerKey(masterKey, workerId);
    const neighbourKey = deriveWorkerKey(masterKey, neighbourId);
    const running: Running[] = [];

    before(async () => {
      image = await implementation.image();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-worker-protocol-v2-'));
      worker = await start(image, workerId, writeCredentials(dir, workerId, true));
      running.push(worker);
    });

    after(async () => {
      for (const r of running) await r.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    test('health reveals nothing a neighbour can use', async () => {
      assert.deepEqual(await health(worker.endpoint), { status: 'serving', protocol: workerProtocolV2 });
    });

    test("corral's signed activation is accepted and the answer carries the worker's proof", async () => {
      const answer = await postActivation(worker.endpoint, { workerId, epoch: 2, tenant: null }, timeout(), {
        workerKey,
      });
      assert.deepEqual(answer, { outcome: 'accepted', credentialVersion: 1 });
    });

    test('a hostile process: forged, missing, stale, replayed and neighbour-keyed proofs are all refused', async () => {
      const pinned = JSON.stringify({ workerId, epoch: Number.MAX_SAFE_INTEGER, tenant: 'evil' });
      const now = String(Math.floor(Date.now() / 1000));
      const forged = await post(worker.endpoint, '/activate', pinned, {
        [timestampHeader]: now,
        [nonceHeader]: crypto.randomBytes(16).toString('hex'),
        [proofHeader]: crypto.randomBytes(32).toString('hex'),
      });
      assert.deepEqual([forged.status, forged.json], [401, { error: 'proof_invalid' }]);
      assert.equal(forged.proof, null, 'an unproven call gets no signed answer');

      const missing = await post(worker.endpoint, '/activate', pinned);
      assert.deepEqual([missing.status, missing.json], [401, { error: 'proof_missing' }]);

      // Signed with the right key two minutes ago (as if captured then): outside the window.
      const stale = proofHeaders(workerKey, 'POST', '/activate', pinned, Date.now() - 120_000);
      const expired = await post(worker.endpoint, '/activate', pinned, stale);
      assert.deepEqual([expired.status, expired.json], [401, { error: 'proof_expired' }]);

      // Another worker holds its own key only: its proof over this worker's id is not this worker's.
      const neighbourSigned = proofHeaders(neighbourKey, 'POST', '/activate', pinned);
      const wrongKey = await post(worker.endpoint, '/activate', pinned, neighbourSigned);
      assert.deepEqual([wrongKey.status, wrongKey.json], [401, { error: 'proof_invalid' }]);

      // A body changed under a captured proof.
      const captured = JSON.stringify({ workerId, epoch: 3, tenant: 'acme' });
      const headers = proofHeaders(workerKey, 'POST', '/activate', captured);
      const tampered = await post(worker.endpoint, '/activate', pinned, headers);
      assert.deepEqual([tampered.status, tampered.json], [401, { error: 'proof_invalid' }]);

      // corral's request goes through once; the same bytes again are a replay.
      const first = await post(worker.endpoint, '/activate', captured, headers);
      assert.equal(first.status, 200, first.text);
      assert.ok(checkAnswer(workerKey, headers[proofHeader] ?? '', first.text, first.proof), 'the answer is proven');
      const replayed = await post(worker.endpoint, '/activate', captured, headers);
      assert.deepEqual([replayed.status, replayed.json], [401, { error: 'proof_replayed' }]);

      // A proof for /drain does not open /activate, and a v1 (unsigned) drain is refused.
      const drainBody = JSON.stringify({ workerId, epoch: 3 });
      const crossRoute = await post(
        worker.endpoint,
        '/activate',
        drainBody,
        proofHeaders(workerKey, 'POST', '/drain', drainBody),
      );
      assert.deepEqual([crossRoute.status, crossRoute.json], [401, { error: 'proof_invalid' }]);
      const unsignedDrain = await post(worker.endpoint, '/drain', drainBody);
      assert.deepEqual([unsignedDrain.status, unsignedDrain.json], [401, { error: 'proof_missing' }]);

      // The worker keeps serving, at corral's epoch, and corral's next call succeeds.
      assert.deepEqual(await health(worker.endpoint), { status: 'serving', protocol: workerProtocolV2 });
      assert.deepEqual(
        await postActivation(worker.endpoint, { workerId, epoch: 4, tenant: 'acme' }, timeout(), { workerKey }),
        { outcome: 'accepted', credentialVersion: 1 },
      );
      const lower = await postActivation(worker.endpoint, { workerId, epoch: 3, tenant: 'acme' }, timeout(), {
        workerKey,
      });
      assert.deepEqual(lower, { outcome: 'refused', status: 409, error: 'stale_epoch', highestEpoch: 4 });
    });

    test('corral signing a call for another worker id is refused by this worker', async () => {
      // corral means the neighbour, but this worker answers at the address: wrong key, refused.
      const answer = await postActivation(
        worker.endpoint,
        { workerId: neighbourId, epoch: 9, tenant: null },
        timeout(),
        { workerKey: neighbourKey },
      );
      assert.deepEqual(answer, { outcome: 'refused', status: 401, error: 'proof_invalid', highestEpoch: null });
    });

    test('a drain meant for a dead worker, sent to its reused port, drains nothing', async () => {
      const goneId = `w-v2-gone-${crypto.randomBytes(4).toString('hex')}`;
      const gone = await start(image, goneId, writeCredentials(dir, goneId, true));
      running.push(gone);
      await gone.stop();
      // Another worker now listens on the dead worker's port.
      const reused = await start(image, neighbourId, writeCredentials(dir, neighbourId, true), gone.port);
      running.push(reused);
      const drain = await postDrain(gone.endpoint, { workerId: goneId, epoch: 1 }, timeout(), {
        workerKey: deriveWorkerKey(masterKey, goneId),
      });
      assert.deepEqual(drain, { outcome: 'refused', acknowledged: false, drained: false, error: 'proof_invalid' });
      assert.deepEqual(await health(reused.endpoint), { status: 'serving', protocol: workerProtocolV2 });
      // Its own drain, from corral, is taken.
      assert.deepEqual(
        await postDrain(reused.endpoint, { workerId: neighbourId, epoch: 1 }, timeout(), { workerKey: neighbourKey }),
        { outcome: 'drained', acknowledged: true, drained: true },
      );
      assert.deepEqual(await health(reused.endpoint), { status: 'draining', protocol: workerProtocolV2 });
    });

    test("the health monitor's signed probes tell this worker from another one at the address", async () => {
      const health = createHealthActivities({} as PodRuntime, { workerProtocolKey: masterKey });
      /** The failure counts the monitor heartbeats, until `enough` of them have been seen. */
      const counts = async (endpoint: string, id: string, enough: (seen: number[]) => boolean) => {
        const env = new MockActivityEnvironment();
        const seen: number[] = [];
        env.on('heartbeat', (details: { consecutiveFailures: number }) => {
          seen.push(details.consecutiveFailures);
          if (enough(seen)) env.cancel();
        });
        const input = {
          ref: { name: 'unused', workerId: id, pool: 'demo', spawnAttempt: 1 },
          endpoint,
          workerId: id,
          intervalMs: 10,
          failureThreshold: 1_000,
        };
        await assert.rejects(env.run(health.monitorWorkerHealth, input));
        return seen;
      };
      // This worker proves itself: no failure after several probes.
      assert.deepEqual(await counts(worker.endpoint, workerId, (seen) => seen.length >= 4), [0, 0, 0, 0]);
      // Asked about another worker id, the same address cannot prove it: every probe fails.
      assert.deepEqual(await counts(worker.endpoint, neighbourId, (seen) => seen.length >= 3), [0, 1, 2]);
      // A signed probe's answer carries the proof; an unsigned one does not, and both say nothing more.
      const headers = proofHeaders(workerKey, 'GET', '/healthz', '');
      const signedProbe = await fetch(`${worker.endpoint}/healthz`, { headers, signal: timeout() });
      const text = await signedProbe.text();
      assert.ok(checkAnswer(workerKey, headers[proofHeader] ?? '', text, signedProbe.headers.get(proofHeader)));
      const unsigned = await fetch(`${worker.endpoint}/healthz`, { signal: timeout() });
      assert.equal(unsigned.headers.get(proofHeader), null);
      assert.equal(await unsigned.text(), text);
    });

    test('the lifecycle activities sign; a v1-only worker is TypeMismatch unless its pool opted into v1', async () => {
      const activities = createRuntimeActivities({} as PodRuntime, {
        heartbeatIntervalMs: 50,
        workerProtocolKey: masterKey,
      });
      const env = new MockActivityEnvironment();
      assert.deepEqual(
        await env.run(activities.activateWorker, { endpoint: worker.endpoint, workerId, epoch: 5, tenant: 'acme' }),
        { credentialVersion: 1 },
      );

      const v1Id = `w-v1-${crypto.randomBytes(4).toString('hex')}`;
      const v1 = await start(image, v1Id, writeCredentials(dir, v1Id, false));
      running.push(v1);
      assert.equal((await health(v1.endpoint)).protocol, workerProtocolV1);
      await assert.rejects(
        env.run(activities.activateWorker, { endpoint: v1.endpoint, workerId: v1Id, epoch: 1, tenant: null }),
        (err: unknown) => err instanceof ApplicationFailure && err.type === 'TypeMismatch' && err.nonRetryable,
      );
      assert.equal((await health(v1.endpoint)).highestEpoch, 0, 'the v1 worker was never activated');
      assert.deepEqual(
        await env.run(activities.activateWorker, {
          endpoint: v1.endpoint,
          workerId: v1Id,
          epoch: 1,
          tenant: null,
          protocol: workerProtocolV1 as WorkerProtocolName,
        }),
        { credentialVersion: 1 },
      );

      assert.deepEqual(
        await env.run(activities.requestWorkerDrain, { endpoint: worker.endpoint, workerId, epoch: 5 }),
        { outcome: 'drained', acknowledged: true, drained: true },
      );
      assert.deepEqual(await health(worker.endpoint), { status: 'draining', protocol: workerProtocolV2 });
    });
  });
}
