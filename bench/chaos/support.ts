// Shared plumbing of the chaos drills (bench/chaos/run.ts): each drill's own servers (Temporal dev
// server, optionally on a SQLite file; embedded Postgres), real `bin/corral worker` replicas as
// child processes, a registry sampler that remembers every row it saw, and the invariant checks
// every drill ends with. Nothing here edits shared harness code; it reuses bench/fleet-support.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { CorralClient } from '../../src/client/corral-client';
import { CorralError } from '../../src/client/errors';
import type { PoolSpecInput } from '../../src/config/pool-spec';
import { temporal as temporalProto } from '@temporalio/proto';
import pg from 'pg';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/embedded/postgres';
import { freePort } from '../../src/embedded/ports';
import { startTemporalDevServer, type TemporalDevServer } from '../../src/embedded/temporal-dev-server';
import { provisionTools, repoRoot } from '../../src/embedded/tools';
import { migrateRegistry } from '../../src/registry/migrate';
import { ProcessPodRuntime } from '../../src/runtime/process/process-runtime';
import { workerLifecycleWorkflowId } from '../../src/common';
import {
  Cleanups,
  bounded,
  countsOf,
  round2,
  startCorralWorker,
  workerProcessGroupsOf,
  type CorralWorkerChild,
  type Counts,
} from '../fleet-support';
import { summarise } from '../stats';

export { Cleanups, bounded, countsOf, round2, summarise, type Counts, type CorralWorkerChild };

export const say = (line: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);
/** Holds a fault (or paces a loop); never used to wait for an event. */
export const hold = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const since = (t0: number) => Math.round(performance.now() - t0);
export const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Polls `check` every `intervalMs` until it returns something other than undefined/false; null on timeout. */
export async function until<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<{ value: T; ms: number } | null> {
  const t0 = performance.now();
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return { value, ms: since(t0) };
    } catch {
      // a poll that fails (e.g. during an outage) is just another "not yet"
    }
    if (performance.now() - t0 > opts.timeoutMs) {
      say(`not reached within ${opts.timeoutMs} ms: ${opts.what}`);
      return null;
    }
    await hold(opts.intervalMs ?? 100);
  }
}

// --- servers ---------------------------------------------------------------------------------

export interface World {
  temporal: TemporalDevServer;
  /** The dev server's fixed ports, so a restart on the same SQLite file comes back where it was. */
  temporalPorts: { port: number; uiPort: number };
  temporalDbFile?: string;
  postgres: RunningPostgres;
  /** The bench's own registry connections: short timeouts, so an outage cannot hang a check. */
  db: pg.Pool;
  connection: Connection;
  client: Client;
  /** The process runtime's state directory (own to this drill, under /tmp). */
  stateDir: string;
  taskQueue: string;
  cleanups: Cleanups;
  replicas: CorralWorkerChild[];
}

export async function startWorld(opts: { name: string; temporalDbFile?: boolean }): Promise<World> {
  const cleanups = new Cleanups();
  let current: World | undefined;
  try {
    Object.assign(process.env, provisionTools(['temporal']));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `corral-chaos-${opts.name}-`));
    fs.chmodSync(dir, 0o755);
    cleanups.push('drill directory', async () => fs.rmSync(dir, { recursive: true, force: true }));
    const temporalPorts = { port: await freePort(), uiPort: await freePort() };
    const temporalDbFile = opts.temporalDbFile ? path.join(dir, 'temporal.db') : undefined;
    const [t, p] = await Promise.allSettled([
      startTemporalDevServer({ ...temporalPorts, dbFile: temporalDbFile }),
      startEmbeddedPostgres({ dataDir: path.join(dir, 'postgres', 'data') }),
    ]);
    if (p.status === 'fulfilled') cleanups.push('postgres', () => p.value.stop());
    // Stops whichever dev server is current (a drill may have restarted it).
    if (t.status === 'fulfilled') cleanups.push('temporal dev server', () => (current?.temporal ?? t.value).stop());
    if (t.status === 'rejected') throw t.reason;
    if (p.status === 'rejected') throw p.reason;
    const postgres = p.value;
    await bounded(migrateRegistry(postgres.connectionString), 60_000, 'registry migration');
    const db = new pg.Pool({
      connectionString: postgres.connectionString,
      max: 4,
      connectionTimeoutMillis: 3_000,
      query_timeout: 5_000,
    });
    db.on('error', () => undefined);
    cleanups.push('bench pg pool', () => db.end());
    const connection = await Connection.connect({ address: t.value.address, connectTimeout: 10_000 });
    cleanups.push('bench Temporal connection', () => connection.close());
    const stateDir = path.join(dir, 'workers');
    fs.mkdirSync(stateDir, { recursive: true });
    // Runs after the replicas stopped: whatever worker process is left is deleted.
    cleanups.push('leftover worker processes', () => deleteWorkerProcesses(stateDir));
    const world: World = {
      temporal: t.value,
      temporalPorts,
      temporalDbFile,
      postgres,
      db,
      connection,
      client: new Client({ connection, namespace: t.value.namespace }),
      stateDir,
      taskQueue: `chaos-${opts.name}-${process.pid}`,
      cleanups,
      replicas: [],
    };
    current = world;
    return world;
  } catch (err) {
    await cleanups.run();
    throw err;
  }
}

