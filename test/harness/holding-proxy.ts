// A plain-HTTP proxy in front of the real kube-apiserver (HTTPS) that forwards every request and,
// for the requests a test picks, holds the apiserver's answer until the test releases it. So a
// test can stop a runtime call exactly between "the apiserver has done it" and "the caller knows":
// a create whose pod already exists when its caller gives up, a read that a concurrent write
// overtakes before the conditional write that follows it. Loopback only (the bearer token crosses
// it in clear), for tests.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  url: string;
}

export interface HeldAnswer extends ProxiedRequest {
  /** The apiserver's status for the held request (it has already acted on it). */
  status: number;
  /** Sends the held answer on (a no-op if the client has gone). */
  release(): void;
}

export interface HoldingProxy {
  /** `http://127.0.0.1:<port>`: give it to kubeConfigFor as the server. */
  server: string;
  /** Every request answered, in order, with the apiserver's status (watches: 0). */
  log: (ProxiedRequest & { status: number })[];
  /** The next held answer (already held, or the next one to be). */
  nextHeld(): Promise<HeldAnswer>;
  close(): Promise<void>;
}

/** `hold` picks the requests whose answers wait for the test; it is asked once per request. */
export async function startHoldingProxy(
  upstream: { server: string; caFile: string },
  hold: (req: ProxiedRequest) => boolean,
): Promise<HoldingProxy> {
  const ca = fs.readFileSync(upstream.caFile);
  const target = new URL(upstream.server);
  const log: HoldingProxy['log'] = [];
  const held: HeldAnswer[] = [];
  const waiting: ((answer: HeldAnswer) => void)[] = [];
  const offer = (answer: HeldAnswer) => {
    const waiter = waiting.shift();
    if (waiter) waiter(answer);
    else held.push(answer);
  };

  const proxy = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const watch = /[?&]watch=(true|1)/.test(url);
    const holdIt = !watch && hold({ method, url });
    const forward = https.request(
      { host: target.hostname, port: target.port, method, path: url, headers: req.headers, ca, timeout: 60_000 },
      (upstreamRes) => {
        const status = upstreamRes.statusCode ?? 502;
        if (watch) {
          log.push({ method, url, status: 0 });
          res.writeHead(status, upstreamRes.headers);
          res.flushHeaders();
          upstreamRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upstreamRes.on('data', (chunk: Buffer) => chunks.push(chunk));
        upstreamRes.on('end', () => {
          log.push({ method, url, status });
          const send = () => {
            if (res.destroyed || res.writableEnded) return;
            res.writeHead(status, upstreamRes.headers);
            res.end(Buffer.concat(chunks));
          };
          if (holdIt) offer({ method, url, status, release: send });
          else send();
        });
      },
    );
    forward.on('error', () => res.destroy());
    res.on('close', () => {
      if (watch) forward.destroy();
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    server: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    log,
    nextHeld: () => {
      const ready = held.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise<HeldAnswer>((resolve) => waiting.push(resolve));
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  };
}
