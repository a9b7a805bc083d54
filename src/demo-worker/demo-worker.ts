// corral's demo worker: the smallest program that speaks the worker protocol
// (docs/worker-protocol.md). corral's local demo and tests run it; its image shows what a real worker needs:
//   GET  /healthz   200 while it serves, with the protocol version so corral can spot impostors
//   POST /activate  {workerId, epoch, tenant}; refuses an epoch lower than the highest it has seen
//   POST /drain     {workerId, epoch} (both optional): stop accepting activations; answers
//                   `drained` once its work is done (corral waits for it up to the drain timeout)
// Credentials are read from the mounted file on every activation (they rotate underneath it)
// and never echoed: the answer carries only their version.
//
// corral.worker/v2 (docs/worker-protocol.md): once the credentials file carries a `protocolKey`,
// the worker speaks v2 for good: /activate and /drain must carry a valid proof (corral-timestamp,
// corral-proof) inside a ±60 s window and not seen before, and name this worker and an epoch;
// answers to proven calls carry a response proof; /healthz says only `status` and `protocol`.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { workerProtocolV1, workerProtocolV2 } from '../common/worker-protocol';
import {
  ReplayGuard,
  checkProof,
  nonceHeader,
  proofHeader,
  signAnswer,
  timestampHeader,
} from '../runtime/worker-protocol-proof';

const maxBodyBytes = 64 * 1024;

const activateRequest = z.strictObject({
  workerId: z.string().min(1).max(128),
  epoch: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** null while the worker is warm and unclaimed. */
  tenant: z.string().min(1).max(128).nullable(),
});

/** v2's drain body: both fields required (v1's are optional). */
const drainRequestV2 = z.strictObject({
  workerId: z.string().min(1).max(128),
  epoch: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});

