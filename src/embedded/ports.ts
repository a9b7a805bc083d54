import net from 'node:net';

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no port from the kernel'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** Resolves when nothing listens on 127.0.0.1:port; rejects naming the port otherwise. */
export async function assertPortFree(port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`port ${port} (${what}) is in use${err.code === 'EADDRINUSE' ? '' : ` (${err.code})`}`)),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}
