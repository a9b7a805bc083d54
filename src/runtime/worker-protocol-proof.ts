// The proof of corral.worker/v2 (docs/worker-protocol.md): every state-changing call to a worker
// (POST /activate, POST /drain) carries an HMAC-SHA256 over a canonical string, keyed by material
// only corral and that worker hold. Shared by corral's signer and the Node demo worker's verifier;
// the Go small worker implements the same (src/demo-worker/small/proof.go), and the test vectors in
// docs/worker-protocol.md are checked against all three.
//
// Keys: corral holds one master key (CORRAL_WORKER_PROTOCOL_KEY, 32 bytes as 64 hex digits). A
// worker's key is HMAC-SHA256(master, "corral.worker/v2\n" + workerId): corral never stores it,
// every replica can derive it, and it reaches the worker in its mounted credentials file
// (`protocolKey`, 64 hex digits) at spawn and on every rotation.
//
// Canonical string (UTF-8, fields joined by "\n", no trailing newline):
//   corral.worker/v2 \n METHOD \n PATH \n TIMESTAMP \n NONCE \n hex(sha256(BODY))
// METHOD upper case; PATH the request target without query; TIMESTAMP the decimal Unix time in
// seconds in the `corral-timestamp` header; NONCE 32 lower-case hex digits in `corral-nonce`,
// fresh per call (so the same call sent twice in one second is two proofs, and a copy is a
// replay); BODY the exact request body bytes. The proof is
// hex(HMAC-SHA256(workerKey, canonical)), lower case, in the `corral-proof` header.
import crypto from 'node:crypto';
import { workerProtocolV2 } from '../common';

export const timestampHeader = 'corral-timestamp';
export const proofHeader = 'corral-proof';
export const nonceHeader = 'corral-nonce';
/** A proof whose timestamp is further than this from the worker's clock is refused. */
export const proofWindowSeconds = 60;
/** The environment variable holding corral's worker-protocol master key. */
export const workerProtocolKeyVariable = 'CORRAL_WORKER_PROTOCOL_KEY';

const hexKey = /^[0-9a-f]{64}$/;

/** The master key is malformed: names the variable, never echoes the value. */
export class WorkerProtocolKeyError extends Error {
  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`${variable} ${reason} (32 random bytes as 64 hex digits, e.g. \`openssl rand -hex 32\`)`);
    this.name = 'WorkerProtocolKeyError';
  }
}

/** Parses the master key: exactly 64 hex digits (32 bytes); upper case is accepted. */
export function parseWorkerProtocolKey(value: string | undefined, variable = workerProtocolKeyVariable): Buffer {
  if (value === undefined || value.trim() === '') throw new WorkerProtocolKeyError(variable, 'is not set');
  const text = value.trim().toLowerCase();
  if (!hexKey.test(text)) throw new WorkerProtocolKeyError(variable, 'must be 64 hex digits');
  return Buffer.from(text, 'hex');
}

/** A fresh master key, for the embedded stack and tests. */
export function generateWorkerProtocolKey(): Buffer {
  return crypto.randomBytes(32);
}

/** The per-worker key: HMAC-SHA256(master, "corral.worker/v2\n" + workerId). */
export function deriveWorkerKey(masterKey: Buffer, workerId: string): Buffer {
  return crypto.createHmac('sha256', masterKey).update(`${workerProtocolV2}\n${workerId}`, 'utf8').digest();
}

export function canonicalString(
  method: string,
  path: string,
  timestamp: string,
  nonce: string,
  body: Buffer | string,
): string {
  const bodyHash = crypto.createHash('sha256').update(body).digest('hex');
  return `${workerProtocolV2}\n${method.toUpperCase()}\n${path}\n${timestamp}\n${nonce}\n${bodyHash}`;
}

export function signRequest(
  workerKey: Buffer,
  method: string,
  path: string,
  timestamp: string,
  nonce: string,
  body: Buffer | string,
): string {
  return crypto
    .createHmac('sha256', workerKey)
    .update(canonicalString(method, path, timestamp, nonce, body), 'utf8')
    .digest('hex');
}

/**
 * The worker's proof on its answer to a proven call (in the answer's `corral-proof` header):
 * hex(HMAC-SHA256(workerKey, "corral.worker/v2\nANSWER\n" + requestProof + "\n" + hex(sha256(answerBody)))).
 * Only the holder of this worker's key can make it: it is how corral knows who answered.
 */
export function signAnswer(workerKey: Buffer, requestProof: string, answerBody: Buffer | string): string {
  const bodyHash = crypto.createHash('sha256').update(answerBody).digest('hex');
  return crypto
    .createHmac('sha256', workerKey)
    .update(`${workerProtocolV2}\nANSWER\n${requestProof}\n${bodyHash}`, 'utf8')
    .digest('hex');
}

/** Whether `answerProof` is this worker's proof on `answerBody` for the request proof. */
export function checkAnswer(
  workerKey: Buffer,
  requestProof: string,
  answerBody: Buffer | string,
  answerProof: string | null,
): boolean {
  if (answerProof === null || !proofText.test(answerProof)) return false;
  const expected = Buffer.from(signAnswer(workerKey, requestProof, answerBody), 'hex');
  return crypto.timingSafeEqual(expected, Buffer.from(answerProof, 'hex'));
}

/** The headers corral adds to a state-changing call, signed now. */
export function proofHeaders(
  workerKey: Buffer,
  method: string,
  path: string,
  body: string,
  nowMs = Date.now(),
): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  const nonce = crypto.randomBytes(16).toString('hex');
  return {
    [timestampHeader]: timestamp,
    [nonceHeader]: nonce,
    [proofHeader]: signRequest(workerKey, method, path, timestamp, nonce, body),
  };
}

export type ProofRefusal = 'proof_missing' | 'proof_expired' | 'proof_invalid' | 'proof_replayed';

const timestampText = /^(0|[1-9][0-9]{0,15})$/;
const proofText = /^[0-9a-f]{64}$/;
const nonceText = /^[0-9a-f]{32}$/;

/**
 * Checks one request's proof against the worker's key and clock (seconds). Pure: replay is the
 * caller's (ReplayGuard). Returns the refusal, or null when the proof is good.
 */
export function checkProof(
  workerKey: Buffer,
  request: { method: string; path: string; timestamp?: string; nonce?: string; proof?: string; body: Buffer },
  nowSeconds: number,
): ProofRefusal | null {
  const { timestamp, nonce, proof } = request;
  if (!timestamp || !nonce || !proof) return 'proof_missing';
  if (!timestampText.test(timestamp) || Math.abs(Number(timestamp) - nowSeconds) > proofWindowSeconds) {
    return 'proof_expired';
  }
  if (!proofText.test(proof) || !nonceText.test(nonce)) return 'proof_invalid';
  const expected = Buffer.from(
    signRequest(workerKey, request.method, request.path, timestamp, nonce, request.body),
    'hex',
  );
  return crypto.timingSafeEqual(expected, Buffer.from(proof, 'hex')) ? null : 'proof_invalid';
}

/**
 * The proofs a worker accepted inside the window: the same proof again is a replay. Only good
 * proofs enter it, so a caller without the key cannot grow it.
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /** True (and remembered until `timestamp + window`) if `proof` was not seen; false for a replay. */
  accept(proof: string, timestamp: number, nowSeconds: number): boolean {
    for (const [p, until] of this.seen) if (until < nowSeconds) this.seen.delete(p);
    if (this.seen.has(proof)) return false;
    this.seen.set(proof, timestamp + proofWindowSeconds);
    return true;
  }
}
