// A stand-in for a corral process that dies right after spawning a worker: creates one worker
// with the process runtime, prints its ref as JSON and exits, leaving the worker orphaned.
// Usage: CORRAL_TEST_SPAWN_INPUT='<json {stateDir, workDir, spec, credentials}>' node --require tsx/cjs spawn-worker-and-exit.ts
// (in the environment, not argv: the credentials must not show up in `ps`)
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';

async function main(): Promise<void> {
  const input = JSON.parse(process.env.CORRAL_TEST_SPAWN_INPUT ?? '{}');
  const runtime = new ProcessPodRuntime({ stateDir: input.stateDir, workDir: input.workDir });
  const credentials = { ...input.credentials, expiresAt: new Date(input.credentials.expiresAt) };
  const { ref } = await runtime.create(input.spec, credentials);
  process.stdout.write(`${JSON.stringify(ref)}\n`);
  process.exit(0);
}

void main();
