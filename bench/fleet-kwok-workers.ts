// The workers behind KWOK's pods for bench/fleet.ts, in their own process (so their CPU is not the
// load generator's): test/harness/kwok-workers.ts answering the worker protocol for every pod IP of
// one namespace on one kernel-picked port. IPC: sends { type: 'ready', port }; on { type: 'stop' }
// it stops and exits; it also exits when its parent goes away.
// Usage (child only): node --require tsx/cjs bench/fleet-kwok-workers.ts '<json: server, caFile, adminToken, namespace>'
import { kubeConfigFor } from '../test/harness/kube';
import { startKwokWorkers } from '../test/harness/kwok-workers';

interface Config {
  server: string;
  caFile: string;
  adminToken: string;
  namespace: string;
}

async function main() {
  const config = JSON.parse(process.argv[2] ?? '{}') as Config;
  const kubeConfig = kubeConfigFor({ server: config.server, caFile: config.caFile, adminToken: config.adminToken });
  const workers = await startKwokWorkers({ kubeConfig, namespace: config.namespace, followPodPorts: false });
  const port = await workers.listen(0);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const timer = setTimeout(() => process.exit(1), 10_000);
    await workers.stop().catch(() => undefined);
    clearTimeout(timer);
    process.exit(0);
  };
  process.on('message', (message: unknown) => {
    if ((message as { type?: unknown } | null)?.type === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  // Report the watch's trouble now and then, for the bench's log.
  setInterval(() => {
    const err = workers.lastError;
    if (err) console.error(`kwok workers: last error ${err instanceof Error ? err.message : String(err)}`);
  }, 30_000).unref();
  process.send?.({ type: 'ready', port });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
