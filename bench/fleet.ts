// A fleet on one `corral worker` replica at default settings (issue 15, point 6; decision 0013,
// docs/architecture.md "Health, pools, the janitor"). Each section starts its own Temporal dev server (in memory) and embedded Postgres, and
// runs the real `bin/corral worker` CLI as a child process (no slot variables: the defaults).
//
// - process: the process runtime with the small protocol worker (a Go binary). Fill 0 → 300 idle;
//   a steady minute at 300 idle (CPU, RSS, history); kill -9 of 30 worker process groups, 100 ms
//   apart → for each, the registry's own `state_since` of its terminal row minus the kill time, and
//   the typed reasons; the time until the pool is back at 300 idle; drain 300 → `drained`.
// - kwok: the kubernetes runtime against a real kube-apiserver + etcd + kube-scheduler, KWOK
//   playing the nodes and the kubelet (test/harness/kube.ts, kwok.ts), and the worker protocol
//   answered for every pod IP by test/harness/kwok-workers.ts in a child process. Fill 0 → 1,000
//   idle; 10 minutes steady at 1,000 idle (corral worker CPU and RSS: its process and its own children,
//   Postgres CPU, history events added to every worker workflow); claim+release cycles at 50
//   concurrent through the corral API (releasePolicy recycle); 50 pods killed, 100 ms apart (a
//   rotation of the KWOK fates crash, oom, evict and a pod delete by someone other than corral) →
//   `state_since` minus the patch/delete time and reasons; back to 1,000; drain 1,000 → `drained`.
//
// CPU is cores used by process group over a phase (bench/proc-cpu.ts); `other_load` is busy time of
// processes this bench did not start (other engineers' tests on the same 2 cores).
//
// Usage: node --require tsx/cjs bench/fleet.ts [process|kwok|all]   (default all)
// → one JSON line on stdout per run; each section's result is merged under its own key into
// bench/results/fleet.json. Development overrides (then nothing is written): FLEET_PROCESS_WORKERS,
// FLEET_KWOK_WORKERS, FLEET_STEADY_SECONDS, FLEET_PROCESS_STEADY_SECONDS, FLEET_CLAIM_CYCLES.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoreV1Api } from '@kubernetes/client-node';
import type { PoolSpecInput } from '../src/config/pool-spec';
import { smallWorkerPath } from '../src/demo-worker/small-worker-build';
import { failOnExit, nextMessage, startProcess } from '../src/embedded/child-process';
import { provisionTools, repoRoot } from '../src/embedded/tools';
import { timeoutOptions } from '../src/runtime/kubernetes/api-call';
import { ProcessPodRuntime } from '../src/runtime/process/process-runtime';
import { poolWorkflowId, workerLifecycleWorkflowId } from '../src/common';
import { kubeConfigFor, startKube } from '../test/harness/kube';
import { createTestNamespace } from '../test/harness/kube-namespace';
import { kwokFateImage, setPodFate, writeKubeconfigFile, type KwokFate } from '../test/harness/kwok';
import {
  Cleanups,
  bounded,
  claimCycles,
  countsOf,
  countsTimeline,
  deadline,
  treeRssMiB,
  verdictTrail,
  historyGrowth,
  historySnapshot,
  machine,
  pgrpOf,
  podDeathWatch,
  round2,
  rowsOf,
  rssSampler,
  say,
  sleep,
  startCorralWorker,
  startServers,
  logSummary,
  waitForCounts,
  watchDeaths,
  workerProcessGroupsOf,
  type Counts,
  type CorralWorkerChild,
  type Servers,
} from './fleet-support';
import { cpuSince, cpuSnapshot, type CpuUse } from './proc-cpu';
import { summarise } from './stats';

const envNumber = (name: string, fallback: number) => {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : Number(value);
};
const overrides = [
  'FLEET_PROCESS_WORKERS',
  'FLEET_KWOK_WORKERS',
  'FLEET_STEADY_SECONDS',
  'FLEET_PROCESS_STEADY_SECONDS',
  'FLEET_CLAIM_CYCLES',
].filter((name) => process.env[name]);

const settings = {
  processWorkers: envNumber('FLEET_PROCESS_WORKERS', 300),
  processKills: 30,
  processSteadySeconds: envNumber('FLEET_PROCESS_STEADY_SECONDS', 60),
  kwokWorkers: envNumber('FLEET_KWOK_WORKERS', 1_000),
  kwokKills: 50,
  kwokSteadySeconds: envNumber('FLEET_STEADY_SECONDS', 600),
  claimConcurrency: 50,
  claimCycles: envNumber('FLEET_CLAIM_CYCLES', 3_000),
  claimWarmup: 100,
  killSpacingMs: 100,
  deathPollMs: 20,
};

