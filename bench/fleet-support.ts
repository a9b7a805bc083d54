// Helpers of bench/fleet.ts: the stack it starts (Temporal dev server, embedded Postgres, the real
// `bin/corral worker` CLI as a child), what it reads of the machine (/proc: process groups, RSS,
// worker processes by identity), the registry (counts over time, rows of chosen workers), Temporal
// (history lengths of every run on the corral task queue) and a small claim+release loop.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoreV1Api, makeInformer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { temporal as temporalProto } from '@temporalio/proto';
import type pg from 'pg';
import { CorralClient } from '../src/client/corral-client';
import { CorralError } from '../src/client/errors';
import { workerCapacityEnv } from '../src/config/worker-capacity';
import { failOnExit, nextMessage, startProcess, type ManagedProcess } from '../src/embedded/child-process';
import { startEmbeddedPostgres, type RunningPostgres } from '../src/embedded/postgres';
import { startTemporalDevServer, type TemporalDevServer } from '../src/embedded/temporal-dev-server';
import { provisionTools, repoRoot } from '../src/embedded/tools';
import { createRegistryPool } from '../src/registry/database';
import { timeoutOptions } from '../src/runtime/kubernetes/api-call';
import { corralLabels } from '../src/runtime/kubernetes/pod-manifest';
import { migrateRegistry } from '../src/registry/migrate';
import { summarise } from './stats';

export const say = (line: string) => console.error(`[bench:fleet ${new Date().toISOString().slice(11, 19)}] ${line}`);
export const round2 = (x: number) => Math.round(x * 100) / 100;
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Rejects after `ms` without keeping the process alive. */
export const deadline = (ms: number, what: string) =>
  new Promise<never>((_, reject) => setTimeout(() => reject(new Error(what)), ms).unref());
/** `promise`, or an error naming `what` after `ms`. */
export const bounded = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([promise, deadline(ms, `${what}: no answer within ${ms} ms`)]);

/** Runs `fn` over `items`, `width` at a time. */
export async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

// --- cleanup stack --------------------------------------------------------------------------

