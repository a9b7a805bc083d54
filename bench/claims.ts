// Warm-claim latency and throughput through CorralClient, end to end on this machine: its own
// Temporal dev server and embedded Postgres, an in-process corral worker, the process runtime
// running real demo workers (health probes off). At each concurrency C, C loops each claim a
// warm worker (timed: the claim alone), then release it (recycle: back to idle), for a fixed
// number of claims; claims/s is claims over the level's wall time. Beside it: the raw SQL claim
// (corral_claim_idle) at the same concurrencies on the same Postgres; the warm path split into
// its three steps (begin SQL, the worker workflow's claim update, grant SQL), timed by calling
// the same pieces CorralClient calls; claim-only bursts; and, last, a diagnostic level with the
// pool workflow stopped (its per-claim wake-ups are part of a claim's cost). Each phase reports
// the cores used by this process, the dev server, Postgres and the demo workers, and by
// processes the bench did not start (`other_load`: a shared machine skews the numbers).
// Usage: node --require tsx/cjs bench/claims.ts [claimsPerLevel] → one JSON line on stdout.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { temporal as temporalProto } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createCorralActivities } from '../src/activities';
import { CorralClient, type ClaimResult } from '../src/client/corral-client';
import type { PoolSpecInput } from '../src/config/pool-spec';
import { startEmbeddedPostgres } from '../src/embedded/postgres';
import { startTemporalDevServer } from '../src/embedded/temporal-dev-server';
import { provisionTools, repoRoot } from '../src/embedded/tools';
import { waitFor } from '../src/embedded/wait';
import { createPoolMetrics } from '../src/metrics/pool-metrics';
import { createRegistryPool } from '../src/registry/database';
import { WorkerLifecycleStore } from '../src/registry/lifecycle-store';
import { migrateRegistry } from '../src/registry/migrate';
import { PoolStore } from '../src/registry/pool-store';
import { ProcessPodRuntime } from '../src/runtime/process/process-runtime';
import { poolWorkflowId } from '../src/workflows/pool/messages';
import { claimUpdate, workerLifecycleWorkflowId } from '../src/workflows/worker-lifecycle/messages';
import { cpuSince, cpuSnapshot } from './proc-cpu';
import { summarise } from './stats';

const EventType = temporalProto.api.enums.v1.EventType;
const say = (line: string) => console.error(`[bench:claims] ${line}`);

const concurrencies = [1, 10, 50];
const warmupClaims = 20;
const poolName = 'bench-claims';
/** Idle workers kept; maxWorkers is reached before measuring, so no refill spawns steal CPU. */
const minIdle = 60;
const maxWorkers = 64;
/** Connections per pg pool: the product's default (createRegistryPool / CorralClient.connect). */
const dbConnections = 10;

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