const targets = {
  process: { idle_300_within_seconds: 60, lost_reason_p99_ms: 2_000 },
  kwok: {
    idle_1000_within_seconds: 120,
    lost_reason_p99_ms: 1_000,
    drain_1000_within_seconds: 120,
    corral_worker_cpu_cores_steady: 0.1,
    corral_worker_rss_gib_steady: 1,
    history_events_per_idle_worker_hour: 12,
  },
};

/** Cores by process group: this bench, the corral worker's process group, what it spawned, the servers. */
function classifier(pids: { corral: number; temporal?: number; podWorkers?: number }) {
  const groups = new Map<number, number | undefined>();
  const pgrp = (pid: number) => {
    if (!groups.has(pid)) groups.set(pid, pgrpOf(pid));
    return groups.get(pid);
  };
  // The corral worker shares this bench's process group; each worker process leads its own.
  const corralGroup = pgrpOf(pids.corral);
  return (pid: number, comm: string, ancestors: number[]): string => {
    if (pid === process.pid || (ancestors[0] === process.pid && comm === 'esbuild')) return 'bench';
    if (pid === pids.corral) return 'corral_worker';
    if (ancestors.includes(pids.corral)) return pgrp(pid) === corralGroup ? 'corral_worker' : 'worker_processes';
    if (pids.temporal !== undefined && (pid === pids.temporal || ancestors.includes(pids.temporal))) {
      return 'temporal_server';
    }
    if (pids.podWorkers !== undefined && (pid === pids.podWorkers || ancestors.includes(pids.podWorkers))) {
      return 'pod_workers';
    }
    if (comm === 'postgres') return 'postgres';
    if (['etcd', 'kube-apiserver', 'kube-scheduler', 'kwok'].includes(comm)) return comm.replace('-', '_');
    return 'other_bench_children';
  };
}

/** What a fill's timeline says about where its time went. */
function fillShape(timeline: [number, Counts][], target: number) {
  const firstAt = (pred: (c: Counts) => boolean) => timeline.find(([, c]) => pred(c))?.[0] ?? null;
  const peak = (state: string) => Math.max(0, ...timeline.map(([, c]) => c[state] ?? 0));
  const t10 = firstAt((c) => (c.idle ?? 0) >= target * 0.1);
  const t90 = firstAt((c) => (c.idle ?? 0) >= target * 0.9);
  return {
    first_idle_seconds: firstAt((c) => (c.idle ?? 0) > 0),
    idle_10pct_seconds: t10,
    idle_90pct_seconds: t90,
    idle_per_second_10_to_90pct:
      t10 !== null && t90 !== null && t90 > t10 ? round2((0.8 * target) / (t90 - t10)) : null,
    peak_spawning: peak('spawning'),
    peak_activating: peak('activating'),
    lost: timeline.at(-1)?.[1].lost ?? 0,
  };
}