async function deleteWorkerProcesses(stateDir: string): Promise<void> {
  const runtime = new ProcessPodRuntime({ stateDir, workDir: repoRoot });
  try {
    const managed = await runtime.listManaged();
    await Promise.all(
      managed.map((w) =>
        runtime
          .delete({ workerId: w.workerId, pool: w.pool, spawnAttempt: w.spawnAttempt, name: w.name })
          .catch(() => undefined),
      ),
    );
  } finally {
    await runtime.close();
  }
}

/** A `bin/corral worker` replica on the world's task queue (process runtime unless `env` says otherwise). */
export async function startReplica(
  world: World,
  name: string,
  env: NodeJS.ProcessEnv = {},
): Promise<CorralWorkerChild> {
  const replica = await startCorralWorker(
    {
      temporal: world.temporal,
      postgres: world.postgres,
      db: world.db,
      connection: world.connection,
      client: world.client,
    },
    world.cleanups,
    {
      name: `chaos-${name}`,
      taskQueue: world.taskQueue,
      env: { CORRAL_RUNTIME: 'process', CORRAL_PROCESS_STATE_DIR: world.stateDir, ...env },
    },
  );
  world.replicas.push(replica);
  return replica;
}

/** The Temporal worker identity of a replica (the SDK's default: pid@hostname). */
export const identityOf = (replica: CorralWorkerChild) => `${replica.pid}@${os.hostname()}`;

// --- registry sampling -------------------------------------------------------------------------

export interface RowSeen {
  id: string;
  pool: string;
  state: string;
  epoch: number;
}

/**
 * Samples the pool's counts every `everyMs` (keeps changes only, as [seconds, counts]) and
 * remembers every worker row it has seen, so the end can check that none went missing.
 */
export function registrySampler(db: pg.Pool, pool: string, everyMs = 500) {
  const t0 = performance.now();
  const seen = new Map<string, RowSeen>();
  const timeline: [number, Counts | { sample_error: string }][] = [];
  let last = '';
  let stopped = false;
  const sample = async () => {
    try {
      const { rows } = await db.query<RowSeen>('SELECT id, pool, state, epoch FROM workers WHERE pool = $1', [pool]);
      const counts: Counts = {};
      for (const r of rows) {
        seen.set(r.id, r);
        counts[r.state] = (counts[r.state] ?? 0) + 1;
      }
      const key = JSON.stringify(counts);
      if (key !== last) timeline.push([round2((performance.now() - t0) / 1000), counts]);
      last = key;
    } catch (err) {
      const key = 'error';
      if (last !== key) timeline.push([round2((performance.now() - t0) / 1000), { sample_error: errText(err) }]);
      last = key;
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await sample();
      await hold(everyMs);
    }
  })();
  return {
    seen,
    timeline,
    async stop() {
      stopped = true;
      await loop;
      await sample();
    },
  };
}

// --- invariants --------------------------------------------------------------------------------

export interface Check {
  ok: boolean;
  detail: unknown;
}

