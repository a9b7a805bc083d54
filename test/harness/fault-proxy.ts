// A TLS proxy in front of the real kube-apiserver that answers chosen requests with an error
// status (429 with Retry-After, 5xx) instead of forwarding them: the apiserver's overload and
// failure answers, on demand. It serves the apiserver's own certificate, so clients trust it.
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface FaultProxy {
  server: string;
  /** Requests seen, in order, with the status the proxy injected (undefined = forwarded). */
  log: { method: string; url: string; injected?: number }[];
  close(): Promise<void>;
}

/** `inject` decides per request: a status to answer with, or undefined to forward it. */
export async function startFaultProxy(
  upstream: { server: string; caFile: string; keyFile: string },
  inject: (req: { method: string; url: string; watch: boolean }) => number | undefined,
): Promise<FaultProxy> {
  const ca = fs.readFileSync(upstream.caFile);
  const target = new URL(upstream.server);
  const log: FaultProxy['log'] = [];
  const proxy = https.createServer({ cert: ca, key: fs.readFileSync(upstream.keyFile) }, (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const status = inject({ method, url, watch: /[?&]watch=(true|1)/.test(url) });
    log.push({ method, url, injected: status });
    if (status !== undefined) {
      const body = JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        code: status,
        message: 'injected by the test proxy',
      });
      res.writeHead(status, { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '1' } : {}) });
      res.end(body);
      req.resume();
      return;
    }
    const forward = https.request(
      { host: target.hostname, port: target.port, method, path: url, headers: req.headers, ca, timeout: 120_000 },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        // A watch sends headers long before its first event: pass them on now, as the apiserver does.
        res.flushHeaders();
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    server: `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  };
}
