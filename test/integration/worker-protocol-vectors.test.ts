// The test vectors of docs/worker-protocol.md, checked against corral's signer, the Node demo
// worker's verifier (the shared src/runtime/worker-protocol-proof.ts) and the Go small worker's own
// implementation (`go test` in src/demo-worker/small, reading the same block of the document).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { repoRoot } from '../../src/embedded/tools';
import {
  canonicalString,
  checkAnswer,
  checkProof,
  deriveWorkerKey,
  signAnswer,
  signRequest,
} from '../../src/runtime/worker-protocol-proof';
import { workerProtocolV2 } from '../../src/common';

interface Vector {
  workerId: string;
  method: string;
  path: string;
  timestamp: string;
  nonce: string;
  body: string;
  workerKey: string;
  canonicalString: string;
  proof: string;
  answerBody: string;
  answerProof: string;
}

function documentVectors(): { masterKey: string; vectors: Vector[] } {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'worker-protocol.md'), 'utf8');
  const match = /<!-- test-vectors:begin -->\s*```json\n([\s\S]*?)\n```\s*<!-- test-vectors:end -->/.exec(doc);
  assert.ok(match?.[1], 'docs/worker-protocol.md has a test-vectors block');
  return JSON.parse(match[1]) as { masterKey: string; vectors: Vector[] };
}

test("corral's signer and the Node demo worker's verifier reproduce every vector", () => {
  const { masterKey, vectors } = documentVectors();
  assert.ok(vectors.length >= 3);
  const master = Buffer.from(masterKey, 'hex');
  for (const v of vectors) {
    const key = deriveWorkerKey(master, v.workerId);
    assert.equal(key.toString('hex'), v.workerKey, v.workerId);
    assert.equal(canonicalString(v.method, v.path, v.timestamp, v.nonce, v.body), v.canonicalString);
    assert.ok(v.canonicalString.startsWith(`${workerProtocolV2}\n`));
    assert.equal(signRequest(key, v.method, v.path, v.timestamp, v.nonce, v.body), v.proof);
    const request = { method: v.method, path: v.path, timestamp: v.timestamp, nonce: v.nonce, proof: v.proof };
    const now = Number(v.timestamp);
    assert.equal(checkProof(key, { ...request, body: Buffer.from(v.body) }, now), null);
    assert.equal(checkProof(key, { ...request, body: Buffer.from(`${v.body} `) }, now), 'proof_invalid');
    assert.equal(checkProof(key, { ...request, body: Buffer.from(v.body) }, now + 61), 'proof_expired');
    assert.equal(checkProof(key, { ...request, nonce: undefined, body: Buffer.from(v.body) }, now), 'proof_missing');
    assert.equal(signAnswer(key, v.proof, v.answerBody), v.answerProof);
    assert.ok(checkAnswer(key, v.proof, v.answerBody, v.answerProof));
  }
});

test("the Go small worker's proofs reproduce every vector", async () => {
  const { stdout } = await promisify(execFile)(
    'go',
    [
      'test',
      '-count=1',
      '-run',
      'TestVectors',
      '-ldflags',
      `-X corral.dev/small-worker.protocolV2=${workerProtocolV2}`,
      '.',
    ],
    {
      cwd: path.join(repoRoot, 'src', 'demo-worker', 'small'),
      env: { ...process.env, GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOWORK: 'off' },
      timeout: 300_000,
      killSignal: 'SIGKILL',
    },
  );
  assert.match(stdout, /^ok\s/m);
});
