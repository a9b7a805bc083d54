// The process runtime's one health watcher (ProcessHealthProber) with real worker processes: a
// ready worker's exit is a verdict (at once for our own child, by the /proc scan for a process
// another corral worker started), a frozen worker fails its health hook, and a worker being
// deleted, not ready yet, or outside this replica's share is never a verdict.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot } from '../../src/embedded/tools';
import type { PodHealthVerdict, PodHealthWatch } from '../../src/runtime/pod-runtime';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import { workerProcessGroups } from '../harness/process-inspection';
import { credentials, newWorkerId } from './runtime-behaviour';
import type { WorkerPodRef } from '../../src/common';

const pool = 'hpool';
let stateDir: string;
let runtime: ProcessPodRuntime;
/** Another corral worker on the same state directory: the processes it watches are not its children. */
let otherReplica: ProcessPodRuntime;
const unwatched = new Set<string>();
const verdicts: PodHealthVerdict[] = [];
const waiters: (() => void)[] = [];
let watch: PodHealthWatch;
let otherWatch: PodHealthWatch;
const otherVerdicts: PodHealthVerdict[] = [];

before(() => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-process-health-'));
  runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot, stopGraceMs: 1_000 });
  otherReplica = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
  watch = runtime.watchHealth({
    onVerdict: (verdict) => {
      verdicts.push(verdict);
      for (const wake of waiters.splice(0)) wake();
    },
    watches: (workerId) => !unwatched.has(workerId),
  });
  otherWatch = otherReplica.watchHealth({
    onVerdict: (verdict) => {
      otherVerdicts.push(verdict);
      for (const wake of waiters.splice(0)) wake();
    },
    watches: (workerId) => !unwatched.has(workerId),
  });
});
after(async () => {
  await watch?.close();
  await otherWatch?.close();
  for (const dir of fs.readdirSync(path.join(stateDir, 'workers'))) {
    const [, workerId, attempt] = dir.split('-');
    await runtime.delete({ name: dir, pool, workerId: workerId!, spawnAttempt: Number(attempt) });
  }
  await runtime.close();
  await otherReplica.close();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

/** Resolves once `found` returns a verdict (checked on every verdict that arrives). */
async function verdictFor(list: PodHealthVerdict[], workerId: string, timeoutMs = 30_000): Promise<PodHealthVerdict> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = list.find((v) => v.ref.workerId === workerId);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no verdict for ${workerId} within ${timeoutMs} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 10);
      waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** A demo worker, ready (the readiness wait marks it: from then on it is watched). */
async function readyWorker(overrides: { healthIntervalMs?: number; healthFailureThreshold?: number } = {}) {
  const workerId = newWorkerId();
  const { ref } = await runtime.create(
    {
      workerId,
      pool,
      spawnAttempt: 1,
      epoch: 1,
      image: 'bin/corral-demo-worker',
      resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
      maxLifetimeSeconds: 3_600,
      healthIntervalMs: overrides.healthIntervalMs ?? 1_000,
      healthFailureThreshold: overrides.healthFailureThreshold ?? 2,
    },
    credentials(1),
  );
  const outcome = await runtime.awaitReady(ref, { timeoutMs: 60_000 });
  assert.equal(outcome.status, 'ready');
  return ref;
}

function killGroup(ref: WorkerPodRef, signal: NodeJS.Signals): void {
  const groups = workerProcessGroups(ref.workerId);
  assert.equal(groups.length, 1, `one process group for ${ref.workerId}`);
  process.kill(-Number(groups[0]), signal);
}

test('a ready worker killed with SIGKILL is a pod_crashed verdict, from its own corral worker and from another', async () => {
  const ref = await readyWorker();
  killGroup(ref, 'SIGKILL');
  const mine = await verdictFor(verdicts, ref.workerId);
  assert.deepEqual(mine.ref, ref);
  assert.equal(mine.reason, 'pod_crashed');
  assert.match(mine.detail, /while serving .*SIGKILL/);
  // The other replica's prober finds the same death through /proc (the process was not its child).
  const theirs = await verdictFor(otherVerdicts, ref.workerId);
  assert.equal(theirs.reason, 'pod_crashed');
  assert.equal(verdicts.filter((v) => v.ref.workerId === ref.workerId).length, 1, 'one verdict per pod');
});

test('a frozen worker fails its health hook: health_check_failed after the threshold', async () => {
  const ref = await readyWorker({ healthIntervalMs: 1_000, healthFailureThreshold: 2 });
  killGroup(ref, 'SIGSTOP');
  try {
    const verdict = await verdictFor(verdicts, ref.workerId);
    assert.equal(verdict.reason, 'health_check_failed');
    assert.match(verdict.detail, /2 health probes failed; last: unreachable/);
  } finally {
    killGroup(ref, 'SIGCONT');
  }
});

test('deleted, not yet ready, or not in this replica share: no verdict', async () => {
  const deleted = await readyWorker();
  await runtime.delete(deleted);

  const outsideShare = await readyWorker();
  unwatched.add(outsideShare.workerId);
  killGroup(outsideShare, 'SIGKILL');

  // Never ready: created, never waited for, killed.
  const unready = newWorkerId();
  const { ref: unreadyRef } = await runtime.create(
    {
      workerId: unready,
      pool,
      spawnAttempt: 1,
      epoch: 1,
      image: '/bin/sleep',
      args: ['3600'],
      resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
      maxLifetimeSeconds: 3_600,
    },
    credentials(1),
  );
  killGroup(unreadyRef, 'SIGKILL');

  // A watched worker killed after all of them: once its verdict is in, the prober has looked at the others.
  const marker = await readyWorker();
  killGroup(marker, 'SIGKILL');
  await verdictFor(verdicts, marker.workerId);
  await verdictFor(otherVerdicts, marker.workerId);
  for (const quiet of [deleted.workerId, outsideShare.workerId, unready]) {
    assert.equal(
      [...verdicts, ...otherVerdicts].filter((v) => v.ref.workerId === quiet).length,
      0,
      `no verdict for ${quiet}`,
    );
  }
});

test('a worker spawned before records carried readyAt is watched once it answers its health check', async () => {
  const ref = await readyWorker();
  // What a corral worker of the previous version wrote: the same record without the mark.
  const file = path.join(stateDir, 'workers', ref.name, 'worker.json');
  const { readyAt, ...legacy } = JSON.parse(fs.readFileSync(file, 'utf8')) as { readyAt?: string };
  assert.ok(readyAt, 'the readiness wait marked the record');
  fs.writeFileSync(file, JSON.stringify(legacy), { mode: 0o600 });

  const upgraded = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
  const upgradedVerdicts: PodHealthVerdict[] = [];
  const served: (() => void)[] = [];
  const upgradedWatch = upgraded.watchHealth({
    onVerdict: (verdict) => {
      upgradedVerdicts.push(verdict);
      for (const wake of waiters.splice(0)) wake();
    },
    // Its first probe of the worker tells the test the prober has seen it answer.
    onProbe: () => served.splice(0).forEach((wake) => wake()),
    watches: (workerId) => workerId === ref.workerId,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      // The prober's timers do not keep a process alive; this bound does, while the test waits.
      const bound = setTimeout(() => reject(new Error('the upgraded prober never probed the worker')), 30_000);
      served.push(() => {
        clearTimeout(bound);
        resolve();
      });
    });
    killGroup(ref, 'SIGKILL');
    const verdict = await verdictFor(upgradedVerdicts, ref.workerId);
    assert.equal(verdict.reason, 'pod_crashed');
  } finally {
    await upgradedWatch.close();
    await upgraded.close();
  }
});