export interface InvariantOptions {
  pool: string;
  /** Every row id seen during the drill (registrySampler.seen). */
  seen: Map<string, RowSeen>;
  /** Workflow ids the drill itself terminated: their Terminated status is expected. */
  terminatedByDrill?: Set<string>;
  /** Pods (kubernetes runtime): live pod names by worker id; default: process groups by worker id. */
  livePods?: (ids: string[]) => Promise<Map<string, string[]>>;
  /** Rows that went `lost` at or after this time (epoch ms) are reported as lost to the fault. */
  faultFrom?: number;
}

const liveStates = ['spawning', 'activating', 'idle', 'claimed', 'hot_idle', 'draining'];

/**
 * The four invariants of issue 16: no duplicate pod, no lost row, no claimed worker without a
 * holder, every workflow still running or properly ended. Each is pass/fail with its details.
 */
export async function checkInvariants(world: World, opts: InvariantOptions): Promise<Record<string, Check>> {
  const { rows } = await world.db.query<{
    id: string;
    state: string;
    epoch: string;
    failure_reason: string | null;
    state_since: Date;
  }>('SELECT id, state, epoch, failure_reason, state_since FROM workers WHERE pool = $1', [opts.pool]);
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const r of rows)
    if (!opts.seen.has(r.id))
      opts.seen.set(r.id, { id: r.id, pool: opts.pool, state: r.state, epoch: Number(r.epoch) });

  // 1. No duplicate pod: at most one live pod/process per worker id; none for an ended row (orphans, reported).
  const ids = [...opts.seen.keys()];
  const pods = opts.livePods
    ? await opts.livePods(ids)
    : new Map([...workerProcessGroupsOf(ids)].map(([id, groups]) => [id, groups.map(String)]));
  const duplicates = [...pods].filter(([, p]) => p.length > 1).map(([id, p]) => ({ id, pods: p }));
  const orphans = [...pods]
    .filter(([id, p]) => p.length > 0 && !liveStates.includes(byId.get(id)?.state ?? 'missing'))
    .map(([id, p]) => ({ id, state: byId.get(id)?.state ?? 'missing', pods: p }));
  const liveWithoutPod = rows
    .filter((r) => ['idle', 'claimed', 'hot_idle'].includes(r.state) && (pods.get(r.id)?.length ?? 0) === 0)
    .map((r) => ({ id: r.id, state: r.state }));

  // 2. No lost row: every row seen is still there, live or ended with a reason.
  const missing = ids.filter((id) => !byId.has(id));
  const endedWithoutReason = rows.filter((r) => r.state === 'lost' && !r.failure_reason).map((r) => r.id);
  const lostRows = rows.filter((r) => r.state === 'lost').map((r) => ({ id: r.id, reason: r.failure_reason }));
  const lostToFault =
    opts.faultFrom === undefined
      ? []
      : rows
          .filter((r) => r.state === 'lost' && r.state_since.getTime() >= opts.faultFrom!)
          .map((r) => ({ id: r.id, reason: r.failure_reason, at: r.state_since.toISOString() }));

  // 3. No claimed worker without a holder: a granted claim at the row's epoch.
  const { rows: holderless } = await world.db.query<{ id: string; epoch: string }>(
    `SELECT w.id, w.epoch FROM workers w WHERE w.pool = $1 AND w.state = 'claimed' AND NOT EXISTS (
       SELECT 1 FROM claims c WHERE c.worker_id = w.id AND c.status = 'granted' AND c.epoch = w.epoch)`,
    [opts.pool],
  );
  const { rows: stuckPending } = await world.db.query<{ request_id: string }>(
    "SELECT request_id FROM claims WHERE pool = $1 AND status = 'pending' AND pending_until < now()",
    [opts.pool],
  );

  // 4. Every workflow running or properly ended; every live row has a running workflow.
  const statuses: Record<string, Record<string, number>> = {};
  const bad: { workflowId: string; type: string; status: string }[] = [];
  const running = new Set<string>();
  const listStarted = performance.now();
  for await (const wf of world.client.workflow.list({ query: '' })) {
    const status = wf.status.name;
    (statuses[wf.type] ??= {})[status] = (statuses[wf.type]?.[status] ?? 0) + 1;
    if (status === 'RUNNING') running.add(wf.workflowId);
    const expected = status === 'TERMINATED' && opts.terminatedByDrill?.has(wf.workflowId);
    if (['FAILED', 'TERMINATED', 'TIMED_OUT'].includes(status) && !expected) {
      bad.push({ workflowId: wf.workflowId, type: wf.type, status });
    }
    if (performance.now() - listStarted > 60_000) throw new Error('listing workflows took over 60 s');
  }
  const liveRowsWithoutWorkflow = rows
    .filter((r) => liveStates.includes(r.state) && !running.has(workerLifecycleWorkflowId(opts.pool, r.id)))
    .map((r) => ({ id: r.id, state: r.state }));

  return {
    no_duplicate_pod: { ok: duplicates.length === 0, detail: { duplicates, orphans_of_ended_rows: orphans } },
    no_lost_row: {
      ok: missing.length === 0 && endedWithoutReason.length === 0 && liveWithoutPod.length === 0,
      detail: {
        rows_seen: ids.length,
        missing,
        lost_without_reason: endedWithoutReason,
        serving_rows_without_pod: liveWithoutPod,
        lost_rows: lostRows,
        ...(opts.faultFrom === undefined ? {} : { lost_since_fault: lostToFault }),
        counts: await countsOf(world.db, opts.pool),
      },
    },
    no_claimed_without_holder: {
      ok: holderless.length === 0,
      detail: { holderless: holderless.map((r) => r.id), pending_claims_past_their_bound: stuckPending.length },
    },
    workflows_running_or_properly_ended: {
      ok: bad.length === 0 && liveRowsWithoutWorkflow.length === 0,
      detail: {
        by_type_and_status: statuses,
        failed_or_terminated: bad,
        live_rows_without_workflow: liveRowsWithoutWorkflow,
      },
    },
  };
}

