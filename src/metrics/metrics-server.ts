// corral worker's HTTP endpoints, on loopback unless told otherwise:
//   GET /metrics  corral's prom-client registry, plus any appended exposition (Temporal's SDK
//                 metrics), in the Prometheus text format;
//   GET /readyz   200 while `ready()` says so, 503 otherwise (starting, or shutting down);
//   GET /livez    200 while the process runs and its event loop answers.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { mergeExposition } from './exposition';

export interface MetricsServer {
  /** The /metrics URL, with an address a local client can reach. */
  readonly url: string;
  /** The server's origin (`http://host:port`), for /readyz and /livez. */
  readonly origin: string;
  readonly port: number;
  /** Stops listening and drops open (keep-alive) connections. */
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  /**
   * More exposition text for /metrics (the Temporal SDK's own endpoint). Families corral
   * already declares are left out of it; if it fails, /metrics still answers with corral's own
   * metrics and a comment saying what is missing.
   */
  appendMetrics?: () => Promise<string>;
  /** /readyz: 200 when this resolves true; 503 when false or when it throws. Default: always ready. */
  ready?: () => Promise<boolean> | boolean;
  /** Told once about each family dropped from the appended text because corral declares it too. */
  log?: (line: string) => void;
}

/** A URL host for what the server is bound to: a wildcard address is reached over loopback. */
function reachableHost(address: AddressInfo): string {
  if (address.address === '0.0.0.0') return '127.0.0.1';
  if (address.address === '::') return '[::1]';
  return address.family === 'IPv6' ? `[${address.address}]` : address.address;
}

/** The Prometheus text of another endpoint (e.g. the Temporal SDK's), within `timeoutMs`. */
export async function fetchExposition(url: string, timeoutMs = 2_000): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${url} answered HTTP ${res.status}`);
  }
  return res.text();
}

export async function startMetricsServer(
  register: Registry,
  port = 0,
  host = '127.0.0.1',
  opts: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const reportedDrops = new Set<string>();

  async function metricsText(): Promise<string> {
    const own = await register.metrics();
    if (!opts.appendMetrics) return own;
    let extra: string;
    try {
      extra = await opts.appendMetrics();
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ');
      return `${own.endsWith('\n') ? own : `${own}\n`}# corral: Temporal SDK metrics unavailable in this scrape: ${reason}\n`;
    }
    const { text, dropped } = mergeExposition(own, extra);
    for (const name of dropped.filter((n) => !reportedDrops.has(n))) {
      reportedDrops.add(name);
      opts.log?.(`metrics: ${name} is declared by corral and by the appended exposition; serving corral's`);
    }
    return text;
  }

  async function isReady(): Promise<boolean> {
    try {
      return opts.ready ? await opts.ready() : true;
    } catch {
      return false;
    }
  }

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    const text = (status: number, body: string) =>
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(req.method === 'HEAD' ? '' : body);
    if (path === '/metrics') {
      metricsText().then(
        (body) => res.writeHead(200, { 'Content-Type': register.contentType }).end(req.method === 'HEAD' ? '' : body),
        (err: unknown) => text(500, String(err)),
      );
    } else if (path === '/readyz') {
      void isReady().then((ready) => text(ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n'));
    } else if (path === '/livez') {
      text(200, 'alive\n');
    } else {
      text(404, 'not found: try /metrics, /readyz or /livez\n');
    }
  });
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const origin = `http://${reachableHost(address)}:${address.port}`;
  return {
    url: `${origin}/metrics`,
    origin,
    port: address.port,
    close: () =>
      new Promise((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
