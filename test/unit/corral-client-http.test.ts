// CorralClient's HTTP exchange against a local server that is not the corral API: a redirect is
// named as such (not an internal error), and an answer larger than the client reads is refused
// rather than buffered whole.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { CorralClient, CorralUnreachableError } from '../../src/client/corral-client';

let server: http.Server;
let url: string;

before(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/v1/pools') {
      res.writeHead(302, { location: 'https://corral.example.test/v1/pools' }).end();
      return;
    }
    // An endless answer: 1 MiB chunks until the client goes away.
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    res.on('error', () => undefined);
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

test('a redirect is not the corral API: the error names where it points', async () => {
  const client = new CorralClient({ url, requestTimeoutMs: 10_000 });
  await assert.rejects(
    client.listPools(),
    (err: unknown) =>
      err instanceof CorralUnreachableError &&
      /redirects \(HTTP 302\) to https:\/\/corral\.example\.test\/v1\/pools/.test(err.message),
  );
});

test('an answer larger than the client reads is refused, not buffered whole', async () => {
  const client = new CorralClient({ url, requestTimeoutMs: 60_000 });
  await assert.rejects(
    client.listWorkers({}),
    (err: unknown) => err instanceof CorralUnreachableError && /larger than 33554432 bytes/.test(err.message),
  );
});
