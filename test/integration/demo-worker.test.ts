// The demo workers speak the worker protocol: health with its protocol version, activation that
// refuses a lower epoch than it has seen and reads the mounted credentials (never echoing them),
// and drain. One set of assertions runs against each implementation, started as corral runs it
// locally (a real process from the process runtime): the Node demo worker and the small Go worker
// (src/demo-worker/small). A differential test then sends both the same corpus of requests, odd
// ones included, and requires byte-identical answers, so the two cannot drift apart. Last, the
// bundle the Node worker's image is built from.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { repoRoot } from '../../src/embedded/tools';
import { freePort } from '../../src/embedded/ports';
import { waitFor } from '../../src/embedded/wait';
import { workerUid } from '../../src/runtime/kubernetes/pod-manifest';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import { workerProtocolV1, type WorkerPodRef } from '../../src/common';
import {
  deriveWorkerKey,
  generateWorkerProtocolKey,
  nonceHeader,
  proofHeader,
  signRequest,
  timestampHeader,
} from '../../src/runtime/worker-protocol-proof';
import { credentials, newWorkerId } from './runtime-behaviour';

interface Implementation {
  name: string;
  /** The process-runtime image: the executable's path. */
  image(): Promise<string>;
}

const implementations: Implementation[] = [
  { name: 'Node demo worker', image: async () => path.join(repoRoot, 'bin', 'corral-demo-worker') },
  { name: 'small worker (Go)', image: smallWorkerPath },
];

const maxBodyBytes = 64 * 1024;

interface Answer {
  status: number;
  contentType: string | null;
  text: string;
  json: Record<string, unknown>;
}

