// corral's demo worker: the smallest program that speaks the worker protocol (DESIGN, "Worker
// protocol"). corral's local demo and tests run it; its image shows what a real worker needs:
//   GET  /healthz   200 while it serves, with the protocol version so corral can spot impostors
//   POST /activate  {workerId, epoch, tenant}; refuses an epoch lower than the highest it has seen
//   POST /drain     stop accepting activations
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
}

export interface RunningDemoWorker {
  port: number;
  close(): Promise<void>;
}

type Reply = { status: number; body: Record<string, unknown> };

export async function startDemoWorker(options: DemoWorkerOptions): Promise<RunningDemoWorker> {
  let highestEpoch = 0;
  let tenant: string | null = null;
  let draining = false;

  const readCredentials = (): z.output<typeof credentialsFile> | undefined => {
    try {
      const parsed = credentialsFile.safeParse(JSON.parse(fs.readFileSync(options.credentialsFile, 'utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  };

  const activate = (body: unknown): Reply => {
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
    const credentials = readCredentials();
    if (!credentials) return { status: 503, body: { error: 'credentials_unavailable' } };
    highestEpoch = request.epoch;
    tenant = request.tenant;
    return {
      status: 200,
      body: { workerId: options.workerId, epoch: highestEpoch, tenant, credentialVersion: credentials.version },
    };
  };

  const route = (method: string, url: string, body: unknown): Reply => {
    if (method === 'GET' && url === '/healthz') {
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
    if (method === 'POST' && url === '/activate') return activate(body);
    if (method === 'POST' && url === '/drain') {
      draining = true;
      return { status: 200, body: { status: 'draining', workerId: options.workerId } };
    }
    return { status: 404, body: { error: 'not_found' } };
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const send = ({ status, body }: Reply) => {
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
      send(route(req.method ?? 'GET', (req.url ?? '/').split('?')[0] ?? '/', body));
    });
  });
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
