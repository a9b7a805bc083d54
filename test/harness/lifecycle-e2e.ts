// End-to-end plumbing for workerLifecycle: the real dev server, a fresh registry database, the
// process runtime running the real demo worker, and ways to read what Temporal recorded.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { repoRoot } from '../../src/embedded/tools';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import type { WorkerLifecycleSettings } from '../../src/common';
import { historyToJsonText } from './history-files';
import { useTemporalDevServer, type TemporalEndpoint } from './shared';
import { useTestRegistry, type TestRegistry } from './registry';

export const demoWorkerSettings: WorkerLifecycleSettings = {
  image: path.join(repoRoot, 'bin', 'corral-demo-worker'),
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 256 } },
  spawnDeadlineMs: 60_000,
  activationDeadlineMs: 15_000,
  idleTtlMs: null,
  hotIdleTtlMs: 1_000,
  credentialTtlMs: 30 * 60_000,
  credentialRefreshLeadMs: 5 * 60_000,
  maxLifetimeMs: 60 * 60_000,
  maxSpawnAttempts: 2,
  healthIntervalMs: 1_000,
  healthFailureThreshold: 3,
  drainTimeoutMs: 60_000,
  releasePolicy: 'hot_idle',
};

export interface LifecycleE2e {
  temporal: TemporalEndpoint;
  client: Client;
  registry: TestRegistry;
  /** The process runtime's state directory; `runtime` reads it independently of corral. */
  stateDir: string;
  runtime: ProcessPodRuntime;
  close(): Promise<void>;
}

export async function useLifecycleE2e(): Promise<LifecycleE2e> {
  const temporal = await useTemporalDevServer();
  const registry = await useTestRegistry();
  const connection = await Connection.connect({ address: temporal.value.address });
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-e2e-'));
  const runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
  return {
    temporal: temporal.value,
    client: new Client({ connection, namespace: temporal.value.namespace }),
    registry,
    stateDir,
    runtime,
    async close() {
      for (const worker of await runtime.listManaged()) {
        await runtime.delete({
          workerId: worker.workerId,
          pool: worker.pool,
          spawnAttempt: worker.spawnAttempt,
          name: worker.name,
        });
      }
      await runtime.close();
      await connection.close();
      await registry.close();
      await temporal.release();
      fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * Everything the history holds as text: the JSON of every event plus every payload decoded
 * (payload data is base64 in the JSON, so a raw search would miss what it carries).
 */
export async function historyText(handle: WorkflowHandle): Promise<string> {
  const json = historyToJsonText(await handle.fetchHistory());
  const decoded: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      if (typeof record.data === 'string' && record.metadata) {
        decoded.push(Buffer.from(record.data, 'base64').toString('utf8'));
      }
      Object.values(record).forEach(walk);
    }
  };
  walk(JSON.parse(json));
  return [json, ...decoded].join('\n');
}

/** The sequence of `CorralState` values the workflow upserted, in history order. */
export async function upsertedStates(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  const states: string[] = [];
  for (const event of history.events ?? []) {
    const field = event.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.CorralState;
    if (field?.data) states.push(JSON.parse(Buffer.from(field.data).toString('utf8')) as string);
  }
  return states;
}