async function call(
  endpoint: string,
  method: string,
  route: string,
  body?: string | Uint8Array | object,
): Promise<Answer> {
  const raw =
    body === undefined || typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const res = await fetch(`${endpoint}${route}`, {
    method,
    headers: raw === undefined ? {} : { 'content-type': 'application/json' },
    body: raw,
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON: the caller compares the text.
  }
  return { status: res.status, contentType: res.headers.get('content-type'), text, json };
}

/** The environment the process runtime gives a worker (src/runtime/process/process-runtime.ts). */
function workerEnv(port: number, workerId: string, credentialsFile: string): NodeJS.ProcessEnv {
  return {
    PATH: [path.dirname(process.execPath), process.env.PATH ?? '/usr/bin:/bin'].join(path.delimiter),
    HOST: '127.0.0.1',
    PORT: String(port),
    CORRAL_WORKER_ID: workerId,
    CORRAL_POOL: 'demo',
    CORRAL_CREDENTIALS_FILE: credentialsFile,
  };
}

interface DirectWorker {
  child: ChildProcess;
  endpoint: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a worker as a plain child process and waits until its health answers. */
async function startDirect(image: string, workerId: string, credentialsFile: string): Promise<DirectWorker> {
  const port = await freePort();
  const child = spawn(image, [], { env: workerEnv(port, workerId, credentialsFile), stdio: 'ignore' });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const failed = new Promise<never>((_, reject) => {
    child.once('error', reject);
    void exited.then((exit) => reject(new Error(`${image} exited before it served: ${JSON.stringify(exit)}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await Promise.race([
    failed,
    waitFor(async () => (await fetch(`${endpoint}/healthz`, { signal: AbortSignal.timeout(1_000) })).ok, {
      what: `${image} to serve`,
      timeoutMs: 20_000,
    }),
  ]);
  return { child, endpoint, exited };
}

function writeFile(file: string, content: string | Uint8Array): void {
  fs.writeFileSync(file, content, { mode: 0o600 });
}

/** The worker process under coreutils `timeout` in the process runtime's record (bash has exec'd). */
function workerPid(stateDir: string, ref: WorkerPodRef): number {
  const record = JSON.parse(fs.readFileSync(path.join(stateDir, 'workers', ref.name, 'worker.json'), 'utf8')) as {
    process: { pid: number };
  };
  const { pid } = record.process;
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  return children.length === 1 ? Number(children[0]) : pid;
}

for (const implementation of implementations) {
  describe(implementation.name, () => {
    let stateDir: string;
    let runtime: ProcessPodRuntime;
    let ref: WorkerPodRef;
    let endpoint: string;
    let image: string;
    const firstCredentials = credentials(1);
    const activate = (body: string | object) => call(endpoint, 'POST', '/activate', body);

    before(async () => {
      image = await implementation.image();
      stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-demo-worker-'));
      runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
      ({ ref } = await runtime.create(
        {
          workerId: newWorkerId(),
          pool: 'demo',
          spawnAttempt: 1,
          epoch: 1,
          image,
          resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
          maxLifetimeSeconds: 3_600,
        },
        firstCredentials,
      ));
      const outcome = await runtime.awaitReady(ref, { timeoutMs: 20_000 });
      assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
      endpoint = outcome.status === 'ready' ? outcome.endpoint : '';
    });

    after(async () => {
      if (ref) await runtime.delete(ref);
      if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
    });

    test('idle memory (reported, not asserted)', (t) => {
      const status = fs.readFileSync(`/proc/${workerPid(stateDir, ref)}/status`, 'utf8');
      const rss = /^VmRSS:\s*(.+)$/m.exec(status)?.[1] ?? 'unknown';
      t.diagnostic(`${implementation.name}: idle VmRSS ${rss}`);
    });

    test('health answers with the protocol version and the worker id', async () => {
      const health = await call(endpoint, 'GET', '/healthz');
      assert.equal(health.status, 200);
      assert.equal(health.contentType, 'application/json');
      assert.deepEqual(health.json, {
        status: 'serving',
        protocol: workerProtocolV1,
        workerId: ref.workerId,
        highestEpoch: 0,
        tenant: null,
      });
    });

    test('malformed requests are refused before anything changes', async () => {
      const id = ref.workerId;
      const refusals: [string, string | object, number, Record<string, unknown>][] = [
        ['no body', '', 400, { error: 'invalid_request', field: 'body' }],
        ['not JSON', '{"workerId":', 400, { error: 'invalid_json' }],
        ['an array', [], 400, { error: 'invalid_request', field: 'body' }],
        ['null', 'null', 400, { error: 'invalid_request', field: 'body' }],
        ['empty workerId', { workerId: '', epoch: 1, tenant: null }, 400, { field: 'workerId' }],
        ['129-character workerId', { workerId: 'a'.repeat(129), epoch: 1, tenant: null }, 400, { field: 'workerId' }],
        // 64 emoji are 128 UTF-16 code units: within bounds (then it is not this worker).
        ['128 code units', { workerId: '😀'.repeat(64), epoch: 1, tenant: null }, 409, { error: 'wrong_worker' }],
        ['workerId a number', { workerId: 7, epoch: 1, tenant: null }, 400, { field: 'workerId' }],
        ['epoch 0', { workerId: id, epoch: 0, tenant: null }, 400, { field: 'epoch' }],
        ['fractional epoch', { workerId: id, epoch: 1.5, tenant: null }, 400, { field: 'epoch' }],
        ['epoch past 2^53-1', '{"workerId":"x","epoch":9007199254740992,"tenant":null}', 400, { field: 'epoch' }],
        ['epoch overflowing a double', '{"workerId":"x","epoch":1e400,"tenant":null}', 400, { field: 'epoch' }],
        ['epoch a string', { workerId: id, epoch: '1', tenant: null }, 400, { field: 'epoch' }],
        ['tenant missing', { workerId: id, epoch: 1 }, 400, { field: 'tenant' }],
        ['empty tenant', { workerId: id, epoch: 1, tenant: '' }, 400, { field: 'tenant' }],
        ['129-character tenant', { workerId: id, epoch: 1, tenant: 't'.repeat(129) }, 400, { field: 'tenant' }],
        ['an unknown field', { workerId: id, epoch: 1, tenant: null, admin: true }, 400, { field: 'body' }],
        ['fields are checked first', { workerId: 1, epoch: 1, tenant: null, admin: true }, 400, { field: 'workerId' }],
      ];
      for (const [what, body, status, expected] of refusals) {
        const answer = await activate(body);
        assert.equal(answer.status, status, `${what}: ${answer.text}`);
        assert.deepEqual({ ...answer.json, ...expected }, answer.json, `${what}: ${answer.text}`);
        if (answer.json.error === 'invalid_request') assert.equal(typeof answer.json.message, 'string', what);
      }
      const health = await call(endpoint, 'GET', '/healthz');
      assert.deepEqual(
        { highestEpoch: health.json.highestEpoch, tenant: health.json.tenant },
        { highestEpoch: 0, tenant: null },
      );
    });

    test('routes: unknown ones are 404, and every route reads its body first (bounded at 64 KiB)', async () => {
      assert.deepEqual((await call(endpoint, 'GET', '/nowhere')).json, { error: 'not_found' });
      assert.equal((await call(endpoint, 'GET', '/activate')).status, 404, 'activation is POST only');
      assert.equal((await call(endpoint, 'GET', '/healthz?verbose=1')).status, 200, 'the query is ignored');
      const atLimit = `"${'x'.repeat(maxBodyBytes - 2)}"`;
      assert.equal((await call(endpoint, 'POST', '/nowhere', atLimit)).status, 404, 'exactly 64 KiB is read');
      const overLimit = await call(endpoint, 'POST', '/nowhere', `${atLimit} `);
      assert.deepEqual(
        { status: overLimit.status, json: overLimit.json },
        { status: 413, json: { error: 'body_too_large' } },
      );
      assert.deepEqual((await call(endpoint, 'POST', '/nowhere', '{')).json, { error: 'invalid_json' });
    });

    test('activation takes the highest epoch, refuses a lower one, and reports the credential version only', async () => {
      const activated = await activate({ workerId: ref.workerId, epoch: 2, tenant: 'acme' });
      assert.equal(activated.status, 200, activated.text);
      assert.deepEqual(activated.json, { workerId: ref.workerId, epoch: 2, tenant: 'acme', credentialVersion: 1 });
      assert.ok(!activated.text.includes(firstCredentials.token), 'the token is never echoed');

      const stale = await activate({ workerId: ref.workerId, epoch: 1, tenant: 'evil' });
      assert.equal(stale.status, 409);
      assert.deepEqual(stale.json, { error: 'stale_epoch', highestEpoch: 2 });

      const same = await activate({ workerId: ref.workerId, epoch: 2, tenant: 'acme' });
      assert.equal(same.status, 200, 'the same epoch again is an idempotent re-activation');

      // A refresh: corral rotates the credentials file, then re-activates with the new epoch.
      await runtime.writeCredentials(ref, credentials(3, 2));
      const refreshed = await activate({ workerId: ref.workerId, epoch: 3, tenant: 'acme' });
      assert.equal(refreshed.json.credentialVersion, 2, 'the worker re-read the mounted file');

      const wrongWorker = await activate({ workerId: 'someone-else', epoch: 9, tenant: 'acme' });
      assert.equal(wrongWorker.status, 409);
      assert.deepEqual(wrongWorker.json, { error: 'wrong_worker', workerId: ref.workerId });

      const invalid = await activate({ workerId: ref.workerId, epoch: -1, tenant: 'acme' });
      assert.equal(invalid.status, 400);
      assert.deepEqual(
        { error: invalid.json.error, field: invalid.json.field },
        { error: 'invalid_request', field: 'epoch' },
      );

      const health = await call(endpoint, 'GET', '/healthz');
      assert.deepEqual(
        { highestEpoch: health.json.highestEpoch, tenant: health.json.tenant },
        { highestEpoch: 3, tenant: 'acme' },
      );
    });

    test('unreadable credentials: 503, nothing changes; readable again: served', async () => {
      const file = path.join(stateDir, 'workers', ref.name, 'credentials.json');
      const rotated = credentials(4, 3);
      for (const content of ['', 'not json', JSON.stringify({ epoch: 4, version: 3, expiresAt: 'later', token: '' })]) {
        writeFile(file, content);
        const refused = await activate({ workerId: ref.workerId, epoch: 4, tenant: 'acme' });
        assert.deepEqual(
          { status: refused.status, json: refused.json },
          { status: 503, json: { error: 'credentials_unavailable' } },
        );
      }
      fs.rmSync(file);
      assert.equal((await activate({ workerId: ref.workerId, epoch: 4, tenant: 'acme' })).status, 503, 'no file');
      assert.equal((await call(endpoint, 'GET', '/healthz')).json.highestEpoch, 3);
      await runtime.writeCredentials(ref, rotated);
      const served = await activate({ workerId: ref.workerId, epoch: 4, tenant: null });
      assert.deepEqual(served.json, { workerId: ref.workerId, epoch: 4, tenant: null, credentialVersion: 3 });
      assert.ok(!served.text.includes(rotated.token), 'the token is never echoed');
    });

    test('a drain naming another worker or an epoch below the highest seen is refused, and drains nothing', async () => {
      const highestEpoch = (await call(endpoint, 'GET', '/healthz')).json.highestEpoch as number;
      assert.ok(highestEpoch >= 2, 'an earlier test activated the worker');
      const other = await call(endpoint, 'POST', '/drain', JSON.stringify({ workerId: 'w-someone-else', epoch: 99 }));
      assert.deepEqual(
        { status: other.status, json: other.json },
        { status: 409, json: { error: 'wrong_worker', workerId: ref.workerId } },
      );
      const stale = await call(endpoint, 'POST', '/drain', JSON.stringify({ workerId: ref.workerId, epoch: 1 }));
      assert.deepEqual(
        { status: stale.status, json: stale.json },
        { status: 409, json: { error: 'stale_epoch', highestEpoch } },
      );
      assert.equal((await call(endpoint, 'GET', '/healthz')).json.status, 'serving');
    });

    test('after drain the worker refuses activations and says it is draining', async () => {
      const drained = await call(endpoint, 'POST', '/drain');
      assert.deepEqual(
        { status: drained.status, json: drained.json },
        { status: 200, json: { status: 'draining', workerId: ref.workerId, drained: true } },
      );
      const refused = await activate({ workerId: ref.workerId, epoch: 10, tenant: 'acme' });
      assert.equal(refused.status, 409);
      assert.equal(refused.json.error, 'draining');
      assert.equal(
        (await activate({ workerId: ref.workerId, epoch: 1, tenant: 'acme' })).json.error,
        'draining',
        'before the epoch',
      );
      assert.equal((await call(endpoint, 'GET', '/healthz')).json.status, 'draining');
    });

    test('SIGTERM: the worker stops serving and exits 0', async () => {
      const credentialsFile = path.join(stateDir, 'direct-credentials.json');
      writeFile(credentialsFile, JSON.stringify({ epoch: 1, version: 1, expiresAt: 'later', token: 'x'.repeat(32) }));
      const worker = await startDirect(image, 'direct', credentialsFile);
      worker.child.kill('SIGTERM');
      assert.deepEqual(await worker.exited, { code: 0, signal: null });
    });
  });
}

test('the Node and the small worker answer every request alike, byte for byte', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-demo-worker-diff-'));
  const workerId = newWorkerId();
  const workers: DirectWorker[] = [];
  const files: string[] = [];
  try {
    for (const [i, implementation] of implementations.entries()) {
      files.push(path.join(dir, `credentials-${i}.json`));
      writeFile(files[i] as string, JSON.stringify({ workerId, epoch: 1, version: 1, expiresAt: 'x', token: 'tok' }));
      workers.push(await startDirect(await implementation.image(), workerId, files[i] as string));
    }
    const json = (value: unknown) => JSON.stringify(value);
    const bytes = (...parts: (string | number[])[]) =>
      Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
    const invalidUtf8 = [
      0xe2, 0x82, 0xff, 0xf0, 0x9f, 0x98, 0xed, 0xa0, 0x80, 0xc0, 0xaf, 0xf4, 0x90, 0x80, 0x80, 0xe0, 0x80,
    ];
    const valid = (epoch: number | string, tenant = 'null') =>
      `{"workerId":"${workerId}","epoch":${epoch},"tenant":${tenant}}`;
    type Step = {
      method?: string;
      route?: string;
      body?: string | Uint8Array;
      credentials?: string | Uint8Array | null;
    };
    const activations = (bodies: (string | Uint8Array)[]): Step[] => bodies.map((body) => ({ body }));
    const steps: Step[] = [
      { method: 'GET', route: '/healthz' },
      { method: 'GET', route: '/healthz?x=1' },
      { method: 'GET', route: '/healthz/' },
      { method: 'GET', route: '//healthz' },
      { method: 'PUT', route: '/activate', body: valid(1) },
      { method: 'DELETE', route: '/drain' },
      { method: 'POST', route: '/nope', body: 'x' },
      ...activations([
        '',
        ' ',
        '\ufeff{}',
        '{',
        '{}',
        '[]',
        'null',
        '"s"',
        '5',
        'true',
        '{"a":1,}',
        '[1,]',
        '01',
        '-',
        '1.',
        '.5',
        '+1',
        'NaN',
        'tru',
        '"\\x"',
        '"\\u12"',
        '"a\nb"',
        ' {} ',
        `${'['.repeat(30_000)}${']'.repeat(30_000)}`,
        json({ workerId: '', epoch: 1, tenant: null }),
        json({ workerId: 'a'.repeat(129), epoch: 1, tenant: null }),
        json({ workerId: '😀'.repeat(64), epoch: 1, tenant: null }),
        json({ workerId: '😀'.repeat(65), epoch: 1, tenant: null }),
        json({ workerId: null, epoch: 1, tenant: null }),
        json({ workerId: {}, epoch: 1, tenant: null }),
        json({ epoch: 1, tenant: null }),
        ...['0', '-0', '1.5', '0.5', '-1.5', '9007199254740992', '-9007199254740992', '-9007199254740991', '1e300'].map(
          (e) => valid(e),
        ),
        ...['1e400', '-1e400', '"1"', 'true', 'null', '[]', '{}'].map((e) => valid(e)),
        `{"workerId":"${workerId}","epoch":1}`,
        valid(1, '""'),
        valid(1, json('t'.repeat(129))),
        valid(1, '5'),
        valid(1, '["a"]'),
        `{"workerId":"${workerId}","epoch":1,"tenant":null,"b":1,"2":1,"1":1,"4294967295":1,"4294967294":1,"01":1}`,
        `{"workerId":"${workerId}","epoch":1,"tenant":null,"__proto__":{"workerId":"x"}}`,
        `{"workerId":"${workerId}","epoch":1,"tenant":null,"\\ud800\\u0001\\u2028<&>":1}`,
        `{"workerId":1,"epoch":"e","tenant":0,"extra":1}`,
        `{"tenant":0,"epoch":"e","workerId":"${workerId}"}`,
        bytes(`{"workerId":"${workerId}","epoch":1,"tenant":null,"`, invalidUtf8, '":1}'),
      ]),
      // Credentials the worker cannot use: 503 and nothing changes.
      ...['', 'not json', '[]', 'null', '{}', '\ufeff{"epoch":1,"version":1,"expiresAt":"x","token":"t"}']
        .concat(
          [
            { epoch: 1, version: 1, expiresAt: 'x' },
            { epoch: 1, version: 1, expiresAt: 'x', token: '' },
            { epoch: 1, version: 1.5, expiresAt: 'x', token: 't' },
            { epoch: 1, version: 1e20, expiresAt: 'x', token: 't' },
            { epoch: '1', version: 1, expiresAt: 'x', token: 't' },
            { epoch: 1, version: 1, expiresAt: 5, token: 't' },
          ].map(json),
        )
        .map((credentials): Step => ({ credentials, body: valid(1) })),
      { credentials: null, body: valid(1) },
      // Credentials it can use: only the version comes back.
      { credentials: json({ epoch: 1, version: -0, expiresAt: 'x', token: 't', extra: [1] }), body: valid(1) },
      { credentials: '{"epoch":1,"version":1,"version":9007199254740991,"expiresAt":"x","token":"t"}', body: valid(1) },
      { credentials: json({ epoch: 1, version: -9007199254740991, expiresAt: 'x', token: 't' }), body: valid(1) },
      { credentials: json({ epoch: 1, version: 7, expiresAt: 'x', token: 'secret' }), body: valid(1) },
      ...activations([
        valid(1),
        valid('2.0', json('<>&\u2028\u2029\u0001\u001f\b\f\n\r\t"\\/\u007f😀')),
        valid('30e-1', '"\\ud800\\udbff\\udc00x\\ud83d\\ude00\\u00e9"'),
        bytes(`{"workerId":"${workerId}","epoch":3,"tenant":"`, invalidUtf8, '"}'),
        `{"workerId":5,"workerId":"${workerId}","epoch":3,"tenant":"dup"}`,
        valid(2),
        `{"workerId":"other","epoch":2,"tenant":null}`,
        valid(9007199254740991, '"max"'),
      ]),
      { method: 'GET', route: '/healthz' },
      { method: 'POST', route: '/nope', body: `"${'x'.repeat(maxBodyBytes - 2)}"` },
      { method: 'POST', route: '/nope', body: `"${'x'.repeat(maxBodyBytes - 1)}"` },
      {
        body: `${valid(9007199254740991, '"padded"')}${' '.repeat(maxBodyBytes - valid(9007199254740991, '"padded"').length)}`,
      },
      { method: 'POST', route: '/drain', body: '{"ignored":true}' },
      ...activations([valid(9007199254740991), valid(1), '{}', '{"workerId":"other","epoch":1,"tenant":null}']),
      { method: 'GET', route: '/healthz' },
      { method: 'POST', route: '/drain', body: '[' },
    ];
    for (const [n, step] of steps.entries()) {
      const answers: Omit<Answer, 'json'>[] = [];
      for (const [i, worker] of workers.entries()) {
        if (step.credentials === null) fs.rmSync(files[i] as string, { force: true });
        else if (step.credentials !== undefined) writeFile(files[i] as string, step.credentials);
        const { status, contentType, text } = await call(
          worker.endpoint,
          step.method ?? 'POST',
          step.route ?? '/activate',
          step.body,
        ).catch((err: unknown) => {
          throw new Error(`step ${n} (worker ${i}): ${String(err)}`, { cause: err });
        });
        answers.push({ status, contentType, text });
      }
      const what = `step ${n}: ${step.method ?? 'POST'} ${step.route ?? '/activate'} ${String(step.body ?? '').slice(0, 120)}`;
      assert.deepEqual(answers[1], answers[0], what);
    }
  } finally {
    for (const worker of workers) worker.child.kill('SIGTERM');
    await Promise.all(workers.map((worker) => worker.exited));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('corral.worker/v2: the Node and the small worker answer every request alike, proofs included', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-demo-worker-v2-diff-'));
  const workerId = newWorkerId();
  const masterKey = generateWorkerProtocolKey();
  const key = deriveWorkerKey(masterKey, workerId);
  const workers: DirectWorker[] = [];
  try {
    for (const [i, implementation] of implementations.entries()) {
      const file = path.join(dir, `credentials-${i}.json`);
      const content = {
        workerId,
        epoch: 1,
        version: 3,
        expiresAt: 'x',
        token: 'tok',
        protocolKey: key.toString('hex'),
      };
      writeFile(file, JSON.stringify(content));
      workers.push(await startDirect(await implementation.image(), workerId, file));
    }
    const now = () => Math.floor(Date.now() / 1000);
    const nonce = () => crypto.randomBytes(16).toString('hex');
    /** Headers signed with `signingKey` over exactly what is sent (unless a field is overridden). */
    const signed = (
      route: string,
      body: string,
      over: { timestamp?: string; nonce?: string; proof?: string; key?: Buffer; method?: string } = {},
    ): Record<string, string> => {
      const timestamp = over.timestamp ?? String(now());
      const n = over.nonce ?? nonce();
      return {
        [timestampHeader]: timestamp,
        [nonceHeader]: n,
        [proofHeader]: over.proof ?? signRequest(over.key ?? key, over.method ?? 'POST', route, timestamp, n, body),
      };
    };
    const act = (epoch: number | string, tenant = 'null') =>
      `{"workerId":"${workerId}","epoch":${epoch},"tenant":${tenant}}`;
    const drainOf = (epoch: number) => `{"workerId":"${workerId}","epoch":${epoch}}`;
    type Step = { method?: string; route?: string; body?: string; headers?: Record<string, string> };
    const post = (route: string, body: string, headers?: Record<string, string>): Step => ({ route, body, headers });
    const replayed = signed('/activate', act(2));
    const probe = signed('/healthz', '', { method: 'GET' });
    const steps: Step[] = [
      { method: 'GET', route: '/healthz' },
      // A signed probe is answered with the worker's proof (again and again: it changes nothing).
      { method: 'GET', route: '/healthz', headers: probe },
      { method: 'GET', route: '/healthz', headers: probe },
      {
        method: 'GET',
        route: '/healthz',
        headers: signed('/healthz', '', { method: 'GET', key: deriveWorkerKey(masterKey, 'x') }),
      },
      { method: 'GET', route: '/healthz', headers: signed('/healthz', '') },
      post('/activate', act(1)),
      post('/drain', drainOf(1)),
      post('/activate', act(1), { [timestampHeader]: String(now()) }),
      post('/activate', act(1), { ...signed('/activate', act(1)), [nonceHeader]: '' }),
      ...['01', '-1', '1.0', ' 1', 'x', '99999999999999999', String(now() - 61), String(now() + 61)].map((t) =>
        post('/activate', act(1), signed('/activate', act(1), { timestamp: t })),
      ),
      ...[nonce().slice(1), nonce().toUpperCase(), 'g'.repeat(32)].map((n) =>
        post('/activate', act(1), signed('/activate', act(1), { nonce: n })),
      ),
      post('/activate', act(1), signed('/activate', act(1), { proof: 'A'.repeat(64) })),
      post('/activate', act(1), signed('/activate', act(1), { proof: '0'.repeat(64) })),
      post('/activate', act(1), signed('/activate', act(1), { key: deriveWorkerKey(masterKey, 'other') })),
      post('/activate', act(99), signed('/activate', act(1))),
      post('/activate', act(1), signed('/drain', act(1))),
      post('/activate', '[', signed('/activate', '[')),
      ...[
        '{}',
        '[]',
        'null',
        act(0),
        act(1, '5'),
        `{"workerId":"other","epoch":1,"tenant":null}`,
        `${act(1).slice(0, -1)},"x":1}`,
      ].map((body) => post('/activate', body, signed('/activate', body))),
      ...[
        '{}',
        `{"workerId":"${workerId}"}`,
        drainOf(0),
        `{"workerId":"${workerId}","epoch":1,"tenant":null}`,
        '"x"',
      ].map((body) => post('/drain', body, signed('/drain', body))),
      post('/activate', act(2), replayed),
      post('/activate', act(2), replayed),
      post('/activate', act(1, '"late"'), signed('/activate', act(1, '"late"'))),
      post('/activate', act(5, '"acme"'), signed('/activate', act(5, '"acme"'))),
      post('/drain', `{"workerId":"other","epoch":5}`, signed('/drain', `{"workerId":"other","epoch":5}`)),
      post('/drain', drainOf(4), signed('/drain', drainOf(4))),
      { method: 'GET', route: '/healthz' },
      post('/drain', drainOf(5), signed('/drain', drainOf(5))),
      { method: 'GET', route: '/healthz' },
      post('/activate', act(6), signed('/activate', act(6))),
    ];
    for (const [n, step] of steps.entries()) {
      const answers: { status: number; contentType: string | null; proof: string | null; text: string }[] = [];
      for (const worker of workers) {
        const res = await fetch(`${worker.endpoint}${step.route ?? '/activate'}`, {
          method: step.method ?? 'POST',
          headers: { ...(step.body === undefined ? {} : { 'content-type': 'application/json' }), ...step.headers },
          body: step.body,
          signal: AbortSignal.timeout(5_000),
        });
        answers.push({
          status: res.status,
          contentType: res.headers.get('content-type'),
          proof: res.headers.get(proofHeader),
          text: await res.text(),
        });
      }
      const what = `step ${n}: ${step.method ?? 'POST'} ${step.route ?? '/activate'} ${step.body ?? ''}`;
      assert.deepEqual(answers[1], answers[0], what);
    }
  } finally {
    for (const worker of workers) worker.child.kill('SIGTERM');
    await Promise.all(workers.map((worker) => worker.exited));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the image build: the bundled demo worker serves, and the Dockerfile builds it that way as uid 65532', async () => {
  const dockerfile = fs.readFileSync(path.join(repoRoot, 'src/demo-worker/Dockerfile'), 'utf8');
  assert.match(dockerfile, /^RUN npm run build:demo-worker$/m);
  assert.match(
    dockerfile,
    new RegExp(`^USER ${workerUid}:${workerUid}$`, 'm'),
    'the image user matches the pod runAsUser',
  );

  await promisify(execFile)('npm', ['run', '--silent', 'build:demo-worker'], { cwd: repoRoot, timeout: 60_000 });
  const bundle = path.join(repoRoot, 'dist/demo-worker/main.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-demo-worker-bundle-'));
  const port = await freePort();
  const credentialsFile = path.join(dir, 'bundle-credentials.json');
  writeFile(
    credentialsFile,
    JSON.stringify({ epoch: 1, version: 1, expiresAt: new Date().toISOString(), token: 'x'.repeat(32) }),
  );
  const child = spawn(process.execPath, [bundle], {
    env: workerEnv(port, 'bundled', credentialsFile),
    stdio: 'ignore',
  });
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) })).ok,
      { what: 'the bundled demo worker', timeoutMs: 15_000 },
    );
    const activated = await fetch(`http://127.0.0.1:${port}/activate`, {
      method: 'POST',
      body: JSON.stringify({ workerId: 'bundled', epoch: 1, tenant: 'acme' }),
      signal: AbortSignal.timeout(2_000),
    });
    assert.equal(activated.status, 200);
  } finally {
    child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
