// Entry point of the demo worker (bin/corral-demo-worker, and the image built by
// src/demo-worker/Dockerfile). Configuration comes from the environment corral sets.
import { startDemoWorker } from './demo-worker';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`corral-demo-worker: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? '8080');
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    console.error(`corral-demo-worker: PORT must be a port number, got ${JSON.stringify(process.env.PORT)}`);
    process.exit(2);
  }
  // Simulates a slow image start (e.g. a database engine warming up); tests use it to act
  // while a spawn is still in progress.
  const startDelayMs = Number(process.env.DEMO_WORKER_START_DELAY_MS ?? '0');
  if (!Number.isInteger(startDelayMs) || startDelayMs < 0 || startDelayMs > 600_000) {
    console.error(`corral-demo-worker: DEMO_WORKER_START_DELAY_MS must be 0-600000, got ${startDelayMs}`);
    process.exit(2);
  }
  if (startDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, startDelayMs));
  // Simulates work that takes a while to finish after a drain (corral waits for `drained`).
  const drainDelayMs = Number(process.env.DEMO_WORKER_DRAIN_DELAY_MS ?? '0');
  if (!Number.isInteger(drainDelayMs) || drainDelayMs < 0 || drainDelayMs > 600_000) {
    console.error(`corral-demo-worker: DEMO_WORKER_DRAIN_DELAY_MS must be 0-600000, got ${drainDelayMs}`);
    process.exit(2);
  }
  const worker = await startDemoWorker({
    workerId: required('CORRAL_WORKER_ID'),
    credentialsFile: required('CORRAL_CREDENTIALS_FILE'),
    port,
    host: process.env.HOST ?? '0.0.0.0',
    drainDelayMs,
  });
  console.log(`corral-demo-worker ${process.env.CORRAL_WORKER_ID} listening on port ${worker.port}`);
  const shutdown = (signal: string) => {
    console.log(`corral-demo-worker: ${signal}, shutting down`);
    void worker.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(`corral-demo-worker: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
