// Warm claims through the corral API, end to end as a control plane makes them, on this machine:
// its own Temporal dev server and embedded Postgres; a corral worker + corral API in a child
// process (bench/claims-corral.ts: a Temporal Worker with every activity, startCorralApi on
// 127.0.0.1:0 without tokens); the process runtime running real demo workers (health probes off);
// and this process as the load generator, calling the API with CorralClient (HTTP, Node's fetch,
// keep-alive). At each concurrency C, C loops each claim a warm worker (timed: the claim alone),
// then release it (recycle: back to idle, timed apart), for a fixed number of cycles after a
// warm-up; cycles/s is cycles over the level's wall time. Beside it, first: the raw one-statement
// SQL claim (bench/raw-sql-claim.ts) at the same concurrencies on the same Postgres (seeded idle
// rows of other pools). Per level: latency percentiles, errors by code, warm/cold, where the
// corral process spent each claim and release (registry transaction, hand-over, rest), the cores
// used by each process group and CPU ms per cycle, and what the worker workflows and the pool
// workflow gained in history (the API's notifications are coalesced per worker per ~1 s).
// Usage: node --require tsx/cjs bench/claims.ts [cyclesPerLevel] → one JSON line on stdout, also
// written to bench/results/claims.json.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { temporal as temporalProto } from '@temporalio/proto';
import { CorralClient, CorralUnreachableError, type ClaimResult } from '../src/client/corral-client';
import { CorralError } from '../src/client/errors';
import type { PoolSpecInput } from '../src/config/pool-spec';
import { failOnExit, nextMessage, startProcess, type ManagedProcess } from '../src/embedded/child-process';
import { startEmbeddedPostgres } from '../src/embedded/postgres';
import { startTemporalDevServer } from '../src/embedded/temporal-dev-server';
import { provisionTools, repoRoot } from '../src/embedded/tools';
import { waitFor } from '../src/embedded/wait';
import { createRegistryPool } from '../src/registry/database';
import { migrateRegistry } from '../src/registry/migrate';
import { PoolStore } from '../src/registry/pool-store';
import { ProcessPodRuntime } from '../src/runtime/process/process-runtime';
import { poolWorkflowId } from '../src/common';
import type { CorralProcessConfig } from './claims-corral';
import { cpuSince, cpuSnapshot, type CpuUse } from './proc-cpu';
import { rawSqlClaim } from './raw-sql-claim';
import { lag, loopDelayResolutionMs, summarise } from './stats';

const EventType = temporalProto.api.enums.v1.EventType;
const say = (line: string) => console.error(`[bench:claims] ${line}`);

const concurrencies = [1, 10, 50, 100];
/** Run again, last, with the API's workflow notifications dropped. */
const diagnosticConcurrencies = [1, 50];
const poolName = 'bench-claims';
/** Enough warm workers for the highest concurrency, with some to spare. */
const maxWorkers = 120;
/** While measuring: below the lowest idle count a level reaches, so the pool never wants a refill. */
const minIdleWhileMeasuring = Math.max(0, maxWorkers - Math.max(...concurrencies) - 10);
/** Connections of the raw SQL claim's pg pool: the product's default (createRegistryPool). */
const dbConnections = 10;
const claimAckWindowMs = 15_000;
const maxConcurrentActivities = 200;
/** Notifications are coalesced per worker per 1 s: wait this long for the last ones to land. */
const notifySettleMs = 2_500;

const poolSpec: PoolSpecInput = {
  name: poolName,
  runtime: 'process',
  image: path.join(repoRoot, 'bin', 'corral-demo-worker'),
  port: 8080,
  // No health probes: a probe loop per worker would steal CPU from the measurement.
  healthPath: null,
  minIdle: maxWorkers,
  maxWorkers,
  refillPerMinute: 600,
  releasePolicy: 'recycle',
  maxSpawnAttempts: 3,
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 256 } },
  deadlines: { spawn: '5m', activation: '1m', maxLifetime: '2h', drain: '1m' },
  breaker: { failureThreshold: 20, cooldown: '5s', successThreshold: 1 },
};

const warmupCycles = (concurrency: number) => Math.max(30, 2 * concurrency);