/** Polls the pool's status through the API until `drained`. */
async function drainPool(servers: Servers, corralWorker: CorralWorkerChild, pool: string, timeoutMs: number) {
  const timeline = countsTimeline(servers.db, pool);
  const started = performance.now();
  const cpu = cpuSnapshot();
  let status = '';
  let error: string | undefined;
  try {
    await corralWorker.corral.drainPool(pool);
    while (performance.now() - started < timeoutMs) {
      const described = await corralWorker.corral.getPool(pool);
      status = described?.status ?? 'missing';
      if (status === 'drained') break;
      await sleep(200);
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  const seconds = round2((performance.now() - started) / 1000);
  return { drained: status === 'drained', seconds, status, error, cpu, timeline };
}

async function terminatePool(servers: Servers, pool: string) {
  await servers.client.workflow
    .getHandle(poolWorkflowId(pool))
    .terminate('bench done')
    .catch(() => undefined);
}

/** The pool's live idle rows (id, pod name), in a random order. */
async function idleRows(servers: Servers, pool: string) {
  const { rows } = await servers.db.query<{ id: string; pod_name: string | null }>(
    "SELECT id, pod_name FROM workers WHERE pool = $1 AND state = 'idle'",
    [pool],
  );
  return rows.sort(() => Math.random() - 0.5);
}

// --- process ----------------------------------------------------------------------------------

async function processWorkerImage(): Promise<{ path: string; kind: string }> {
  return { path: await smallWorkerPath(), kind: 'small protocol worker (Go binary, src/demo-worker/small)' };
}

async function processSection(): Promise<Record<string, unknown>> {
  const target = settings.processWorkers;
  const kills = Math.min(settings.processKills, target);
  const pool = 'fleet-proc';
  const loadAtStart = os.loadavg().map(round2);
  const sectionStarted = performance.now();
  const cleanups = new Cleanups();
  const result: Record<string, unknown> = {};
  try {
    const image = await processWorkerImage();
    say(`process: worker image ${image.path} (${image.kind})`);
    say('process: starting Temporal dev server and Postgres');
    const servers = await startServers(cleanups);
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-bench-fleet-'));
    // Runs after the corral worker stopped: whatever worker process is left is deleted.
    cleanups.push('leftover worker processes', async () => {
      const runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
      const managed = await runtime.listManaged();
      if (managed.length > 0) say(`deleting ${managed.length} leftover worker processes`);
      await Promise.all(
        managed.map((w) =>
          runtime.delete({ workerId: w.workerId, pool: w.pool, spawnAttempt: w.spawnAttempt, name: w.name }),
        ),
      );
      await runtime.close();
      fs.rmSync(stateDir, { recursive: true, force: true });
    });
    const taskQueue = `fleet-proc-${process.pid}`;
    say('process: starting bin/corral worker (runtime process, default settings)');
    const corralWorker = await startCorralWorker(servers, cleanups, {
      name: 'bench-fleet-corral-process',
      taskQueue,
      env: { CORRAL_RUNTIME: 'process', CORRAL_PROCESS_STATE_DIR: stateDir },
    });
    cleanups.push('pool workflow', () => terminatePool(servers, pool));
    say(`process: corral worker pid ${corralWorker.pid}, API ${corralWorker.apiUrl}, log ${corralWorker.proc.logFile}`);
    const classify = classifier({ corral: corralWorker.pid, temporal: servers.temporal.process.child.pid });

    const spec: PoolSpecInput = {
      name: pool,
      runtime: 'process',
      image: image.path,
      port: 8080,
      minIdle: target,
      maxWorkers: target,
      refillPerMinute: 2_000,
      releasePolicy: 'recycle',
      resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
      deadlines: { spawn: '5m', activation: '2m', maxLifetime: '24h', drain: '5m' },
    };
    Object.assign(result, {
      setup: {
        worker_image: image,
        pool: spec,
        health: 'pool defaults: interval 10 s, failure threshold 3 (probe GET /healthz)',
        corral_worker: 'bin/corral worker as a child process, runtime process, no slot variables (defaults)',
        kills: { count: kills, spacing_ms: settings.killSpacingMs, how: 'SIGKILL to the process group' },
        registry_poll_ms: settings.deathPollMs,
      },
    });

    // --- fill
    say(`process: applying pool ${pool}: 0 → ${target} idle`);
    const fillTimeline = countsTimeline(servers.db, pool);
    const fillCpu = cpuSnapshot();
    const fillStarted = performance.now();
    await corralWorker.corral.applyPool(spec);
    const filled = await waitForCounts(
      servers.db,
      pool,
      { idle: target, spawning: 0, activating: 0 },
      600_000,
      `${target} idle`,
    );
    const fillSeconds = round2((performance.now() - fillStarted) / 1000);
    const fillCores = cpuSince(fillCpu, classify);
    const fillEntries = await fillTimeline.stop();
    result.fill = {
      target,
      reached: filled.ok,
      seconds: fillSeconds,
      last_counts: filled.last,
      shape: fillShape(fillEntries, target),
      cpu_cores: fillCores,
      corral_worker_rss_mib_at_end: treeRssMiB(corralWorker.pid),
      timeline: fillEntries,
    };
    say(`process: fill ${filled.ok ? 'reached' : 'NOT reached'} in ${fillSeconds} s: ${JSON.stringify(filled.last)}`);

    if (filled.ok) {
      // --- steady
      say(`process: steady ${settings.processSteadySeconds} s at ${target} idle`);
      const before = await historySnapshot(servers.client, taskQueue);
      const steadyCpu = cpuSnapshot();
      const rss = rssSampler(corralWorker.pid, 5_000);
      await sleep(settings.processSteadySeconds * 1000);
      const steadyCores = cpuSince(steadyCpu, classify);
      const rssMiB = rss.stop();
      const after = await historySnapshot(servers.client, taskQueue);
      const growth = await historyGrowth(servers.client, before, after);
      const hours = (after.at - before.at) / 3_600_000;
      const workerEvents = growth.groups.worker_workflows?.events ?? 0;
      result.steady = {
        seconds: settings.processSteadySeconds,
        counts_at_end: await countsOf(servers.db, pool),
        cpu_cores: steadyCores,
        corral_worker_rss_mib: rssMiB,
        history: {
          window_seconds: round2((after.at - before.at) / 1000),
          ...growth,
          worker_events_per_idle_worker_hour: round2(workerEvents / (target * hours)),
        },
      };
      say(`process: steady ${JSON.stringify(result.steady)}`);

      // --- kill -9
      const victims = (await idleRows(servers, pool)).slice(0, kills).map((r) => r.id);
      const groups = workerProcessGroupsOf(victims);
      const killedAt = new Map<string, number>();
      const killTimeline = countsTimeline(servers.db, pool);
      const killCpu = cpuSnapshot();
      const noGroup: string[] = [];
      say(`process: kill -9 of ${victims.length} worker process groups, ${settings.killSpacingMs} ms apart`);
      const firstKill = performance.now();
      const deaths = (async () => {
        for (const id of victims) {
          const pgids = groups.get(id) ?? [];
          if (pgids.length === 0) {
            noGroup.push(id);
            continue;
          }
          killedAt.set(id, Date.now());
          for (const pgid of pgids) {
            try {
              process.kill(-pgid, 'SIGKILL');
            } catch (err) {
              say(`kill -9 -${pgid} (${id}): ${String(err)}`);
            }
          }
          await sleep(settings.killSpacingMs);
        }
      })();
      // The registry is watched from the first kill on, for each id as it is killed.
      const watched = await watchDeaths(servers.db, killedAt, {
        pollMs: settings.deathPollMs,
        timeoutMs: 90_000,
        killing: deaths,
      });
      const back = await waitForCounts(
        servers.db,
        pool,
        { idle: target, spawning: 0, activating: 0 },
        600_000,
        `back at ${target} idle`,
      );
      const backSeconds = round2((performance.now() - firstKill) / 1000);
      const trail = await verdictTrail(
        servers.client,
        (id) => workerLifecycleWorkflowId(pool, id),
        killedAt,
        new Map((await rowsOf(servers.db, [...killedAt.keys()])).map((r) => [r.id, r])),
      );
      result.kill = {
        killed: killedAt.size,
        without_process_group: noGroup,
        ...watched,
        inside_corral: trail,
        per_worker: watched.per_worker.slice(0, 10),
        back_to_target: { reached: back.ok, seconds_since_first_kill: backSeconds, last_counts: back.last },
        cpu_cores: cpuSince(killCpu, classify),
        timeline: await killTimeline.stop(),
      };
      say(`process: kill ${JSON.stringify({ ...watched, per_worker: undefined })}; back in ${backSeconds} s`);
    }

    // --- drain
    say(`process: draining ${pool}`);
    const drain = await drainPool(servers, corralWorker, pool, 900_000);
    const drainCores = cpuSince(drain.cpu, classify);
    const drainEntries = await drain.timeline.stop();
    const { rows } = await servers.db.query<{ id: string }>('SELECT id FROM workers WHERE pool = $1', [pool]);
    const left = workerProcessGroupsOf(rows.map((r) => r.id));
    result.drain = {
      workers: (fillEntries.at(-1)?.[1].idle ?? 0) as number,
      drained: drain.drained,
      seconds: drain.seconds,
      status: drain.status,
      error: drain.error,
      rows_by_state: await countsOf(servers.db, pool),
      worker_processes_left: left.size,
      cpu_cores: drainCores,
      timeline: drainEntries,
    };
    say(`process: drain ${drain.drained ? 'done' : 'NOT done'} in ${drain.seconds} s; processes left ${left.size}`);

    const fill = result.fill as { reached: boolean; seconds: number };
    const kill = result.kill as
      | { registry_state_since_minus_kill_ms: { p99: number; n: number }; killed: number }
      | undefined;
    result.met = {
      idle_300_within_60s: target === 300 && fill.reached && fill.seconds <= targets.process.idle_300_within_seconds,
      lost_reason_p99_within_2s:
        kill !== undefined &&
        kill.registry_state_since_minus_kill_ms.n === kill.killed &&
        kill.registry_state_since_minus_kill_ms.p99 <= targets.process.lost_reason_p99_ms,
    };
    result.corral_worker_log = logSummary(corralWorker.proc.logFile);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    say(`process section failed: ${String(err)}`);
  } finally {
    say('process: cleaning up');
    await cleanups.run();
  }
  return {
    at: new Date().toISOString(),
    machine: machine(loadAtStart),
    targets: targets.process,
    ...result,
    total_seconds: round2((performance.now() - sectionStarted) / 1000),
  };
}

// --- kwok -------------------------------------------------------------------------------------

const killFates: (KwokFate | 'delete')[] = ['crash', 'oom', 'evict', 'delete'];

async function kwokSection(): Promise<Record<string, unknown>> {
  const target = settings.kwokWorkers;
  const kills = Math.min(settings.kwokKills, target);
  const pool = 'fleet-kwok';
  const loadAtStart = os.loadavg().map(round2);
  const sectionStarted = performance.now();
  const cleanups = new Cleanups();
  const result: Record<string, unknown> = {};
  try {
    say('kwok: provisioning and starting etcd, kube-apiserver, kube-scheduler, KWOK');
    Object.assign(process.env, provisionTools(['kube']));
    const kube = await startKube({ nodes: 2 });
    cleanups.push('kube', () => kube.stop());
    const admin = kubeConfigFor(kube);
    const core = admin.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(admin, 'fleet');
    const kubeconfigFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'corral-bench-fleet-kube-')), 'kubeconfig');
    writeKubeconfigFile(kubeconfigFile, { server: kube.server, caFile: kube.caFile, token: kube.adminToken });
    cleanups.push('kubeconfig file', async () => fs.rmSync(path.dirname(kubeconfigFile), { recursive: true }));

    say('kwok: starting the pod workers (kwok-workers) child');
    const podWorkers = startProcess(
      'bench-fleet-kwok-workers',
      process.execPath,
      [
        '--require',
        require.resolve('tsx/cjs'),
        path.join(__dirname, 'fleet-kwok-workers.ts'),
        JSON.stringify({ server: kube.server, caFile: kube.caFile, adminToken: kube.adminToken, namespace }),
      ],
      { ipc: true, cwd: repoRoot },
    );
    cleanups.push('pod workers', async () => {
      if (podWorkers.child.connected) podWorkers.child.send({ type: 'stop' });
      const stopped = await Promise.race([podWorkers.exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!stopped) await podWorkers.stop(5_000);
    });
    const podWorkersReady = await Promise.race([
      failOnExit(podWorkers),
      nextMessage(podWorkers, 'ready'),
      deadline(120_000, `the pod workers were not ready; see ${podWorkers.logFile}`),
    ]);
    const port = Number(podWorkersReady.port);

    say('kwok: starting Temporal dev server and Postgres');
    const servers = await startServers(cleanups);
    const taskQueue = `fleet-kwok-${process.pid}`;
    say('kwok: starting bin/corral worker (runtime kubernetes, default settings)');
    const corralWorker = await startCorralWorker(servers, cleanups, {
      name: 'bench-fleet-corral-kwok',
      taskQueue,
      env: { CORRAL_RUNTIME: 'kubernetes', CORRAL_KUBE_NAMESPACE: namespace, KUBECONFIG: kubeconfigFile },
    });
    cleanups.push('pool workflow', () => terminatePool(servers, pool));
    say(`kwok: corral worker pid ${corralWorker.pid}, API ${corralWorker.apiUrl}, log ${corralWorker.proc.logFile}`);
    const classify = classifier({
      corral: corralWorker.pid,
      temporal: servers.temporal.process.child.pid,
      podWorkers: podWorkers.child.pid,
    });

    const spec: PoolSpecInput = {
      name: pool,
      runtime: 'kubernetes',
      image: kwokFateImage('ready'),
      port,
      minIdle: target,
      maxWorkers: target,
      refillPerMinute: 2_000,
      releasePolicy: 'recycle',
      resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
      deadlines: { spawn: '5m', activation: '2m', maxLifetime: '24h', drain: '5m' },
    };
    result.setup = {
      cluster:
        'etcd + kube-apiserver + kube-scheduler (built from the Go module proxy), KWOK v0.8.0 playing 2 nodes and the kubelet (test/fixtures/kwok/)',
      pod_workers:
        'test/harness/kwok-workers.ts in a child process: the demo worker protocol for every pod IP (127.x) on one port',
      pool: spec,
      health: 'pool defaults (interval 10 s, threshold 3); on Kubernetes corral reads pod status from its informer',
      corral_worker:
        'bin/corral worker as a child process, CORRAL_RUNTIME=kubernetes, admin kubeconfig, no slot variables (defaults)',
      kills: {
        count: kills,
        spacing_ms: settings.killSpacingMs,
        how: `fate annotations (KWOK writes the kubelet's status) and pod deletes, in rotation: ${killFates.join(', ')}`,
      },
      registry_poll_ms: settings.deathPollMs,
    };

    // --- fill
    say(`kwok: applying pool ${pool}: 0 → ${target} idle`);
    const fillTimeline = countsTimeline(servers.db, pool);
    const fillCpu = cpuSnapshot();
    const fillStarted = performance.now();
    await corralWorker.corral.applyPool(spec);
    const filled = await waitForCounts(
      servers.db,
      pool,
      { idle: target, spawning: 0, activating: 0 },
      900_000,
      `${target} idle`,
    );
    const fillSeconds = round2((performance.now() - fillStarted) / 1000);
    const fillEntries = await fillTimeline.stop();
    result.fill = {
      target,
      reached: filled.ok,
      seconds: fillSeconds,
      last_counts: filled.last,
      shape: fillShape(fillEntries, target),
      cpu_cores: cpuSince(fillCpu, classify),
      corral_worker_rss_mib_at_end: treeRssMiB(corralWorker.pid),
      timeline: fillEntries,
    };
    say(`kwok: fill ${filled.ok ? 'reached' : 'NOT reached'} in ${fillSeconds} s: ${JSON.stringify(filled.last)}`);

    if (filled.ok) {
      // --- steady
      say(`kwok: steady ${settings.kwokSteadySeconds} s at ${target} idle`);
      const before = await historySnapshot(servers.client, taskQueue);
      const steadyTimeline = countsTimeline(servers.db, pool, 5_000);
      const steadyCpu = cpuSnapshot();
      const rss = rssSampler(corralWorker.pid, 5_000);
      await sleep(settings.kwokSteadySeconds * 1000);
      const steadyCores = cpuSince(steadyCpu, classify);
      const rssMiB = rss.stop();
      const after = await historySnapshot(servers.client, taskQueue);
      const growth = await historyGrowth(servers.client, before, after);
      const hours = (after.at - before.at) / 3_600_000;
      const workerEvents = growth.groups.worker_workflows?.events ?? 0;
      result.steady = {
        seconds: settings.kwokSteadySeconds,
        cpu_cores: steadyCores,
        corral_worker_rss_mib: rssMiB,
        history: {
          window_seconds: round2((after.at - before.at) / 1000),
          ...growth,
          worker_events_per_idle_worker_hour: round2(workerEvents / (target * hours)),
          note: 'an idle worker’s periodic work at default settings is its credential refresh, every ttl − refreshLead = 55 min; a 10-minute window that starts minutes after the fill sees none of it',
        },
        timeline: await steadyTimeline.stop(),
      };
      say(`kwok: steady ${JSON.stringify(result.steady)}`);

      // --- claims at 1,000 idle
      say(`kwok: claims at ${settings.claimConcurrency} concurrent, ${settings.claimCycles} cycles`);
      const claimsCpu = cpuSnapshot();
      const claims = await claimCycles(corralWorker.corral, pool, {
        concurrency: settings.claimConcurrency,
        cycles: settings.claimCycles,
        warmup: settings.claimWarmup,
        runId: crypto.randomBytes(3).toString('hex'),
      });
      result.claims = { ...claims, cpu_cores: cpuSince(claimsCpu, classify) };
      say(`kwok: claims ${JSON.stringify(result.claims)}`);
      const settled = await waitForCounts(
        servers.db,
        pool,
        { idle: target, claimed: 0, spawning: 0, activating: 0 },
        120_000,
        'idle after claims',
      );
      if (!settled.ok) say(`kwok: not all idle after the claims: ${JSON.stringify(settled.last)}`);

      // --- kill 50 pods
      const victims = (await idleRows(servers, pool)).slice(0, kills);
      const killedAt = new Map<string, number>();
      const killErrors: string[] = [];
      const fateOf = new Map<string, string>();
      const podWatch = await podDeathWatch(admin, namespace);
      cleanups.push('bench pod watch', () => podWatch.stop());
      const killTimeline = countsTimeline(servers.db, pool);
      const killCpu = cpuSnapshot();
      say(`kwok: killing ${victims.length} pods, ${settings.killSpacingMs} ms apart`);
      const firstKill = performance.now();
      const calls: Promise<void>[] = [];
      let killingDone!: () => void;
      const killing = new Promise<void>((resolve) => (killingDone = resolve));
      const watching = watchDeaths(servers.db, killedAt, {
        pollMs: settings.deathPollMs,
        timeoutMs: 90_000,
        killing,
      });
      for (const [i, victim] of victims.entries()) {
        const fate = killFates[i % killFates.length];
        if (!victim.pod_name) {
          killErrors.push(`${victim.id}: no pod name in the registry`);
          continue;
        }
        fateOf.set(victim.id, fate);
        const name = victim.pod_name;
        podWatch.watch(name);
        killedAt.set(victim.id, Date.now());
        const call =
          fate === 'delete'
            ? core
                .deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }, timeoutOptions(10_000))
                .then(() => undefined)
            : setPodFate(core, namespace, name, fate);
        calls.push(call.catch((err: unknown) => void killErrors.push(`${name} (${fate}): ${String(err)}`)));
        await sleep(settings.killSpacingMs);
      }
      await Promise.all(calls);
      killingDone();
      const watched = await watching;
      // Where the time went: until the bench's own pod watch saw the pod dead (KWOK, apiserver), and after.
      const podOf = new Map(victims.map((v) => [v.id, v.pod_name ?? '']));
      const rowsNow = new Map((await rowsOf(servers.db, [...killedAt.keys()])).map((r) => [r.id, r]));
      const kubeletPartMs: number[] = [];
      const corralPartMs: number[] = [];
      const podSeenAs: Record<string, number> = {};
      for (const [id, killed] of killedAt) {
        const seenDead = podWatch.seen.get(podOf.get(id) ?? '');
        const row = rowsNow.get(id);
        if (!seenDead) continue;
        podSeenAs[seenDead.how] = (podSeenAs[seenDead.how] ?? 0) + 1;
        kubeletPartMs.push(seenDead.at - killed);
        if (row && (row.state === 'lost' || row.state === 'retired')) {
          corralPartMs.push(row.state_since.getTime() - seenDead.at);
        }
      }
      await podWatch.stop();
      const byFate: Record<string, { reasons: Record<string, number>; ms: number[] }> = {};
      for (const w of watched.per_worker) {
        const fate = fateOf.get(w.id) ?? '?';
        const f = (byFate[fate] ??= { reasons: {}, ms: [] });
        f.reasons[`${w.state}:${w.reason ?? 'none'}`] = (f.reasons[`${w.state}:${w.reason ?? 'none'}`] ?? 0) + 1;
        f.ms.push(w.ms);
      }
      const back = await waitForCounts(
        servers.db,
        pool,
        { idle: target, spawning: 0, activating: 0 },
        600_000,
        `back at ${target} idle`,
      );
      const backSeconds = round2((performance.now() - firstKill) / 1000);
      result.kill = {
        killed: killedAt.size,
        kill_errors: killErrors,
        ...watched,
        split: {
          means:
            'kill → the bench’s own pod watch saw the pod dead (KWOK writing status, apiserver, watch), then → the registry’s state_since (corral: informer, signal, workflow task, registry CAS)',
          pod_dead_seen_minus_kill_ms: summarise(kubeletPartMs),
          registry_minus_pod_dead_seen_ms: summarise(corralPartMs),
          pod_seen_as: podSeenAs,
        },
        inside_corral: await verdictTrail(
          servers.client,
          (id) => workerLifecycleWorkflowId(pool, id),
          killedAt,
          rowsNow,
        ),
        by_fate: Object.fromEntries(
          Object.entries(byFate).map(([fate, f]) => [
            fate,
            { reasons: f.reasons, max_ms: Math.max(...f.ms), median_ms: f.ms.sort((a, b) => a - b)[f.ms.length >> 1] },
          ]),
        ),
        per_worker: watched.per_worker.slice(0, 10),
        back_to_target: { reached: back.ok, seconds_since_first_kill: backSeconds, last_counts: back.last },
        cpu_cores: cpuSince(killCpu, classify),
        timeline: await killTimeline.stop(),
      };
      say(`kwok: kill ${JSON.stringify({ ...watched, per_worker: undefined })}; back in ${backSeconds} s`);
    }

    // --- drain
    const drainWorkers = (await countsOf(servers.db, pool)).idle ?? 0;
    say(`kwok: draining ${pool} (${drainWorkers} idle)`);
    const drain = await drainPool(servers, corralWorker, pool, 900_000);
    const drainCores = cpuSince(drain.cpu, classify);
    const drainEntries = await drain.timeline.stop();
    const podsLeft = await bounded(
      core.listNamespacedPod({ namespace }, timeoutOptions(30_000)),
      35_000,
      'list pods after the drain',
    ).then(
      (list) => list.items.length,
      () => -1,
    );
    result.drain = {
      workers: drainWorkers,
      drained: drain.drained,
      seconds: drain.seconds,
      status: drain.status,
      error: drain.error,
      rows_by_state: await countsOf(servers.db, pool),
      pods_left: podsLeft,
      cpu_cores: drainCores,
      timeline: drainEntries,
    };
    say(`kwok: drain ${drain.drained ? 'done' : 'NOT done'} in ${drain.seconds} s; pods left ${podsLeft}`);

    const fill = result.fill as { reached: boolean; seconds: number };
    const steady = result.steady as
      | {
          cpu_cores: CpuUse;
          corral_worker_rss_mib: { max: number };
          history: { worker_events_per_idle_worker_hour: number };
        }
      | undefined;
    const kill = result.kill as
      | { registry_state_since_minus_kill_ms: { p99: number; n: number }; killed: number }
      | undefined;
    const full = target === 1_000;
    result.met = {
      idle_1000_within_120s: full && fill.reached && fill.seconds <= targets.kwok.idle_1000_within_seconds,
      lost_reason_p99_within_1s:
        kill !== undefined &&
        kill.registry_state_since_minus_kill_ms.n === kill.killed &&
        kill.registry_state_since_minus_kill_ms.p99 <= targets.kwok.lost_reason_p99_ms,
      drain_1000_within_120s:
        full && drain.drained && drainWorkers === target && drain.seconds <= targets.kwok.drain_1000_within_seconds,
      corral_worker_cpu_steady_at_most_0_1_core:
        steady !== undefined &&
        Number(steady.cpu_cores.corral_worker ?? 0) <= targets.kwok.corral_worker_cpu_cores_steady,
      corral_worker_rss_steady_at_most_1_gib:
        steady !== undefined && steady.corral_worker_rss_mib.max <= targets.kwok.corral_worker_rss_gib_steady * 1024,
      history_at_most_12_events_per_idle_worker_hour:
        steady !== undefined &&
        steady.history.worker_events_per_idle_worker_hour <= targets.kwok.history_events_per_idle_worker_hour,
    };
    result.corral_worker_log = logSummary(corralWorker.proc.logFile);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    say(`kwok section failed: ${String(err)}`);
  } finally {
    say('kwok: cleaning up');
    await cleanups.run();
  }
  return {
    at: new Date().toISOString(),
    machine: machine(loadAtStart),
    targets: targets.kwok,
    ...result,
    total_seconds: round2((performance.now() - sectionStarted) / 1000),
  };
}