export const allPass = (checks: Record<string, Check>) => Object.values(checks).every((c) => c.ok);

// --- Temporal histories ------------------------------------------------------------------------

const EventType = temporalProto.api.enums.v1.EventType;
const PendingActivityState = temporalProto.api.enums.v1.PendingActivityState;

export const tsMs = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  t ? Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;

/** Open workflows' activities started by `identity` (what a kill of that replica strands). */
export async function activitiesHeldBy(world: World, identity: string) {
  const held: { workflowId: string; activityId: string; type: string; attempt: number }[] = [];
  const open: string[] = [];
  for await (const wf of world.client.workflow.list({ query: "ExecutionStatus = 'Running'" })) open.push(wf.workflowId);
  await Promise.all(
    open.map(async (workflowId) => {
      const { raw } = await bounded(world.client.workflow.getHandle(workflowId).describe(), 10_000, 'describe');
      for (const a of raw.pendingActivities ?? []) {
        if (a.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED && a.lastWorkerIdentity === identity) {
          held.push({
            workflowId,
            activityId: a.activityId ?? '',
            type: a.activityType?.name ?? '?',
            attempt: a.attempt ?? 0,
          });
        }
      }
    }),
  );
  return held;
}

/** Whether an activity that `identity` held has continued: completed, or started by someone else. */
export async function activityContinued(
  world: World,
  held: { workflowId: string; activityId: string },
  identity: string,
): Promise<boolean> {
  const { raw, status } = await bounded(
    world.client.workflow.getHandle(held.workflowId).describe(),
    10_000,
    'describe',
  );
  if (status.name !== 'RUNNING') return true;
  const a = (raw.pendingActivities ?? []).find((p) => p.activityId === held.activityId);
  if (!a) return true;
  return a.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED && a.lastWorkerIdentity !== identity;
}

/**
 * Workflow tasks around a kill, from every workflow's history: for each task scheduled between
 * `fromMs` and `toMs` (epoch ms), the time from max(scheduled, kill) until the next completed
 * workflow task of that workflow. The slowest is how long the dead replica's sticky queues and
 * in-flight tasks (local activities included) held workflows up.
 */
