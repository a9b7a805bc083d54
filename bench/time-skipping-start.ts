// How long the time-skipping test server takes to be usable: from createTimeSkipping() (which
// spawns the JVM through the provisioned wrapper and connects) until it resolves.
// Usage: node --require tsx/cjs bench/time-skipping-start.ts [runs]   → JSON on stdout
import { performance } from 'node:perf_hooks';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { toolPath } from '../src/embedded/tools';
import { createTimeSkippingEnv } from '../test/harness/time-skipping';
import { summarise } from './stats';

async function main() {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const runs = Number(process.argv[2] ?? 5);
  toolPath('temporalTestServer'); // provision outside the measurement
  const samplesMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const env = await createTimeSkippingEnv();
    samplesMs.push(performance.now() - t0);
    await env.teardown();
  }
  console.log(JSON.stringify({ benchmark: 'time_skipping_server_start', runs, ms: summarise(samplesMs) }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