// --- main -------------------------------------------------------------------------------------

async function main() {
  const which = process.argv[2] ?? 'all';
  if (!['process', 'kwok', 'all'].includes(which)) {
    throw new Error(`usage: node --require tsx/cjs bench/fleet.ts [process|kwok|all] (got ${which})`);
  }
  const sections: Record<string, unknown> = {};
  if (which === 'process' || which === 'all') sections.process = await processSection();
  if (which === 'kwok' || which === 'all') sections.kwok = await kwokSection();

  const file = path.join(__dirname, 'results', 'fleet.json');
  let merged: Record<string, unknown> = {};
  if (fs.existsSync(file)) merged = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  merged = {
    benchmark: 'fleet',
    usage: 'node --require tsx/cjs bench/fleet.ts [process|kwok|all]; each section is merged under its key',
    ...merged,
    ...sections,
    updated_at: new Date().toISOString(),
  };
  const met: Record<string, unknown> = {};
  for (const key of ['process', 'kwok']) {
    const section = merged[key] as { met?: Record<string, boolean> } | undefined;
    if (section?.met) for (const [name, ok] of Object.entries(section.met)) met[`${key}.${name}`] = ok;
  }
  merged.met = met;
  console.log(JSON.stringify(which === 'all' ? merged : { [which]: sections[which], met }));
  if (overrides.length > 0) {
    say(`development overrides (${overrides.join(', ')}): ${file} not written`);
    return;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
  say(`written to ${file}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
