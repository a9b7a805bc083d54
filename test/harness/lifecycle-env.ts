// Running workerLifecycle workflows on the time-skipping test server against a LifecycleWorld.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { repoRoot } from '../../src/embedded/tools';
import {
  runtimeTaskQueueOf,
  corralSearchAttributeKeys,
  describeQuery,
  healthVerdictSignal,
  registryChangedSignal,
  workerLifecycleWorkflowId,
  type WorkerDescription,
  type WorkerLifecycleInput,
  type WorkerLifecycleSettings,
} from '../../src/common';
import { waitFor } from '../../src/embedded/wait';
import type { workerLifecycleWorkflow } from '../../src/workflows/worker-lifecycle/worker-lifecycle';
import { historyToJsonText } from './history-files';
import { LifecycleWorld } from './lifecycle-world';
import { createTimeSkippingEnv } from './time-skipping';
import { corralWorkflowBundle } from './workflow-bundle';

export const minute = 60_000;
export const hour = 60 * minute;
export const day = 24 * hour;

export const testSettings: WorkerLifecycleSettings = {
  image: 'ghcr.io/corral/demo-worker:1.0.0',
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
  spawnDeadlineMs: 2 * minute,
  activationDeadlineMs: 30_000,
  idleTtlMs: 6 * hour,
  hotIdleTtlMs: 15 * minute,
  credentialTtlMs: hour,
  credentialRefreshLeadMs: 5 * minute,
  maxLifetimeMs: 45 * day,
  maxSpawnAttempts: 3,
  // Health probes off: the test server does not skip time while an activity (the monitor) runs.
  // Health tests turn them on and script the verdict.
  healthIntervalMs: null,
  healthFailureThreshold: 3,
  drainTimeoutMs: 10 * minute,
  releasePolicy: 'hot_idle',
};

/** The time-skipping server needs corral's search attributes registered like the dev server has them. */
export async function registerSearchAttributes(env: TestWorkflowEnvironment): Promise<void> {
  const keyword = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(corralSearchAttributeKeys.map((key) => [key.name, keyword])),
  });
}

export function newWorkerId(): string {
  return `w${crypto.randomBytes(5).toString('hex')}`;
}

export type LifecycleHandle = WorkflowHandle<typeof workerLifecycleWorkflow>;

/** Waits until the workflow's own `describe` reports `state` (queries never move a test server's clock). */
export async function waitForState(handle: LifecycleHandle, state: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      const current = (await handle.query(describeQuery)).state;
      if (current !== state) throw new Error(`still ${current}`); // waitFor reports the last one
      return true;
    },
    { what: `worker ${handle.workflowId} to be ${state}`, timeoutMs, intervalMs: 20 },
  );
}

/** Waits until the workflow's `describe` satisfies `ok` (e.g. it adopted a registry change); returns that answer. */
export async function waitForDescription(
  handle: LifecycleHandle,
  what: string,
  ok: (description: WorkerDescription) => boolean,
  timeoutMs = 60_000,
): Promise<WorkerDescription> {
  return waitFor(
    async () => {
      const description = await handle.query(describeQuery);
      if (!ok(description)) throw new Error(`still ${description.state} at epoch ${description.epoch}`);
      return description;
    },
    { what: `worker ${handle.workflowId}: ${what}`, timeoutMs, intervalMs: 20 },
  );
}

/** Waits until the workflow has adopted epoch `epoch` (or a later one); returns its `describe`. */
export function waitForEpoch(handle: LifecycleHandle, epoch: number): Promise<WorkerDescription> {
  return waitForDescription(handle, `epoch ${epoch} adopted`, (d) => d.epoch >= epoch);
}

/**
 * A time-skipping server with corral's search attributes, and a worker running the real
 * workflows against a LifecycleWorld, for one test file.
 */
export async function useLifecycleTimeSkipping(
  taskQueue: string,
): Promise<{ env: TestWorkflowEnvironment; world: LifecycleWorld; stop(): Promise<void> }> {
  const env = await createTimeSkippingEnv();
  await registerSearchAttributes(env);
  const world = new LifecycleWorld();
  // The registry's clock is the test server's (the workflows' clock), and the corral API stand-in
  // tells a worker's workflow what it changed the way the real API does: a signal.
  world.now = () => env.currentTimeMs();
  world.notifier = async (row, change) => {
    await env.client.workflow
      .getHandle(workerLifecycleWorkflowId(row.pool, row.id))
      .signal(registryChangedSignal, change);
  };
  world.healthNotifier = async (row, notice) => {
    await env.client.workflow
      .getHandle(workerLifecycleWorkflowId(row.pool, row.id))
      .signal(healthVerdictSignal, notice);
  };
  const workers = await createLifecycleWorkers(env, taskQueue, world);
  const running = Promise.all(workers.map((w) => w.run()));
  return {
    env,
    world,
    async stop() {
      for (const w of workers) w.shutdown();
      await running;
      await env.teardown();
    },
  };
}

export async function startLifecycle(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  input: Partial<Omit<WorkerLifecycleInput, 'settings'>> & { settings?: Partial<WorkerLifecycleSettings> } = {},
): Promise<LifecycleHandle> {
  const workerId = input.workerId ?? newWorkerId();
  const pool = input.pool ?? 'web';
  return env.client.workflow.start('workerLifecycleWorkflow', {
    taskQueue,
    workflowId: workerLifecycleWorkflowId(pool, workerId),
    args: [{ ...input, workerId, pool, settings: { ...testSettings, ...input.settings } }],
  }) as Promise<LifecycleHandle>;
}

/** The workers a corral replica runs for these workflows: the base queue and the runtime queue. */
export async function createLifecycleWorkers(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  world: LifecycleWorld,
): Promise<Worker[]> {
  const common = {
    connection: env.nativeConnection,
    activities: world.activities,
    // Cancellation reaches an activity with a heartbeat answer: deliver it within a blink, so a
    // cancelled mock gives back its time-skipping unlock while its workflow is still open.
    maxHeartbeatThrottleInterval: '100ms',
    defaultHeartbeatThrottleInterval: '100ms',
  } as const;
  return [
    await Worker.create({ ...common, taskQueue, workflowBundle: await corralWorkflowBundle() }),
    await Worker.create({ ...common, taskQueue: runtimeTaskQueueOf(taskQueue) }),
  ];
}

/** The typed rejection (ApplicationFailure type) an update failed with. */
export async function rejectionOf(update: Promise<unknown>): Promise<string> {
  try {
    await update;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure)
      return err.cause.type ?? '';
    throw err;
  }
  throw new Error('the update was accepted');
}

/** The message an update failed with (e.g. an update this run has no handler for). */
export async function updateFailureOf(update: Promise<unknown>): Promise<string> {
  try {
    await update;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) return err.cause?.message ?? err.message;
    throw err;
  }
  throw new Error('the update was accepted');
}

export const historiesDir = path.join(repoRoot, 'test', 'histories');

/**
 * With CORRAL_RECORD_HISTORIES=1, saves the workflow's history as a replay fixture. Histories
 * are recorded once from these tests and committed; `make test` replays every one of them.
 */
export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (process.env.CORRAL_RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  fs.mkdirSync(historiesDir, { recursive: true });
  fs.writeFileSync(path.join(historiesDir, `${name}.json`), historyToJsonText(history));
}