export class Cleanups {
  private readonly steps: { what: string; run: () => Promise<unknown> }[] = [];
  push(what: string, run: () => Promise<unknown>): void {
    this.steps.push({ what, run });
  }
  /** Runs every step, last pushed first, each bounded; a failed step is logged and skipped. */
  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await bounded(step.run(), 120_000, `cleanup: ${step.what}`);
      } catch (err) {
        say(`cleanup step "${step.what}" failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

// --- servers --------------------------------------------------------------------------------

export interface Servers {
  temporal: TemporalDevServer;
  postgres: RunningPostgres;
  db: pg.Pool;
  connection: Connection;
  client: Client;
}

/** Temporal dev server (in memory) + embedded Postgres (migrated) + this process's pg pool and Temporal client. */
export async function startServers(cleanups: Cleanups): Promise<Servers> {
  Object.assign(process.env, provisionTools(['temporal']));
  const [temporalStarted, postgresStarted] = await Promise.allSettled([
    startTemporalDevServer(),
    startEmbeddedPostgres(),
  ]);
  if (temporalStarted.status === 'fulfilled') cleanups.push('temporal dev server', () => temporalStarted.value.stop());
  if (postgresStarted.status === 'fulfilled') cleanups.push('postgres', () => postgresStarted.value.stop());
  if (temporalStarted.status === 'rejected') throw temporalStarted.reason;
  if (postgresStarted.status === 'rejected') throw postgresStarted.reason;
  const temporal = temporalStarted.value;
  const postgres = postgresStarted.value;
  await bounded(migrateRegistry(postgres.connectionString), 60_000, 'registry migration');
  const db = createRegistryPool({ connectionString: postgres.connectionString, maxConnections: 4 });
  cleanups.push('bench pg pool', () => db.end());
  const connection = await Connection.connect({ address: temporal.address, connectTimeout: 10_000 });
  cleanups.push('bench Temporal connection', () => connection.close());
  const client = new Client({ connection, namespace: temporal.namespace });
  return { temporal, postgres, db, connection, client };
}

// --- the corral worker child ----------------------------------------------------------------

export interface CorralWorkerChild {
  proc: ManagedProcess;
  pid: number;
  apiUrl: string;
  metricsUrl: string;
  taskQueue: string;
  corral: CorralClient;
}

/** The worker-protocol master key `corral worker` requires, one per bench process. */
const benchProtocolKey = crypto.randomBytes(32).toString('hex');

/**
 * `bin/corral worker` at default settings (no slot variables), as test/harness/corral-worker-process.ts
 * starts it; `env` picks the runtime. Stopped with SIGTERM (then SIGKILL) at cleanup.
 */
export async function startCorralWorker(
  servers: Servers,
  cleanups: Cleanups,
  opts: { name: string; taskQueue: string; env: NodeJS.ProcessEnv },
): Promise<CorralWorkerChild> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.values(workerCapacityEnv)) delete env[name];
  const proc = startProcess(opts.name, path.join(repoRoot, 'bin', 'corral'), ['worker'], {
    env: {
      ...env,
      TEMPORAL_ADDRESS: servers.temporal.address,
      TEMPORAL_NAMESPACE: servers.temporal.namespace,
      DATABASE_URL: servers.postgres.connectionString,
      CORRAL_TASK_QUEUE: opts.taskQueue,
      CORRAL_METRICS_PORT: '0',
      CORRAL_API_PORT: '0',
      CORRAL_API_HOST: '127.0.0.1',
      CORRAL_API_TOKENS_FILE: '',
      // One key for every replica of this bench run (replicas of one fleet share it, decision 0020).
      CORRAL_WORKER_PROTOCOL_KEY: benchProtocolKey,
      ...opts.env,
    },
    ipc: true,
  });
  cleanups.push('corral worker', () => proc.stop(30_000));
  const ready = await Promise.race([
    failOnExit(proc),
    nextMessage(proc, 'ready'),
    deadline(180_000, `corral worker not ready within 180 s; see ${proc.logFile}`),
  ]);
  const pid = proc.child.pid;
  if (pid === undefined) throw new Error('corral worker has no pid');
  const apiUrl = String(ready.apiUrl);
  return {
    proc,
    pid,
    apiUrl,
    metricsUrl: String(ready.metricsUrl),
    taskQueue: opts.taskQueue,
    corral: new CorralClient({ url: apiUrl, requestTimeoutMs: 30_000 }),
  };
}

/**
 * What the corral worker's log says: its size, and the lines that look like trouble grouped by kind
 * (ANSI colours, timestamps, ids and numbers blanked), with one example of each.
 */
export function logSummary(file: string) {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { file, lines: 0, trouble_lines: 0, trouble_kinds: {} };
  }
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
  const lines = plain.split('\n').filter(Boolean);
  const kinds: Record<string, { count: number; example: string }> = {};
  let trouble = 0;
  for (const line of lines) {
    // The workflow bundle's module list names files such as failure-reasons.ts: not trouble.
    if (/\[built\]|\[code generated\]|^\s+\.\/|modules by path/.test(line)) continue;
    if (!/\b(error|fail\w*|warn\w*|timed out|timeout|exception|unhandled|unhealthy)\b/i.test(line)) continue;
    trouble++;
    const kind = line
      .replace(/^\s*\d{4}-\d\d-\d\dT[\d:.]+Z?\s*/, '')
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:\d+)*/gi, '<uuid>')
      .replace(/\bw[0-9a-f]{12}\b/g, '<worker>')
      .replace(/\d+(\.\d+)?/g, '#')
      .slice(0, 140);
    const k = (kinds[kind] ??= { count: 0, example: line.length > 400 ? `${line.slice(0, 400)}…` : line });
    k.count++;
  }
  return { file, lines: lines.length, trouble_lines: trouble, trouble_kinds: kinds };
}

// --- /proc ----------------------------------------------------------------------------------

function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The process group of a live process (undefined once it exited or is a zombie). */
export function pgrpOf(pid: number | string): number | undefined {
  const fields = statFields(pid);
  if (!fields || fields[0] === 'Z') return undefined;
  return Number(fields[2]);
}

function rssKiB(pid: number | string): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function pids(): string[] {
  return fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name));
}

/**
 * Resident memory of a process and its descendants in its own process group, in MiB: for the corral
 * worker, itself and tsx's esbuild, not the worker processes it spawned (each leads its own group).
 */
export function treeRssMiB(root: number): number {
  const group = pgrpOf(root);
  if (group === undefined) return 0;
  const parent = new Map<number, number>();
  for (const pid of pids()) {
    const fields = statFields(pid);
    if (fields) parent.set(Number(pid), Number(fields[1]));
  }
  let kib = 0;
  for (const pid of parent.keys()) {
    let at = pid;
    while (at > 1 && at !== root) at = parent.get(at) ?? 0;
    if (at === root && pgrpOf(pid) === group) kib += rssKiB(pid);
  }
  return round2(kib / 1024);
}

/** Live process groups of the worker processes with these CORRAL_WORKER_IDs: one /proc scan. */
export function workerProcessGroupsOf(ids: Iterable<string>): Map<string, number[]> {
  const wanted = new Set(ids);
  const out = new Map<string, number[]>();
  for (const pid of pids()) {
    let environ: string;
    try {
      environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      continue;
    }
    const entry = environ.split('\0').find((kv) => kv.startsWith('CORRAL_WORKER_ID='));
    const id = entry?.slice('CORRAL_WORKER_ID='.length);
    if (!id || !wanted.has(id)) continue;
    const group = pgrpOf(pid);
    if (group === undefined) continue;
    const groups = out.get(id) ?? [];
    if (!groups.includes(group)) groups.push(group);
    out.set(id, groups);
  }
  return out;
}

/** Samples a process tree's RSS (treeRssMiB) every `everyMs` until stopped. */
export function rssSampler(root: number, everyMs: number) {
  const samples: number[] = [];
  const take = () => samples.push(treeRssMiB(root));
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return {
        samples: samples.length,
        mean: round2(samples.reduce((a, b) => a + b, 0) / samples.length),
        max: Math.max(...samples),
        last: samples[samples.length - 1],
      };
    },
  };
}

export function machine(loadAtStart: number[]) {
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memory_gib: round2(os.totalmem() / 2 ** 30),
    node: process.version,
    loadavg_at_start: loadAtStart,
    loadavg_at_end: os.loadavg().map(round2),
  };
}

// --- the registry ---------------------------------------------------------------------------

export type Counts = Record<string, number>;

/** Every row of a pool by state (terminal ones too). */
export async function countsOf(db: pg.Pool, pool: string): Promise<Counts> {
  const { rows } = await db.query<{ state: string; n: string }>(
    'SELECT state, count(*) AS n FROM workers WHERE pool = $1 GROUP BY state ORDER BY state',
    [pool],
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/** Samples a pool's counts every `everyMs` and keeps only changes: `[seconds since start, counts]`. */
export function countsTimeline(db: pg.Pool, pool: string, everyMs = 1_000) {
  const started = performance.now();
  const entries: [number, Counts][] = [];
  let last = '';
  let latest: Counts = {};
  let stopped = false;
  let sampling: Promise<void> = Promise.resolve();
  const sample = async () => {
    try {
      latest = await countsOf(db, pool);
      const key = JSON.stringify(latest);
      if (key !== last) entries.push([round2((performance.now() - started) / 1000), latest]);
      last = key;
    } catch (err) {
      entries.push([round2((performance.now() - started) / 1000), { sample_error: 1 }]);
      say(`counts sample failed: ${String(err)}`);
    }
  };
  const loop = async () => {
    while (!stopped) {
      await sample();
      await sleep(everyMs);
    }
  };
  sampling = loop();
  return {
    latest: () => latest,
    async stop() {
      stopped = true;
      await sampling;
      await sample();
      return entries;
    },
  };
}

export interface WorkerRow {
  id: string;
  state: string;
  failure_reason: string | null;
  state_since: Date;
  pod_name: string | null;
  epoch: number;
}

export async function rowsOf(db: pg.Pool, ids: string[]): Promise<WorkerRow[]> {
  const { rows } = await db.query<WorkerRow>(
    'SELECT id, state, failure_reason, state_since, pod_name, epoch FROM workers WHERE id = ANY($1::text[])',
    [ids],
  );
  return rows;
}

/** Waits until a pool's live counts match `want` exactly (states not named: zero spawning/activating). */
export async function waitForCounts(
  db: pg.Pool,
  pool: string,
  want: Counts,
  timeoutMs: number,
  what: string,
): Promise<{ ok: boolean; seconds: number; last: Counts }> {
  const started = performance.now();
  let last: Counts = {};
  while (performance.now() - started < timeoutMs) {
    last = await countsOf(db, pool);
    if (Object.entries(want).every(([state, n]) => (last[state] ?? 0) === n)) {
      return { ok: true, seconds: round2((performance.now() - started) / 1000), last };
    }
    await sleep(100);
  }
  say(`${what}: not reached within ${timeoutMs / 1000} s; last ${JSON.stringify(last)}`);
  return { ok: false, seconds: round2((performance.now() - started) / 1000), last };
}

/**
 * After killing workers at `killedAt` (epoch ms by id): polls their rows every `pollMs` until each
 * is terminal; per worker, the registry's own `state_since` minus the kill time (and when this
 * poll first saw it).
 */
export async function watchDeaths(
  db: pg.Pool,
  killedAt: Map<string, number>,
  opts: { pollMs: number; timeoutMs: number; killing: Promise<unknown> },
) {
  let killing = true;
  void opts.killing.finally(() => (killing = false));
  const seen = new Map<string, { row: WorkerRow; observedAt: number }>();
  const started = Date.now();
  while ((killing || seen.size < killedAt.size) && Date.now() - started < opts.timeoutMs) {
    const waiting = [...killedAt.keys()].filter((id) => !seen.has(id));
    const rows = waiting.length > 0 ? await rowsOf(db, waiting) : [];
    const now = Date.now();
    for (const row of rows) {
      if (row.state === 'lost' || row.state === 'retired') seen.set(row.id, { row, observedAt: now });
    }
    await sleep(opts.pollMs);
  }
  const registryMs: number[] = [];
  const observedMs: number[] = [];
  const reasons: Record<string, number> = {};
  const perWorker: { id: string; state: string; reason: string | null; epoch: number; ms: number }[] = [];
  const firstEpochMs: number[] = [];
  const laterEpochMs: number[] = [];
  for (const [id, { row, observedAt }] of seen) {
    const killed = killedAt.get(id)!;
    const ms = row.state_since.getTime() - killed;
    registryMs.push(ms);
    observedMs.push(observedAt - killed);
    const key = `${row.state}:${row.failure_reason ?? 'none'}`;
    reasons[key] = (reasons[key] ?? 0) + 1;
    perWorker.push({ id, state: row.state, reason: row.failure_reason, epoch: Number(row.epoch), ms: round2(ms) });
    (Number(row.epoch) === 1 ? firstEpochMs : laterEpochMs).push(ms);
  }
  const missing = [...killedAt.keys()].filter((id) => !seen.has(id));
  const stillLive = missing.length > 0 ? await rowsOf(db, missing) : [];
  return {
    registry_state_since_minus_kill_ms: summarise(registryMs),
    observed_by_poll_minus_kill_ms: summarise(observedMs),
    reasons,
    /** Epoch 1 at death: never claimed (the workflow knows its epoch); above 1: claimed and released before. */
    by_epoch_at_death: { epoch_1: summarise(firstEpochMs), epoch_above_1: summarise(laterEpochMs) },
    not_terminal_within_timeout: stillLive.map((r) => ({ id: r.id, state: r.state, reason: r.failure_reason })),
    per_worker: perWorker.sort((a, b) => b.ms - a.ms),
  };
}

// --- pods -----------------------------------------------------------------------------------

/** How a pod looks dead to a watcher (what corral's informer reads), or undefined while it runs. */
function deathOf(pod: V1Pod): string | undefined {
  const status = pod.status;
  const container = status?.containerStatuses?.[0];
  if (status?.phase === 'Failed') return `Failed/${status.reason ?? container?.state?.terminated?.reason ?? '?'}`;
  if (container?.state?.terminated) return `terminated/${container.state.terminated.reason ?? '?'}`;
  if (container?.state?.waiting?.reason === 'CrashLoopBackOff') return 'CrashLoopBackOff';
  if (pod.metadata?.deletionTimestamp) return 'deleting';
  return undefined;
}

/**
 * The bench's own watch of the namespace's corral pods: for each pod name asked about, when this
 * watch first saw it dead (a failure status KWOK wrote, a deletion), to split a kill's latency into
 * the kubelet's part (KWOK) and corral's part (informer → workflow → registry).
 */
export async function podDeathWatch(kubeConfig: KubeConfig, namespace: string) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const watching = new Set<string>();
  const seen = new Map<string, { at: number; how: string }>();
  const look = (pod: V1Pod, deleted: boolean) => {
    const name = pod.metadata?.name ?? '';
    if (!watching.has(name) || seen.has(name)) return;
    const how = deleted ? 'deleted' : deathOf(pod);
    if (how) seen.set(name, { at: Date.now(), how });
  };
  const labelSelector = corralLabels.workerId;
  const informer = makeInformer(
    kubeConfig,
    `/api/v1/namespaces/${namespace}/pods`,
    () => core.listNamespacedPod({ namespace, labelSelector }, timeoutOptions(30_000)),
    labelSelector,
  );
  informer.on('update', (pod) => look(pod, false));
  informer.on('delete', (pod) => look(pod, true));
  informer.on('error', (err: unknown) => say(`bench pod watch: ${String(err)}`));
  await bounded(informer.start(), 60_000, 'bench pod watch start');
  return {
    watch: (name: string) => watching.add(name),
    seen,
    stop: () => informer.stop(),
  };
}

// --- Temporal histories ---------------------------------------------------------------------

const EventType = temporalProto.api.enums.v1.EventType;

export interface HistorySnapshot {
  at: number;
  runs: Map<string, { workflowId: string; type: string; length: number; open: boolean }>;
}

const typeGroup = (type: string) =>
  type === 'workerLifecycleWorkflow'
    ? 'worker_workflows'
    : type === 'poolWorkflow'
      ? 'pool_workflow'
      : type === 'janitorWorkflow'
        ? 'janitor'
        : type;

/** Every run on `taskQueue` (open and closed) with its history length (describe for open runs). */
export async function historySnapshot(client: Client, taskQueue: string): Promise<HistorySnapshot> {
  const listed: { workflowId: string; runId: string; type: string; open: boolean; length: number }[] = [];
  const started = Date.now();
  for await (const run of client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) {
    listed.push({
      workflowId: run.workflowId,
      runId: run.runId,
      type: run.type,
      open: run.status.name === 'RUNNING',
      length: run.historyLength,
    });
    if (Date.now() - started > 120_000) throw new Error('listing workflows took over 120 s');
  }
  const runs: HistorySnapshot['runs'] = new Map();
  await inBatches(listed, 20, async (run) => {
    let length = run.length;
    if (run.open) {
      const described = await bounded(
        client.workflow.getHandle(run.workflowId, run.runId).describe(),
        30_000,
        `describe ${run.workflowId}`,
      );
      length = described.historyLength;
    }
    runs.set(run.runId, { workflowId: run.workflowId, type: run.type, length, open: run.open });
  });
  return { at: Date.now(), runs };
}

/**
 * Events added between two snapshots, by group (runs that started meanwhile count whole), and for
 * up to `sampleRuns` worker runs that grew, what kinds of events they gained.
 */
export async function historyGrowth(client: Client, before: HistorySnapshot, after: HistorySnapshot, sampleRuns = 10) {
  const groups: Record<string, { runs: number; runs_grown: number; events: number }> = {};
  const grown: { workflowId: string; runId: string; from: number }[] = [];
  for (const [runId, run] of after.runs) {
    const group = typeGroup(run.type);
    const g = (groups[group] ??= { runs: 0, runs_grown: 0, events: 0 });
    const from = before.runs.get(runId)?.length ?? 0;
    const added = Math.max(0, run.length - from);
    if (run.open || added > 0) g.runs++;
    if (added > 0) {
      g.runs_grown++;
      g.events += added;
      if (group === 'worker_workflows') grown.push({ workflowId: run.workflowId, runId, from });
    }
  }
  const kinds: Record<string, number> = {};
  for (const run of grown.slice(0, sampleRuns)) {
    const history = await bounded(
      client.workflow.getHandle(run.workflowId, run.runId).fetchHistory(),
      30_000,
      `history of ${run.workflowId}`,
    );
    for (const e of history.events ?? []) {
      if (Number(e.eventId) <= run.from) continue;
      const name = (EventType[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '').toLowerCase();
      kinds[name] = (kinds[name] ?? 0) + 1;
    }
  }
  return { groups, sampled_worker_runs: Math.min(sampleRuns, grown.length), sampled_event_kinds: kinds };
}

/** A protobuf Timestamp in epoch ms. */
function tsMs(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return t ? Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
}

/**
 * Where a death's time went inside corral, from each killed worker's workflow history (event
 * times are the Temporal server's, ms): kill → its `healthVerdict` signal recorded (the runtime's
 * watcher noticed and signalled) → the next workflow task started (task queue wait) → the
 * registry's `state_since` (the workflow task, the registry activity, the CAS).
 */
export async function verdictTrail(
  client: Client,
  workflowIdOf: (workerId: string) => string,
  killedAt: Map<string, number>,
  rows: Map<string, WorkerRow>,
) {
  const signalMs: number[] = [];
  const taskWaitMs: number[] = [];
  const afterTaskMs: number[] = [];
  const missing: string[] = [];
  const slowestId = [...killedAt].sort(
    ([a, ka], [b, kb]) =>
      (rows.get(b)?.state_since.getTime() ?? 0) - kb - ((rows.get(a)?.state_since.getTime() ?? 0) - ka),
  )[0]?.[0];
  let slowest: { worker: string; epoch_at_death: number | undefined; events: (string | number)[][] } | undefined;
  await inBatches([...killedAt], 10, async ([id, killed]) => {
    try {
      const history = await bounded(
        client.workflow.getHandle(workflowIdOf(id)).fetchHistory(),
        30_000,
        `history of ${id}`,
      );
      const events = history.events ?? [];
      if (id === slowestId) {
        // The slowest death's history from just before its kill: [ms since the kill, event, detail].
        slowest = {
          worker: id,
          epoch_at_death: Number(rows.get(id)?.epoch),
          events: events
            .filter((e) => tsMs(e.eventTime) >= killed - 100)
            .map((e) => [
              round2(tsMs(e.eventTime) - killed),
              (EventType[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '').toLowerCase(),
              e.workflowExecutionSignaledEventAttributes?.signalName ??
                e.activityTaskScheduledEventAttributes?.activityType?.name ??
                e.markerRecordedEventAttributes?.markerName ??
                e.timerStartedEventAttributes?.timerId ??
                e.workflowTaskFailedEventAttributes?.failure?.message ??
                '',
            ]),
        };
        const row = rows.get(id);
        if (row) slowest.events.push([round2(row.state_since.getTime() - killed), 'registry_state_since', row.state]);
      }
      const signal = events.find(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED &&
          e.workflowExecutionSignaledEventAttributes?.signalName === 'healthVerdict' &&
          tsMs(e.eventTime) >= killed - 1_000,
      );
      if (!signal) {
        missing.push(id);
        return;
      }
      const signalAt = tsMs(signal.eventTime);
      const task = events.find(
        (e) => Number(e.eventId) > Number(signal.eventId) && e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
      );
      signalMs.push(signalAt - killed);
      if (task) {
        const taskAt = tsMs(task.eventTime);
        taskWaitMs.push(taskAt - signalAt);
        const row = rows.get(id);
        if (row) afterTaskMs.push(row.state_since.getTime() - taskAt);
      }
    } catch (err) {
      missing.push(`${id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  return {
    means:
      'from each killed worker’s workflow history: kill → healthVerdict signal recorded → next workflow task started → registry state_since',
    verdict_signal_minus_kill_ms: summarise(signalMs),
    workflow_task_started_minus_signal_ms: summarise(taskWaitMs),
    registry_minus_workflow_task_started_ms: summarise(afterTaskMs),
    without_verdict_signal: missing,
    slowest_history: slowest,
  };
}

// --- claims ---------------------------------------------------------------------------------

/** `concurrency` loops claim a worker and release it, for `cycles` cycles in all (after `warmup`). */
export async function claimCycles(
  corral: CorralClient,
  pool: string,
  opts: { concurrency: number; cycles: number; warmup: number; runId: string },
) {
  const claimMs: number[] = [];
  const releaseMs: number[] = [];
  const errors: Record<string, number> = {};
  const errorSamples: string[] = [];
  const paths: Record<string, number> = {};
  let cycles = 0;
  const note = (what: string, err: unknown) => {
    const code = err instanceof CorralError ? err.code : err instanceof Error ? err.name : 'unknown';
    errors[`${what}:${code}`] = (errors[`${what}:${code}`] ?? 0) + 1;
    if (errorSamples.length < 5) errorSamples.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  };
  const run = async (total: number, record: boolean, tag: string) => {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: opts.concurrency }, async (_, loop) => {
        for (let i = next++; i < total; i = next++) {
          const t0 = performance.now();
          let lease;
          try {
            lease = await corral.claim(pool, {
              tenant: `tenant-${loop}`,
              requestId: `${opts.runId}-${tag}-${i}`,
              timeout: '10s',
            });
          } catch (err) {
            if (record) note('claim', err);
            continue;
          }
          const t1 = performance.now();
          try {
            await corral.release(lease);
          } catch (err) {
            if (record) note('release', err);
            continue;
          }
          if (record) {
            claimMs.push(t1 - t0);
            releaseMs.push(performance.now() - t1);
            paths[lease.path] = (paths[lease.path] ?? 0) + 1;
            cycles++;
          }
        }
      }),
    );
    return performance.now() - started;
  };
  await run(opts.warmup, false, 'w');
  const wallMs = await run(opts.cycles, true, 'm');
  return {
    concurrency: opts.concurrency,
    cycles,
    warmup_cycles: opts.warmup,
    wall_seconds: round2(wallMs / 1000),
    cycles_per_second: round2(cycles / (wallMs / 1000)),
    claim_latency_ms: summarise(claimMs),
    release_latency_ms: summarise(releaseMs),
    paths,
    errors,
    error_samples: errorSamples,
  };
}
