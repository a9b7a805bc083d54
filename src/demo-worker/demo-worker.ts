// corral's demo worker: the smallest program that speaks the worker protocol (DESIGN, "Worker
// protocol"). corral's local demo and tests run it; its image shows what a real worker needs:
//   GET  /healthz   200 while it serves, with the protocol version so corral can spot impostors
//   POST /activate  {workerId, epoch, tenant}; refuses an epoch lower than the highest it has seen
//   POST /drain     {workerId, epoch} (both optional): stop accepting activations; answers
//                   `drained` once its work is done (corral waits for it up to the drain timeout)
// Credentials are read from the mounted file on every activation (they rotate underneath it)
// and never echoed: the answer carries only their version.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { workerProtocolVersion } from '../runtime/worker-protocol';

const maxBodyBytes = 64 * 1024;

const activateRequest = z.strictObject({
  workerId: z.string().min(1).max(128),
  epoch: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** null while the worker is warm and unclaimed. */
  tenant: z.string().min(1).max(128).nullable(),
});

const credentialsFile = z.object({
  epoch: z.number().int(),
  version: z.number().int(),
  expiresAt: z.string(),
  token: z.string().min(1),
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

export type WorkerProtocolReply = { status: number; body: Record<string, unknown> };

/** The worker protocol as one worker identity answers it, apart from any HTTP server. */
export interface WorkerProtocol {
  handle(method: string, path: string, body: unknown): Promise<WorkerProtocolReply>;
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

  const readCredentials = async (): Promise<z.output<typeof credentialsFile> | undefined> => {
    try {
      const parsed = credentialsFile.safeParse(await options.readCredentials());
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  };

  const activate = async (body: unknown): Promise<WorkerProtocolReply> => {
    const parsed = activateRequest.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        status: 400,
        body: { error: 'invalid_request', field: issue?.path.join('.') || 'body', message: issue?.message },
      };
    }
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

  return {
    async handle(method, path, body) {
      if (method === 'GET' && path === '/healthz') {
        return {
          status: 200,
          body: {
            status: draining ? 'draining' : 'serving',
            protocol: workerProtocolVersion,
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
  const send = ({ status, body }: WorkerProtocolReply) => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
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
    if (size > 0) {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send({ status: 400, body: { error: 'invalid_json' } });
      }
    }
    protocol
      .handle(req.method ?? 'GET', (req.url ?? '/').split('?')[0] ?? '/', body)
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
