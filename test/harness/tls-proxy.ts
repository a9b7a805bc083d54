// A TLS-only Temporal endpoint for tests. Temporal CLI v1.5.1's `server start-dev` takes no TLS
// flags, so the plain dev server is fronted by a TLS-terminating TCP proxy: gRPC's HTTP/2 frames
// pass through unchanged once TLS is off. Certificates come from the openssl CLI, per test run.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

export interface TestPki {
  dir: string;
  /** The CA that signed the server and client certificates. */
  caCert: string;
  /** A CA that signed nothing here: a client trusting it must refuse the server. */
  otherCaCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  close(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir: string, name: string): string {
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name]);
  return path.join(dir, name);
}

function newCa(dir: string, name: string): { cert: string; key: string } {
  const key = newKey(dir, `${name}.key`);
  openssl(dir, [
    'req', '-x509', '-new', '-key', key, '-days', '2', '-subj', `/CN=${name}`, '-out', `${name}.pem`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]); // prettier-ignore
  return { cert: path.join(dir, `${name}.pem`), key };
}

function newLeaf(dir: string, ca: { cert: string; key: string }, name: string, extensions: string): string {
  const key = newKey(dir, `${name}.key`);
  openssl(dir, ['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
  fs.writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2',
    '-extfile', `${name}.ext`, '-out', `${name}.pem`,
  ]); // prettier-ignore
  return path.join(dir, `${name}.pem`);
}

/** A CA, a server certificate for `localhost`/127.0.0.1, a client certificate, and an unrelated CA. */
export function createTestPki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-pki-'));
  const ca = newCa(dir, 'test-ca');
  const other = newCa(dir, 'other-ca');
  const leaf = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n';
  const serverCert = newLeaf(
    dir,
    ca,
    'server',
    `${leaf}extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n`,
  );
  const clientCert = newLeaf(dir, ca, 'client', `${leaf}extendedKeyUsage=clientAuth\n`);
  return {
    dir,
    caCert: ca.cert,
    otherCaCert: other.cert,
    serverCert,
    serverKey: path.join(dir, 'server.key'),
    clientCert,
    clientKey: path.join(dir, 'client.key'),
    close: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TlsProxy {
  /** `127.0.0.1:<port>`: TLS only. */
  address: string;
  /** TLS sessions that completed the handshake (and, with mTLS, presented a valid client certificate). */
  readonly authorized: number;
  /** Handshakes the proxy refused (no or a wrong client certificate, or the client gave up). */
  readonly refused: number;
  close(): Promise<void>;
}

/** TLS (with `requireClientCert`: mTLS) on a free loopback port → plain TCP to `target`. */
export async function startTlsProxy(
  target: string,
  pki: TestPki,
  opts: { requireClientCert: boolean },
): Promise<TlsProxy> {
  const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.split(':').pop())];
  let authorized = 0;
  let refused = 0;
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    {
      cert: fs.readFileSync(pki.serverCert),
      key: fs.readFileSync(pki.serverKey),
      ca: fs.readFileSync(pki.caCert),
      requestCert: opts.requireClientCert,
      rejectUnauthorized: opts.requireClientCert,
      ALPNProtocols: ['h2'],
    },
    (secure) => {
      authorized++;
      const upstream = net.connect(targetPort, targetHost);
      sockets.add(secure).add(upstream);
      secure.pipe(upstream).pipe(secure);
      const end = () => {
        secure.destroy();
        upstream.destroy();
        sockets.delete(secure);
        sockets.delete(upstream);
      };
      secure.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    },
  );
  server.on('tlsClientError', () => refused++);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    get authorized() {
      return authorized;
    },
    get refused() {
      return refused;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