/** Runs `total` tasks with `concurrency` loops sharing one counter; returns the wall time. */
async function runLoops(concurrency: number, total: number, task: (i: number, loop: number) => Promise<void>) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, loop) => {
      for (let i = next++; i < total; i = next++) await task(i, loop);
    }),
  );
  return performance.now() - started;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const mean = (xs: number[]) => round2(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Rejects after `ms` without keeping the process alive. */
const deadline = (ms: number, what: string) =>
  new Promise<never>((_, reject) => setTimeout(() => reject(new Error(what)), ms).unref());

/** CPU ms per cycle (or claim) by group, from cores used over a wall time. */
function cpuMsPer(cpu: CpuUse, wallMs: number, count: number): Record<string, number> {
  const out: Record<string, number> = {};
  let ours = 0;
  for (const [group, cores] of Object.entries(cpu)) {
    if (typeof cores !== 'number' || group === 'machine_busy') continue;
    out[group] = round2((cores * wallMs) / Math.max(1, count));
    if (group !== 'other_load') ours += cores;
  }
  out.all_bench_processes = round2((ours * wallMs) / Math.max(1, count));
  return out;
}

/** Runs `fn` over `items`, `width` at a time. */
async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

async function main() {
  const cyclesPerLevel = Number(process.argv[2] ?? 300);
  const benchStarted = performance.now();
  const loadAtStart = os.loadavg().map((x) => round2(x));

  say('provisioning the Temporal CLI (a no-op on a warm cache)');
  Object.assign(process.env, provisionTools(['temporal']));
  say('starting Temporal dev server and Postgres');
  const [temporalStarted, postgresStarted] = await Promise.allSettled([
    startTemporalDevServer(),
    startEmbeddedPostgres(),
  ]);
  if (temporalStarted.status === 'rejected' || postgresStarted.status === 'rejected') {
    if (temporalStarted.status === 'fulfilled') await temporalStarted.value.stop();
    if (postgresStarted.status === 'fulfilled') await postgresStarted.value.stop();
    throw temporalStarted.status === 'rejected'
      ? temporalStarted.reason
      : (postgresStarted as PromiseRejectedResult).reason;
  }
  const temporalServer = temporalStarted.value;
  const postgres = postgresStarted.value;
  const cleanups: (() => Promise<unknown>)[] = [() => postgres.stop(), () => temporalServer.stop()];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        say(`cleanup step failed: ${String(err)}`);
      }
    }
  };

  try {
    await migrateRegistry(postgres.connectionString);
    // This process's own pg pool: the raw SQL claim, and looking at the pool's inventory between
    // levels (never while measuring the API).
    const db = createRegistryPool({ connectionString: postgres.connectionString, maxConnections: dbConnections });
    cleanups.push(() => db.end());
    const pools = new PoolStore(db);
    const connection = await Connection.connect({ address: temporalServer.address });
    cleanups.push(() => connection.close());
    const temporal = new Client({ connection, namespace: temporalServer.namespace });

    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-bench-claims-'));
    // The corral process spawns the demo workers; this runtime only finds and deletes them at the end.
    const runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
    cleanups.push(async () => {
      const managed = await runtime.listManaged();
      say(`deleting ${managed.length} worker processes`);
      await Promise.all(
        managed.map((w) =>
          runtime.delete({ workerId: w.workerId, pool: w.pool, spawnAttempt: w.spawnAttempt, name: w.name }),
        ),
      );
      await runtime.close();
      fs.rmSync(stateDir, { recursive: true, force: true });
    });

    // --- the corral process: worker + API
    const taskQueue = `bench-claims-${process.pid}`;
    const config: CorralProcessConfig = {
      temporalAddress: temporalServer.address,
      namespace: temporalServer.namespace,
      databaseUrl: postgres.connectionString,
      taskQueue,
      stateDir,
      claimAckWindowMs,
      maxConcurrentActivities,
    };
    say('starting the corral worker + API process (bundles the workflows)');
    const corralProcess: ManagedProcess = startProcess(
      'bench-claims-corral',
      process.execPath,
      ['--require', require.resolve('tsx/cjs'), path.join(__dirname, 'claims-corral.ts'), JSON.stringify(config)],
      { ipc: true, cwd: repoRoot },
    );
    cleanups.push(async () => {
      if (corralProcess.child.connected) corralProcess.child.send({ type: 'stop' });
      const stopped = await Promise.race([
        corralProcess.exited.then(() => true),
        deadline(30_000, 'the corral process did not stop').catch(() => false),
      ]);
      if (!stopped) await corralProcess.stop(5_000);
    });
    // Before the processes are deleted: a running pool would respawn them.
    cleanups.push(() =>
      temporal.workflow
        .getHandle(poolWorkflowId(poolName))
        .terminate('bench done')
        .catch(() => undefined),
    );
    const ready = await Promise.race([
      failOnExit(corralProcess),
      nextMessage(corralProcess, 'ready'),
      deadline(180_000, `the corral process was not ready within 180 s; see ${corralProcess.logFile}`),
    ]);
    const apiUrl = String(ready.apiUrl);
    const corralPid = corralProcess.child.pid;
    say(`corral API on ${apiUrl} (pid ${corralPid}; log ${corralProcess.logFile})`);
    let requests = 0;
    const ask = async (type: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> => {
      const answer = nextMessage(corralProcess, type === 'stats' ? 'stats' : `${type}-done`);
      corralProcess.child.send({ ...extra, type, n: ++requests });
      return Promise.race([answer, failOnExit(corralProcess)]);
    };

    const corral = new CorralClient({ url: apiUrl });

    // --- the pool: filled to maxWorkers, then minIdle lowered so nothing refills while measuring
    say(`applying pool ${poolName}: filling to ${maxWorkers} idle demo workers`);
    const fillStarted = performance.now();
    await corral.applyPool(poolSpec);
    const allIdle = async () => {
      const { counts } = await pools.inventory(poolName);
      return (counts.idle ?? 0) >= maxWorkers && !counts.spawning && !counts.activating && !counts.claimed;
    };
    let lastLogged = 0;
    await waitFor(
      async () => {
        const { counts } = await pools.inventory(poolName);
        if (performance.now() - lastLogged > 10_000) {
          say(`  inventory ${JSON.stringify(counts)}`);
          lastLogged = performance.now();
        }
        return allIdle();
      },
      { what: `${maxWorkers} idle workers`, timeoutMs: 15 * 60_000, intervalMs: 500 },
    );
    const fillSeconds = round2((performance.now() - fillStarted) / 1000);
    await corral.scalePool(poolName, { minIdle: minIdleWhileMeasuring });
    say(`pool full after ${fillSeconds}s; minIdle now ${minIdleWhileMeasuring}, maxWorkers ${maxWorkers}; settling 5s`);
    await sleep(5_000);

    const runId = crypto.randomBytes(3).toString('hex');
    const temporalPid = temporalServer.process.child.pid;
    /** CPU groups by process. */
    const classify = (pid: number, comm: string, ancestors: number[]) => {
      if (pid === process.pid) return 'load_generator';
      if (pid === corralPid) return 'corral_worker_api';
      if (temporalPid !== undefined && (pid === temporalPid || ancestors.includes(temporalPid))) {
        return 'temporal_server';
      }
      if (comm === 'postgres') return 'postgres';
      if (corralPid !== undefined && ancestors.includes(corralPid)) {
        // tsx's esbuild service of the corral process itself; everything else it started is a demo worker.
        return ancestors[0] === corralPid && comm === 'esbuild' ? 'corral_worker_api' : 'demo_workers';
      }
      if (ancestors[0] === process.pid && comm === 'esbuild') return 'load_generator';
      return 'other_bench_children';
    };

    // --- workflow histories: what the level added to the worker workflows and the pool workflow
    const runsOnQueue = async () => {
      const runs: { workflowId: string; runId: string; type: string }[] = [];
      for await (const run of temporal.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) {
        runs.push({ workflowId: run.workflowId, runId: run.runId, type: run.type });
      }
      return runs;
    };
    const historyLengths = async () => {
      const lengths = new Map<string, number>();
      await inBatches(await runsOnQueue(), 20, async (run) => {
        const described = await temporal.workflow.getHandle(run.workflowId, run.runId).describe();
        lengths.set(run.runId, described.historyLength);
      });
      return lengths;
    };
    const historyGrowth = async (before: Map<string, number>) => {
      const groups: Record<
        string,
        {
          runs: number;
          runs_touched: number;
          events: number;
          signals: number;
          workflow_tasks: number;
          activities: number;
          workflow_task_failures: number;
        }
      > = {};
      await inBatches(await runsOnQueue(), 20, async (run) => {
        const group =
          run.type === 'poolWorkflow'
            ? 'pool_workflow'
            : run.type === 'workerLifecycleWorkflow'
              ? 'worker_workflows'
              : run.type;
        const g = (groups[group] ??= {
          runs: 0,
          runs_touched: 0,
          events: 0,
          signals: 0,
          workflow_tasks: 0,
          activities: 0,
          workflow_task_failures: 0,
        });
        g.runs++;
        const from = before.get(run.runId) ?? 0;
        const history = await temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
        const added = (history.events ?? []).filter((e) => Number(e.eventId) > from);
        if (added.length > 0) g.runs_touched++;
        g.events += added.length;
        for (const e of added) {
          if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) g.signals++;
          else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) g.workflow_tasks++;
          else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) g.activities++;
          else if (
            e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED ||
            e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
          ) {
            g.workflow_task_failures++;
          }
        }
      });
      return groups;
    };

    const loadLoopDelay = monitorEventLoopDelay({ resolution: loopDelayResolutionMs });

    // --- raw SQL first, on a quiet machine: the one-statement claim on seeded idle rows of other pools
    const measureRawSql = async (concurrency: number) => {
      const rawPool = `raw-sql-c${concurrency}`;
      const warmup = warmupCycles(concurrency);
      await db.query(
        `INSERT INTO workers (id, pool, image, state, epoch, endpoint)
         SELECT $1 || '-' || g, $1, 'bench:1', 'idle', 1, 'http://127.0.0.1:1' FROM generate_series(1, $2) g`,
        [rawPool, warmup + cyclesPerLevel],
      );
      const samples: number[] = [];
      let failed = 0;
      const claimOne = (record: boolean) => async (i: number, loop: number) => {
        const t0 = performance.now();
        const r = await rawSqlClaim(db, {
          pool: rawPool,
          tenant: `tenant-${loop}`,
          requestId: `${record ? 'm' : 'w'}-${i}`,
          origin: 'client',
        });
        const ms = performance.now() - t0;
        if (r.outcome !== 'claimed') failed++;
        else if (record) samples.push(ms);
      };
      await runLoops(concurrency, warmup, claimOne(false));
      const cpu = cpuSnapshot();
      const wallMs = await runLoops(concurrency, cyclesPerLevel, claimOne(true));
      const cpuCores = cpuSince(cpu, classify);
      const level = {
        concurrency,
        claims: samples.length,
        failed,
        latency_ms: summarise(samples),
        mean_ms: mean(samples),
        claims_per_second: round2(samples.length / (wallMs / 1000)),
        cpu_cores: cpuCores,
        cpu_ms_per_claim: cpuMsPer(cpuCores, wallMs, samples.length),
      };
      say(`raw SQL concurrency ${concurrency}: ${JSON.stringify(level)}`);
      return level;
    };
    const rawSql: Awaited<ReturnType<typeof measureRawSql>>[] = [];
    for (const concurrency of concurrencies) rawSql.push(await measureRawSql(concurrency));

    // --- the API: claim (timed) → release (timed), C loops at a time
    const measureLevel = async (concurrency: number, tag = 'c') => {
      await waitFor(allIdle, { what: 'every worker idle again', timeoutMs: 60_000, intervalMs: 200 });
      const claimMs: number[] = [];
      const releaseMs: number[] = [];
      let warm = 0;
      let cold = 0;
      let cycles = 0;
      const errors: Record<string, number> = {};
      const errorSamples: Record<string, string> = {};
      const noteError = (where: string, err: unknown) => {
        const code =
          err instanceof CorralError
            ? err.code
            : err instanceof CorralUnreachableError
              ? 'unreachable'
              : err instanceof Error
                ? err.name
                : 'unknown';
        const key = `${where}:${code}`;
        errors[key] = (errors[key] ?? 0) + 1;
        errorSamples[key] ??= (err instanceof Error ? err.message : String(err)).slice(0, 200);
      };
      const cycle = (phase: string, record: boolean) => async (i: number, loop: number) => {
        let lease: ClaimResult;
        const t0 = performance.now();
        try {
          lease = await corral.claim(poolName, {
            tenant: `tenant-${loop}`,
            requestId: `${runId}-${tag}${concurrency}-${phase}-${i}`,
            timeout: '30s',
          });
        } catch (err) {
          if (record) noteError('claim', err);
          return;
        }
        const t1 = performance.now();
        if (record) {
          claimMs.push(t1 - t0);
          if (lease.path === 'warm') warm++;
          else cold++;
        }
        try {
          await corral.release(lease);
        } catch (err) {
          if (record) noteError('release', err);
          return;
        }
        if (record) {
          releaseMs.push(performance.now() - t1);
          cycles++;
        }
      };
      const warmup = warmupCycles(concurrency);
      say(`API (${tag}) concurrency ${concurrency}: ${warmup} warm-up + ${cyclesPerLevel} measured cycles`);
      await runLoops(concurrency, warmup, cycle('warmup', false));
      await waitFor(allIdle, { what: 'every worker idle again', timeoutMs: 60_000, intervalMs: 200 });
      await sleep(notifySettleMs); // the warm-up's notifications land before the histories are read
      const historyBefore = await historyLengths();
      await ask('reset');
      loadLoopDelay.reset();
      loadLoopDelay.enable();
      const cpu = cpuSnapshot();
      const wallMs = await runLoops(concurrency, cyclesPerLevel, cycle('m', true));
      const cpuCores = cpuSince(cpu, classify);
      loadLoopDelay.disable();
      const corralSide = await ask('stats');
      await sleep(notifySettleMs);
      const history = await historyGrowth(historyBefore);
      const latency = summarise(claimMs);
      const claimed = claimMs.length;
      const level = {
        concurrency,
        cycles,
        claims: claimed,
        warm,
        cold,
        errors,
        error_samples: errorSamples,
        latency_ms: latency,
        mean_ms: mean(claimMs),
        release_latency_ms: summarise(releaseMs),
        release_mean_ms: mean(releaseMs),
        wall_seconds: round2(wallMs / 1000),
        cycles_per_second: round2(cycles / (wallMs / 1000)),
        cpu_cores: cpuCores,
        cpu_ms_per_cycle: cpuMsPer(cpuCores, wallMs, cycles),
        /** Inside the corral process: ClaimService.claim/.release split into the registry transaction, the hand-over (POST /activate) and the rest. */
        corral_process: {
          claim: corralSide.claim,
          release: corralSide.release,
          acknowledgements: corralSide.acknowledgements,
          hand_over_histogram: corralSide.hand_over_histogram,
          event_loop_lag_ms: corralSide.event_loop_lag_ms,
          signals_sent: corralSide.signals_sent,
          api_log: corralSide.api_log,
        },
        /** Client-side claim latency minus the corral process's ClaimService.claim time: HTTP, Fastify, JSON and event-loop queueing in both processes. */
        claim_outside_service_mean_ms: round2(
          mean(claimMs) - ((corralSide.claim as { mean_ms?: { total?: number } }).mean_ms?.total ?? 0),
        ),
        load_generator_event_loop_lag_ms: lag(loadLoopDelay),
        history_added: history,
        signals_per_cycle: round2(Object.values(history).reduce((a, g) => a + g.signals, 0) / Math.max(1, cycles)),
        workflow_tasks_per_cycle: round2(
          Object.values(history).reduce((a, g) => a + g.workflow_tasks, 0) / Math.max(1, cycles),
        ),
        /** Claims take the longest-idle worker, so each worker is used about once per this: coalescing (1 s) only helps below it. */
        seconds_between_uses_of_a_worker: round2(maxWorkers / Math.max(0.01, cycles / (wallMs / 1000))),
      };
      say(`  ${JSON.stringify(level)}`);
      return level;
    };
    const levels: Awaited<ReturnType<typeof measureLevel>>[] = [];
    for (const concurrency of concurrencies) levels.push(await measureLevel(concurrency));

    // --- diagnostic: the same claims with the API's workflow signals dropped (counted, not sent),
    // to show what the notifications (signal RPCs, workflow tasks, server work) cost per cycle
    say('diagnostic: workflow notifications dropped');
    await ask('notify', { on: false });
    const withoutNotifications: Awaited<ReturnType<typeof measureLevel>>[] = [];
    for (const concurrency of diagnosticConcurrencies) {
      withoutNotifications.push(await measureLevel(concurrency, 'nonotify'));
    }
    await ask('notify', { on: true });

    const rawAt = (c: number) => rawSql.find((l) => l.concurrency === c);
    const ratios = levels.map((l) => {
      const raw = rawAt(l.concurrency);
      return {
        concurrency: l.concurrency,
        p50: raw ? round2(l.latency_ms.p50 / raw.latency_ms.p50) : null,
        p90: raw ? round2(l.latency_ms.p90 / raw.latency_ms.p90) : null,
        p99: raw ? round2(l.latency_ms.p99 / raw.latency_ms.p99) : null,
        /** raw SQL claims/s over API claim+release cycles/s. */
        throughput_raw_over_api: raw ? round2(raw.claims_per_second / Math.max(0.01, l.cycles_per_second)) : null,
      };
    });
    for (const [i, ratio] of ratios.entries()) Object.assign(levels[i], { ratio_to_raw_sql: ratio });

    const at = (c: number) => levels.find((l) => l.concurrency === c);
    const at50 = at(50);
    const at1 = at(1);
    const ratio50 = ratios.find((r) => r.concurrency === 50);
    const targets = {
      p99_ms_at_50: 100,
      p99_ratio_to_raw_sql_at_50: 3,
      cycles_per_second_at_50: 300,
      p50_ms_at_1: 10,
    };
    const result = {
      benchmark: 'claims',
      at: new Date().toISOString(),
      machine: {
        cores: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        memory_gib: round2(os.totalmem() / 2 ** 30),
        node: process.version,
        loadavg_at_start: loadAtStart,
      },
      setup: {
        servers: 'Temporal dev server (in-memory) + embedded Postgres 18, loopback',
        processes: {
          load_generator:
            'this process: CorralClient over HTTP (Node fetch, keep-alive); also the raw SQL claims (own pg pool)',
          corral_worker_api:
            'child process (bench/claims-corral.ts): Temporal Worker with createCorralActivities + startCorralApi on 127.0.0.1:0, no tokens',
          demo_workers: 'children of the corral process (process runtime, bin/corral-demo-worker)',
        },
        runtime: 'process (bin/corral-demo-worker)',
        pool: {
          maxWorkers,
          minIdle_fill: maxWorkers,
          minIdle_while_measuring: minIdleWhileMeasuring,
          releasePolicy: 'recycle',
          healthProbes: 'off (healthPath: null)',
        },
        refill_spawns_while_measuring: 'none (live = maxWorkers, idle never below minIdle)',
        corral_process: {
          pg_connections: 10,
          temporal_connections: 1,
          api_temporal_client:
            'its own Client on the shared connection, signal() wrapped to count (and, in the diagnostic, drop) notifications',
          max_concurrent_activities: maxConcurrentActivities,
          claim_ack_window_ms: claimAckWindowMs,
          notify_window_ms: 1000,
          janitor_schedule: 'not started',
        },
        raw_sql: {
          statement: 'bench/raw-sql-claim.ts: one statement (CTEs) = corral_claim_idle',
          pg_connections: dbConnections,
          pools: 'seeded idle rows of other pools, same Postgres, run first',
        },
        fill_seconds: fillSeconds,
        cycles_per_level: cyclesPerLevel,
        warmup_cycles_per_level: concurrencies.map((c) => ({ concurrency: c, cycles: warmupCycles(c) })),
        latency_ms_means: 'claim alone, as the caller sees it; release timed apart (release_latency_ms)',
        cycles_per_second_means: 'claim+release cycles completed / wall time of the level',
        cpu_cores_means:
          'cores used during the measured cycles by process group; other_load = busy time of processes this bench did not start',
        cpu_ms_per_cycle_means: 'cores × wall ms / cycles, per group',
        history_added_means:
          'events added to workflow histories on the corral task queue between just before the level and 2.5 s after it (runs started meanwhile counted whole)',
        order: 'fill, raw SQL levels, API levels, diagnostic API levels without workflow notifications',
        event_loop_lag_means: `timer lateness beyond the ${loopDelayResolutionMs} ms sampling interval (monitorEventLoopDelay)`,
      },
      targets,
      met: {
        p99_ms_at_50: at50 !== undefined && at50.latency_ms.p99 <= targets.p99_ms_at_50,
        p99_ratio_to_raw_sql_at_50:
          ratio50?.p99 !== null && ratio50?.p99 !== undefined && ratio50.p99 <= targets.p99_ratio_to_raw_sql_at_50,
        cycles_per_second_at_50: at50 !== undefined && at50.cycles_per_second >= targets.cycles_per_second_at_50,
        p50_ms_at_1: at1 !== undefined && at1.latency_ms.p50 <= targets.p50_ms_at_1,
        all_warm_no_errors: levels.every((l) => l.cold === 0 && Object.keys(l.errors).length === 0),
      },
      levels,
      raw_sql: rawSql,
      diagnostic_without_workflow_notifications: {
        means:
          'the same claim+release cycles with the API notifier’s signals dropped (workflows not told): not a valid way to run corral, only what the notifications cost',
        levels: withoutNotifications,
      },
      total_seconds: round2((performance.now() - benchStarted) / 1000),
    };
    const line = JSON.stringify(result);
    console.log(line);
    const resultsDir = path.join(__dirname, 'results');
    fs.mkdirSync(resultsDir, { recursive: true });
    fs.writeFileSync(path.join(resultsDir, 'claims.json'), `${JSON.stringify(result, null, 2)}\n`);
    say(`written to ${path.join(resultsDir, 'claims.json')}`);
  } finally {
    say('cleaning up');
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