async function main() {
  const claimsPerLevel = Number(process.argv[2] ?? 300);
  // Core's own logs go through the logger (stderr), so stdout carries only the JSON line.
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
  });
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
    // Two pg pools and two Temporal connections, as if corral worker and the control plane were
    // separate processes (they share this process's CPU, as they would share the machine).
    const workerDb = createRegistryPool({ connectionString: postgres.connectionString, maxConnections: dbConnections });
    const clientDb = createRegistryPool({ connectionString: postgres.connectionString, maxConnections: dbConnections });
    cleanups.push(
      () => workerDb.end(),
      () => clientDb.end(),
    );
    const activityConnection = await Connection.connect({ address: temporalServer.address });
    const clientConnection = await Connection.connect({ address: temporalServer.address });
    cleanups.push(
      () => activityConnection.close(),
      () => clientConnection.close(),
    );
    const activityTemporal = new Client({ connection: activityConnection, namespace: temporalServer.namespace });
    const temporal = new Client({ connection: clientConnection, namespace: temporalServer.namespace });

    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-bench-claims-'));
    const runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
    cleanups.push(async () => {
      await runtime.close();
      fs.rmSync(stateDir, { recursive: true, force: true });
    });

    const store = new WorkerLifecycleStore(workerDb);
    const pools = new PoolStore(workerDb);
    const taskQueue = `bench-claims-${process.pid}`;
    const workerConnection = await NativeConnection.connect({ address: temporalServer.address });
    cleanups.push(() => workerConnection.close());
    say('bundling workflows and starting the corral worker');
    const worker = await Worker.create({
      connection: workerConnection,
      namespace: temporalServer.namespace,
      taskQueue,
      workflowsPath: require.resolve('../src/workflows'),
      activities: createCorralActivities({
        store,
        runtime,
        temporal: activityTemporal,
        pools,
        poolMetrics: createPoolMetrics(new Registry()),
      }),
      maxConcurrentActivityTaskExecutions: 200,
      maxConcurrentLocalActivityExecutions: 200,
    });
    const running = worker.run();
    cleanups.push(async () => {
      worker.shutdown();
      await running;
    });
    // Pool first, then the processes: a running pool would respawn what the runtime deletes.
    cleanups.push(async () => {
      const managed = await runtime.listManaged();
      say(`deleting ${managed.length} worker processes`);
      await Promise.all(
        managed.map((w) =>
          runtime.delete({ workerId: w.workerId, pool: w.pool, spawnAttempt: w.spawnAttempt, name: w.name }),
        ),
      );
    });
    cleanups.push(async () => {
      await temporal.workflow
        .getHandle(poolWorkflowId(poolName))
        .terminate('bench done')
        .catch(() => undefined);
    });

    const corral = new CorralClient({ temporal, db: clientDb, taskQueue });
    const clientPools = new PoolStore(clientDb);

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
      { what: `${maxWorkers} idle workers`, timeoutMs: 10 * 60_000, intervalMs: 500 },
    );
    const fillSeconds = round2((performance.now() - fillStarted) / 1000);
    await corral.applyPool({ ...poolSpec, minIdle });
    say(`pool full after ${fillSeconds}s; minIdle now ${minIdle}, maxWorkers ${maxWorkers}; settling 5s`);
    await new Promise((resolve) => setTimeout(resolve, 5_000));

    const runId = crypto.randomBytes(3).toString('hex');
    const temporalPid = temporalServer.process.child.pid;
    /** CPU groups: this process (client + corral worker), the dev server, Postgres, demo workers. */
    const classify = (pid: number, comm: string, ancestors: number[]) => {
      if (pid === process.pid) return 'bench_process';
      if (pid === temporalPid || (temporalPid !== undefined && ancestors.includes(temporalPid))) {
        return 'temporal_server';
      }
      if (comm === 'postgres') return 'postgres';
      return 'demo_workers';
    };
    const poolHandle = temporal.workflow.getHandle(poolWorkflowId(poolName));
    /** Events in every run of the pool workflow so far (it continues as new now and then). */
    const poolHistoryLength = async () => {
      let events = 0;
      for await (const run of temporal.workflow.list({ query: `WorkflowId = '${poolWorkflowId(poolName)}'` })) {
        events += (await temporal.workflow.getHandle(run.workflowId, run.runId).describe()).historyLength;
      }
      return events;
    };

    // --- the pool workflow: one `claimed` signal per claim lands in its history
    const describePoolRuns = async () => {
      const poolRuns = [];
      for await (const run of temporal.workflow.list({ query: `WorkflowId = '${poolWorkflowId(poolName)}'` })) {
        const history = await temporal.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
        const count = (type: temporalProto.api.enums.v1.EventType) =>
          (history.events ?? []).filter((e) => e.eventType === type).length;
        poolRuns.push({
          status: run.status.name,
          events: history.events?.length ?? 0,
          signals: count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED),
          workflow_task_timeouts: count(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT),
          workflow_task_failures: count(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED),
        });
      }
      return poolRuns;
    };

    // --- raw SQL first, on a quiet machine: corral_claim_idle on seeded idle rows of other pools
    const rawSql = [];
    for (const concurrency of concurrencies) {
      const rawPool = `raw-sql-c${concurrency}`;
      await workerDb.query(
        `INSERT INTO workers (id, pool, image, state, epoch)
         SELECT $1 || '-' || g, $1, 'bench:1', 'idle', 1 FROM generate_series(1, $2) g`,
        [rawPool, warmupClaims + claimsPerLevel],
      );
      const samples: number[] = [];
      let failed = 0;
      const claimOne = (record: boolean) => async (i: number, loop: number) => {
        const t0 = performance.now();
        const r = await store.claimIdle({
          pool: rawPool,
          tenant: `tenant-${loop}`,
          requestId: `${record ? 'm' : 'w'}-${i}`,
          origin: 'client',
        });
        const ms = performance.now() - t0;
        if (r.outcome !== 'claimed') failed++;
        else if (record) samples.push(ms);
      };
      await runLoops(concurrency, warmupClaims, claimOne(false));
      const cpu = cpuSnapshot();
      const wallMs = await runLoops(concurrency, claimsPerLevel, claimOne(true));
      rawSql.push({
        concurrency,
        claims: samples.length,
        failed,
        latency_ms: summarise(samples),
        claims_per_second: round2(samples.length / (wallMs / 1000)),
        cpu_cores: cpuSince(cpu, classify),
      });
      say(`raw SQL concurrency ${concurrency}: ${JSON.stringify(rawSql[rawSql.length - 1])}`);
    }

    // --- CorralClient: claim (timed) → release, C loops at a time
    const measureLevel = async (concurrency: number, tag: string) => {
      await waitFor(allIdle, { what: 'every worker idle again', timeoutMs: 60_000, intervalMs: 200 });
      const claimMs: number[] = [];
      const releaseMs: number[] = [];
      let warm = 0;
      let cold = 0;
      const errors: Record<string, number> = {};
      const noteError = (where: string, err: unknown) => {
        const code = (err as { code?: string }).code;
        const key = `${where}: ${err instanceof Error ? `${err.name}${code ? ` ${code}` : ''}: ${err.message}`.slice(0, 160) : String(err)}`;
        errors[key] = (errors[key] ?? 0) + 1;
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
        if (record) releaseMs.push(performance.now() - t1);
      };
      say(`${tag} concurrency ${concurrency}: ${warmupClaims} warm-up + ${claimsPerLevel} measured claims`);
      await runLoops(concurrency, warmupClaims, cycle('warmup', false));
      await waitFor(allIdle, { what: 'every worker idle again', timeoutMs: 60_000, intervalMs: 200 });
      const historyBefore = await poolHistoryLength();
      const cpu = cpuSnapshot();
      const wallMs = await runLoops(concurrency, claimsPerLevel, cycle('m', true));
      const cpuCores = cpuSince(cpu, classify);
      const latency = summarise(claimMs);
      const level = {
        concurrency,
        claims: claimMs.length,
        warm,
        cold,
        errors,
        latency_ms: latency,
        mean_ms: round2(claimMs.reduce((a, b) => a + b, 0) / Math.max(1, claimMs.length)),
        release_latency_ms: summarise(releaseMs),
        wall_seconds: round2(wallMs / 1000),
        claims_per_second: round2(claimMs.length / (wallMs / 1000)),
        cpu_cores: cpuCores,
        /** Machine CPU per claim+release cycle, all of this bench's processes together. */
        cpu_ms_per_cycle: round2(
          ((cpuCores.machine_busy - cpuCores.other_load) * wallMs) / Math.max(1, claimMs.length),
        ),
        pool_workflow_events_added: (await poolHistoryLength()) - historyBefore,
      };
      say(`  ${JSON.stringify(level)}`);
      return level;
    };
    const levels = [];
    for (const concurrency of concurrencies) levels.push(await measureLevel(concurrency, 'c'));

    // --- where a warm claim's time goes: CorralClient.claim's warm path, step by step
    const breakdown = [];
    for (const concurrency of [1, 50]) {
      await waitFor(allIdle, { what: 'every worker idle again', timeoutMs: 60_000, intervalMs: 200 });
      const begin: number[] = [];
      const update: number[] = [];
      const grant: number[] = [];
      let refused = 0;
      let failed = 0;
      say(`breakdown at concurrency ${concurrency}`);
      const task = (phase: string, record: boolean) => async (i: number, loop: number) => {
        const requestId = `${runId}-b${concurrency}-${phase}-${i}`;
        const tenant = `tenant-${loop}`;
        try {
          const t0 = performance.now();
          const reserved = await clientPools.beginClaim({
            pool: poolName,
            requestId,
            tenant,
            pendingMs: 35_000,
            reserveMs: 15_000,
          });
          const t1 = performance.now();
          if (reserved.outcome !== 'reserved') {
            refused++;
            return;
          }
          const lease = await temporal.workflow
            .getHandle(workerLifecycleWorkflowId(poolName, reserved.workerId))
            .executeUpdate(claimUpdate, { args: [{ tenant, requestId }], updateId: `claim/${requestId}` });
          const t2 = performance.now();
          await clientPools.grantClaim({
            pool: poolName,
            requestId,
            workerId: lease.workerId,
            epoch: lease.epoch,
            endpoint: lease.endpoint,
            path: 'warm',
          });
          const t3 = performance.now();
          if (record) {
            begin.push(t1 - t0);
            update.push(t2 - t1);
            grant.push(t3 - t2);
          }
          await corral.release(lease);
        } catch (err) {
          failed++;
          say(`  breakdown claim ${requestId} failed: ${String(err)}`);
        }
      };
      await runLoops(concurrency, warmupClaims, task('warmup', false));
      await waitFor(allIdle, { what: 'every worker idle again', timeoutMs: 60_000, intervalMs: 200 });
      const cpu = cpuSnapshot();
      await runLoops(concurrency, claimsPerLevel, task('m', true));
      breakdown.push({
        concurrency,
        refused,
        failed,
        begin_claim_sql_ms: summarise(begin),
        claim_update_ms: summarise(update),
        grant_claim_sql_ms: summarise(grant),
        cpu_cores: cpuSince(cpu, classify),
      });
      say(`  ${JSON.stringify(breakdown[breakdown.length - 1])}`);
    }

    // --- claim-only throughput: bursts of `burstSize` claims at once (no release in flight)
    const burstSize = 50;
    const burstRounds = 5;
    let burstClaims = 0;
    let burstMs = 0;
    const burstLatency: number[] = [];
    let burstCold = 0;
    let burstErrors = 0;
    say(`claim-only bursts: ${burstRounds} rounds of ${burstSize} claims issued at once`);
    for (let round = 0; round < burstRounds; round++) {
      await waitFor(allIdle, { what: 'every worker idle again', timeoutMs: 60_000, intervalMs: 200 });
      const t0 = performance.now();
      const outcomes = await Promise.allSettled(
        Array.from({ length: burstSize }, async (_, i) => {
          const lease = await corral.claim(poolName, {
            tenant: `tenant-${i}`,
            requestId: `${runId}-burst-${round}-${i}`,
            timeout: '30s',
          });
          burstLatency.push(performance.now() - t0);
          return lease;
        }),
      );
      burstMs += performance.now() - t0;
      const leases = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      burstErrors += outcomes.length - leases.length;
      burstClaims += leases.length;
      burstCold += leases.filter((l) => l.path === 'cold').length;
      await Promise.allSettled(leases.map((l) => corral.release(l)));
    }
    const burst = {
      claims_at_once: burstSize,
      rounds: burstRounds,
      claims: burstClaims,
      cold: burstCold,
      errors: burstErrors,
      time_to_grant_ms: summarise(burstLatency),
      claims_per_second: round2(burstClaims / (burstMs / 1000)),
    };
    say(`  ${JSON.stringify(burst)}`);

    // --- diagnostic: the same level with the pool workflow stopped (worker workflows' `claimed`
    // signals then fail fast instead of waking it), to show the pool's share of a claim's cost
    const poolRuns = await describePoolRuns();
    say('diagnostic: terminating the pool workflow, then concurrency 50 again');
    await poolHandle.terminate('bench diagnostic: claims without the pool workflow');
    const withoutPoolWorkflow = await measureLevel(50, 'nopool');

    const at50 = levels.find((l) => l.concurrency === 50);
    console.log(
      JSON.stringify({
        benchmark: 'claims',
        machine: {
          cores: os.cpus().length,
          cpu: os.cpus()[0]?.model,
          node: process.version,
          loadavg_at_start: loadAtStart,
        },
        setup: {
          servers:
            'Temporal dev server (in-memory) + embedded Postgres 18, loopback; corral worker and CorralClient in this process',
          runtime: 'process (bin/corral-demo-worker)',
          pool: { minIdle, maxWorkers, releasePolicy: 'recycle', healthProbes: 'off (healthPath: null)' },
          prefilled_idle: maxWorkers,
          refill_spawns_while_measuring: 'none (live = maxWorkers)',
          pg_connections: { corral_worker: dbConnections, client: dbConnections },
          fill_seconds: fillSeconds,
          claims_per_level: claimsPerLevel,
          warmup_claims_per_level: warmupClaims,
          claims_per_second_means: 'measured claims / wall time of the level (each loop: claim, then release)',
          cpu_cores_means:
            'cores used during the measurement by group; other_load = machine busy time of processes this bench did not start',
          order:
            'raw SQL, CorralClient levels, warm-path breakdown, claim-only bursts, diagnostic without the pool workflow',
        },
        levels,
        raw_sql: { function: 'corral_claim_idle', pg_connections: dbConnections, levels: rawSql },
        warm_path_breakdown: breakdown,
        claim_only_burst: burst,
        diagnostic_without_pool_workflow: withoutPoolWorkflow,
        pool_workflow_runs: poolRuns,
        goals: { p99_ms_at_50: 50, claims_per_second_at_50: 200 },
        met: {
          p99_ms_at_50: at50 !== undefined && at50.latency_ms.p99 <= 50,
          claims_per_second_at_50: at50 !== undefined && at50.claims_per_second >= 200,
          all_warm: levels.every((l) => l.cold === 0 && Object.keys(l.errors).length === 0),
        },
        total_seconds: round2((performance.now() - benchStarted) / 1000),
      }),
    );
  } finally {
    say('cleaning up');
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
