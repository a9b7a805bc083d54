// A stand-in for a corral process that dies right after spawning a worker: creates one worker
// with the process runtime, prints its ref as JSON and exits, leaving the worker orphaned.
// Usage: node --require tsx/cjs spawn-worker-and-exit.ts '<json {stateDir, workDir, spec, credentials}>'
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}');
  const runtime = new ProcessPodRuntime({ stateDir: input.stateDir, workDir: input.workDir });
  const credentials = { ...input.credentials, expiresAt: new Date(input.credentials.expiresAt) };
  const { ref } = await runtime.create(input.spec, credentials);
  process.stdout.write(`${JSON.stringify(ref)}\n`);
  process.exit(0);
}

void main();