const credentialsFile = z.object({
  epoch: z.number().int(),
  version: z.number().int(),
  expiresAt: z.string(),
  token: z.string().min(1),
  /** corral.worker/v2: this worker's key, 64 hex digits (docs/worker-protocol.md). */
  protocolKey: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

export interface DemoWorkerOptions {
  workerId: string;
  port: number;
  host: string;
  credentialsFile: string;
  drainDelayMs?: number;
}

export interface RunningDemoWorker {
  port: number;
  close(): Promise<void>;
}

export type WorkerProtocolReply = {
  status: number;
  body: Record<string, unknown>;
  /** v2: the request proof this answer is bound to; the server adds the answer's proof header. */
  answerTo?: { key: Buffer; proof: string };
};

/** What v2 verifies beyond the parsed body: the proof headers and the exact body bytes. */
export interface WorkerProtocolRequest {
  timestamp?: string;
  nonce?: string;
  proof?: string;
  raw: Buffer;
}

/** The worker protocol as one worker identity answers it, apart from any HTTP server. */
export interface WorkerProtocol {
  handle(method: string, path: string, body: unknown, request?: WorkerProtocolRequest): Promise<WorkerProtocolReply>;
}

export interface WorkerProtocolOptions {
  workerId: string;
  /** How long the worker's work takes to finish after a drain (tests of prompt and waited drains). */
  drainDelayMs?: number;
  /** The credentials file's parsed JSON (read again on every activation: they rotate), or undefined. */
  readCredentials(): Promise<unknown>;
}

/**
 * One worker's protocol state (highest epoch, tenant, draining) and its answers. The demo worker
 * serves one; test harnesses that answer for many pods keep one per pod.
 */
export function createWorkerProtocol(options: WorkerProtocolOptions): WorkerProtocol {
  let highestEpoch = 0;
  let tenant: string | null = null;
  let draining = false;
  /** Set by the first credentials file carrying a key, and never unset: a v2 worker stays v2. */
  let protocolKey: Buffer | undefined;
  const replays = new ReplayGuard();

  const readCredentials = async (): Promise<z.output<typeof credentialsFile> | undefined> => {
    try {
      const parsed = credentialsFile.safeParse(await options.readCredentials());
      if (parsed.success && parsed.data.protocolKey) protocolKey = Buffer.from(parsed.data.protocolKey, 'hex');
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  };

  const invalid = (issue: z.core.$ZodIssue | undefined): WorkerProtocolReply => ({
    status: 400,
    body: { error: 'invalid_request', field: issue?.path.join('.') || 'body', message: issue?.message },
  });

  const activate = async (body: unknown): Promise<WorkerProtocolReply> => {
    const parsed = activateRequest.safeParse(body);
    if (!parsed.success) return invalid(parsed.error.issues[0]);
    const request = parsed.data;
    if (request.workerId !== options.workerId) {
      return { status: 409, body: { error: 'wrong_worker', workerId: options.workerId } };
    }
    if (draining) return { status: 409, body: { error: 'draining' } };
    if (request.epoch < highestEpoch) return { status: 409, body: { error: 'stale_epoch', highestEpoch } };
    const credentials = await readCredentials();
    if (!credentials) return { status: 503, body: { error: 'credentials_unavailable' } };
    // Checked again after the read: a drain or a higher activation may have come in meanwhile.
    if (draining) return { status: 409, body: { error: 'draining' } };
    if (request.epoch < highestEpoch) return { status: 409, body: { error: 'stale_epoch', highestEpoch } };
    highestEpoch = request.epoch;
    tenant = request.tenant;
    return {
      status: 200,
      body: { workerId: options.workerId, epoch: highestEpoch, tenant, credentialVersion: credentials.version },
    };
  };

  /**
   * A body naming another worker, or an epoch below the highest seen, is refused: a neighbour or a
   * stale actor cannot drain this worker. Lenient otherwise (no body: an older corral). The demo
   * worker's "work" is `drainDelayMs` long: it answers `drained: false` until then.
   */
  let drainStartedAt: number | null = null;
  const drain = (body: unknown): WorkerProtocolReply => {
    const request = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as {
      workerId?: unknown;
      epoch?: unknown;
    };
    if (typeof request.workerId === 'string' && request.workerId !== options.workerId) {
      return { status: 409, body: { error: 'wrong_worker', workerId: options.workerId } };
    }
    if (typeof request.epoch === 'number' && request.epoch < highestEpoch) {
      return { status: 409, body: { error: 'stale_epoch', highestEpoch } };
    }
    draining = true;
    drainStartedAt ??= Date.now();
    const drained = Date.now() - drainStartedAt >= (options.drainDelayMs ?? 0);
    return { status: 200, body: { status: 'draining', workerId: options.workerId, drained } };
  };

  /** v2's /activate and /drain: the proof first (401), then the body (400), then the state (409). */
  const proven = async (
    key: Buffer,
    path: '/activate' | '/drain',
    body: unknown,
    request: WorkerProtocolRequest | undefined,
  ): Promise<WorkerProtocolReply> => {
    const now = Math.floor(Date.now() / 1000);
    const refusal = checkProof(
      key,
      {
        method: 'POST',
        path,
        timestamp: request?.timestamp,
        nonce: request?.nonce,
        proof: request?.proof,
        body: request?.raw ?? Buffer.alloc(0),
      },
      now,
    );
    if (refusal) return { status: 401, body: { error: refusal } };
    const proof = request?.proof ?? '';
    if (!replays.accept(proof, Number(request?.timestamp), now)) {
      return { status: 401, body: { error: 'proof_replayed' } };
    }
    const reply = path === '/activate' ? await activate(body) : drainV2(body);
    return { ...reply, answerTo: { key, proof } };
  };

  const drainV2 = (body: unknown): WorkerProtocolReply => {
    const parsed = drainRequestV2.safeParse(body);
    if (!parsed.success) return invalid(parsed.error.issues[0]);
    return drain(parsed.data);
  };

  return {
    async handle(method, path, body, request) {
      const stateChanging = method === 'POST' && (path === '/activate' || path === '/drain');
      if ((method === 'GET' && path === '/healthz') || stateChanging) await readCredentials();
      if (protocolKey && stateChanging) return proven(protocolKey, path as '/activate' | '/drain', body, request);
      if (protocolKey && method === 'GET' && path === '/healthz') {
        // Nothing a neighbour can use: no id, no epoch, no tenant. A signed probe (corral's health
        // check) also gets the worker's proof on the answer: who answers, without saying it.
        const body = { status: draining ? 'draining' : 'serving', protocol: workerProtocolV2 };
        const proof = request?.proof ?? '';
        const signedProbe =
          checkProof(
            protocolKey,
            {
              method,
              path,
              timestamp: request?.timestamp,
              nonce: request?.nonce,
              proof,
              body: request?.raw ?? Buffer.alloc(0),
            },
            Math.floor(Date.now() / 1000),
          ) === null;
        return { status: 200, body, ...(signedProbe ? { answerTo: { key: protocolKey, proof } } : {}) };
      }
      if (method === 'GET' && path === '/healthz') {
        return {
          status: 200,
          body: {
            status: draining ? 'draining' : 'serving',
            protocol: workerProtocolV1,
            workerId: options.workerId,
            highestEpoch,
            tenant,
          },
        };
      }
      if (method === 'POST' && path === '/activate') return activate(body);
      if (method === 'POST' && path === '/drain') return drain(body);
      return { status: 404, body: { error: 'not_found' } };
    },
  };
}

/** Reads one request's JSON body (bounded) and answers it with `protocol`. */
export function serveWorkerProtocolRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  protocol: WorkerProtocol,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const send = ({ status, body, answerTo }: WorkerProtocolReply) => {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (answerTo) headers[proofHeader] = signAnswer(answerTo.key, answerTo.proof, text);
    res.writeHead(status, headers);
    res.end(text);
  };
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBodyBytes) {
      send({ status: 413, body: { error: 'body_too_large' } });
      req.destroy();
    } else chunks.push(chunk);
  });
  req.on('end', () => {
    if (res.headersSent) return;
    let body: unknown = undefined;
    const raw = Buffer.concat(chunks);
    const header = (name: string) => {
      const value = req.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    if (size > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return send({ status: 400, body: { error: 'invalid_json' } });
      }
    }
    protocol
      .handle(req.method ?? 'GET', (req.url ?? '/').split('?')[0] ?? '/', body, {
        timestamp: header(timestampHeader),
        nonce: header(nonceHeader),
        proof: header(proofHeader),
        raw,
      })
      .then(send, () => send({ status: 500, body: { error: 'internal' } }));
  });
}

export async function startDemoWorker(options: DemoWorkerOptions): Promise<RunningDemoWorker> {
  const protocol = createWorkerProtocol({
    workerId: options.workerId,
    drainDelayMs: options.drainDelayMs,
    readCredentials: async () => JSON.parse(await fs.promises.readFile(options.credentialsFile, 'utf8')) as unknown,
  });
  const server = http.createServer((req, res) => serveWorkerProtocolRequest(req, res, protocol));
  // Bounded request handling: a stuck client cannot hold a connection forever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