export async function workflowTaskDelays(world: World, killMs: number, fromMs: number, toMs: number) {
  const ids: string[] = [];
  for await (const wf of world.client.workflow.list({ query: '' })) ids.push(wf.workflowId);
  const delays: { workflowId: string; ms: number; attempts: number }[] = [];
  await Promise.all(
    ids.map(async (workflowId) => {
      const history = await bounded(world.client.workflow.getHandle(workflowId).fetchHistory(), 20_000, 'history');
      const events = history.events ?? [];
      for (let i = 0; i < events.length; i++) {
        const e = events[i];
        if (e.eventType !== EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) continue;
        const at = tsMs(e.eventTime);
        if (at < fromMs || at > toMs) continue;
        let attempts = 0;
        let done: number | undefined;
        for (let j = i + 1; j < events.length; j++) {
          const t = events[j].eventType;
          if (t === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT || t === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) {
            attempts++;
          }
          if (t === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
            done = tsMs(events[j].eventTime);
            break;
          }
        }
        // A task still not completed counts until now.
        delays.push({ workflowId, ms: Math.round((done ?? Date.now()) - Math.max(at, killMs)), attempts });
      }
    }),
  );
  delays.sort((a, b) => b.ms - a.ms);
  return { tasks: delays.length, max_ms: delays[0]?.ms ?? 0, slowest: delays.slice(0, 3) };
}

export function machine() {
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memory_gib: round2(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map(round2),
  };
}

// --- pools and claims --------------------------------------------------------------------------

/** A process-runtime pool of the small protocol worker (a Go binary, a few MB per process). */
export function processPool(name: string, image: string, over: Partial<PoolSpecInput> = {}): PoolSpecInput {
  return {
    name,
    runtime: 'process',
    image,
    port: 8080,
    minIdle: 6,
    maxWorkers: 12,
    refillPerMinute: 600,
    releasePolicy: 'recycle',
    resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
    deadlines: { spawn: '2m', activation: '30s', maxLifetime: '24h', drain: '1m' },
    ...over,
  };
}

export interface ClaimRecord {
  startMs: number;
  endMs: number;
  ok: boolean;
  error?: string;
}

/**
 * `concurrency` loops claim a worker, hold it `holdMs`, release it, until stopped; every claim's
 * start and end (performance.now ms) is recorded.
 */
export function claimLoop(
  corral: () => CorralClient,
  pool: string,
  opts: { concurrency: number; holdMs: number; timeout: string; tag: string },
) {
  const records: ClaimRecord[] = [];
  let stopped = false;
  let n = 0;
  const loops = Array.from({ length: opts.concurrency }, async (_, loop) => {
    while (!stopped) {
      const startMs = performance.now();
      try {
        const lease = await corral().claim(pool, {
          tenant: `tenant-${loop}`,
          requestId: `${opts.tag}-${loop}-${n++}`,
          timeout: opts.timeout,
        });
        records.push({ startMs, endMs: performance.now(), ok: true });
        await hold(opts.holdMs);
        await corral()
          .release(lease)
          .catch(() => undefined);
      } catch (err) {
        const code = err instanceof CorralError ? err.code : errText(err);
        records.push({ startMs, endMs: performance.now(), ok: false, error: code.slice(0, 120) });
        await hold(200);
      }
    }
  });
  return {
    records,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

export function claimSummary(records: ClaimRecord[]) {
  const errors: Record<string, number> = {};
  for (const r of records) if (!r.ok) errors[r.error ?? '?'] = (errors[r.error ?? '?'] ?? 0) + 1;
  return {
    claims: records.length,
    ok: records.filter((r) => r.ok).length,
    latency_ms: summarise(records.filter((r) => r.ok).map((r) => r.endMs - r.startMs)),
    errors,
  };
}

/** Live process groups by worker id (process runtime), as checkInvariants reads them. */
export const processGroups = (ids: Iterable<string>) => workerProcessGroupsOf(ids);

/** Every drill ends with its pool drained (through `corral`, a live replica): nothing is left running. */
export async function drainAtEnd(corral: CorralClient, pool: string): Promise<void> {
  await corral.drainPool(pool).catch(() => undefined);
  await until(async () => (await corral.getPool(pool))?.status === 'drained', {
    timeoutMs: 120_000,
    what: 'drain at the end',
  });
}

/**
 * A drill's body: a failure is recorded in its result (a finding, printed, never a crash of the
 * whole run) and the world is always cleaned up.
 */
export async function runDrill(
  name: string,
  world: World,
  result: Record<string, unknown>,
  body: () => Promise<void>,
): Promise<Record<string, unknown>> {
  try {
    await body();
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    say(`${name} failed: ${errText(err)}`);
  } finally {
    await world.cleanups.run();
  }
  return result;
}
