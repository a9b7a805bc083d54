// The process PodRuntime, corral's embedded default: each worker spawn is a detached child
// process with a directory under `<stateDir>/workers/<name>/` holding its record (pid + kernel
// start time, so a restarted corral finds its orphans again), its 0600 credentials file and its
// output log. Semantics match the Kubernetes runtime: ready when the health URL answers, exit
// before ready is `pod_crashed`, a missing executable is `invalid_image`, and the pool's max
// lifetime is enforced by coreutils `timeout` as the activeDeadlineSeconds backstop.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  type PodFailureReason,
  type WorkerFailureReason,
  processRuntimeBoundsMs,
  type WorkerPodRef,
} from '../../common';
import { freePort } from '../../embedded/ports';
import {
  RuntimeInputError,
  RuntimeUnavailableError,
  StaleRuntimeWriteError,
  WorkerNameConflictError,
  WorkerPodNotFoundError,
} from '../errors';
import type {
  AwaitReadyOptions,
  RuntimeCallOptions,
  CreateWorkerResult,
  ManagedWorker,
  HealthProbeResult,
  PodHealthWatch,
  PodHealthWatchOptions,
  PodRuntime,
  ReadinessDiagnostics,
  ReadinessOutcome,
} from '../pod-runtime';
import {
  checkWaitTimeout,
  credentialsFileContent,
  goesBackwards,
  parsePoolFilter,
  parseWorkerCredentials,
  parseWorkerPodRef,
  parseWorkerPodSpec,
  refFor,
  type WorkerCredentials,
  type WorkerPodSpec,
  type WorkerPodSpecInput,
} from '../worker-pod-spec';
import { carriesWorkerId, identify, isRunning, type ProcessIdentity } from './process-identity';
import { ProcessHealthProber } from './process-health-prober';
import { refOfRecord, type WorkerRecord } from './process-record';
import { processSecretsDir, resolveProcessEnv, SecretReferenceError } from './process-secrets';

/** Whether something accepts TCP connections on the loopback port (a worker without a health hook). */
function portAccepts(port: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, signal });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface ProcessRuntimeOptions {
  /** Worker directories live under `<stateDir>/workers/`. */
  stateDir: string;
  /** Relative executables resolve against this (default: the current directory). */
  workDir?: string;
  /** Bound on one health probe. */
  healthTimeoutMs?: number;
  /** How often a readiness wait probes the health URL and checks the process. */
  pollIntervalMs?: number;
  /** How long a deleted worker gets between SIGTERM and SIGKILL. */
  stopGraceMs?: number;
  /**
   * Where env Secret references resolve: `<secretsDir>/<name>/<key>` (decision 0021). Default:
   * `CORRAL_PROCESS_SECRETS_DIR`, else `<stateDir>/secrets`.
   */
  secretsDir?: string;
}

interface ExitRecord {
  code: number | null;
  signal: string | null;
}

const recordFile = 'worker.json';
const credentialsFile = 'credentials.json';
/** Held (O_EXCL) for the synchronous read-compare-rename of a credential write. */
const credentialsLockFile = 'credentials.lock';
/**
 * A holder does its read-compare-rename synchronously, in microseconds: a lock this old belongs to
 * a writer that died (or was frozen) holding it, and is broken.
 */
const staleLockMs = 1_000;
const exitFile = 'exit.json';
const logFile = 'output.log';
/** The worker's cwd and HOME: apart from corral's own files in the worker directory. */
const homeDir = 'home';
/** How long a record may say "starting" (no process yet) before the spawn counts as interrupted. */
const spawnGraceMs = 10_000;
const timeoutBinary = ['/usr/bin/timeout', '/bin/timeout'].find((p) => fs.existsSync(p));
/** coreutils `timeout` exit codes: 124 the deadline fired, 126 not executable, 127 not found. */
const timeoutExit = { deadline: 124, notExecutable: 126, notFound: 127 } as const;

/** What one readiness probe found: ready, the hook answering "no" (or hanging), or nothing there yet. */
type ReadinessProbe = { result: 'ok' } | { result: 'unhealthy' | 'not_accepting'; detail: string };

function writeFileAtomic(file: string, content: string, mode: number): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, content, { mode });
  fs.chmodSync(tmp, mode); // The umask must not widen or narrow what we asked for.
  fs.renameSync(tmp, file);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

function executableProblem(file: string): string | undefined {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) return `${file} is not a file`;
    fs.accessSync(file, fs.constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `executable ${file} does not exist` : `${file} is not executable (${code})`;
  }
}

export class ProcessPodRuntime implements PodRuntime {
  readonly kind = 'process' as const;
  private readonly workersDir: string;
  private readonly workDir: string;
  private readonly healthTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly stopGraceMs: number;
  private readonly secretsDir: string;
  /** Exit listeners for children this process spawned; orphans are detected by polling /proc. */
  private readonly exitWaiters = new Map<string, Set<() => void>>();
  /** Told the name of every child of this instance that exits (the health prober). */
  private readonly exitListeners = new Set<(name: string) => void>();
  /** Children this instance spawned, resolved once their exit status is on disk. */
  private readonly childExits = new Map<string, Promise<void>>();

  constructor(options: ProcessRuntimeOptions) {
    if (!options.stateDir) throw new RuntimeInputError('stateDir', 'must not be empty');
    this.workersDir = path.resolve(options.stateDir, 'workers');
    this.workDir = path.resolve(options.workDir ?? process.cwd());
    this.healthTimeoutMs = options.healthTimeoutMs ?? 1_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    this.stopGraceMs = options.stopGraceMs ?? processRuntimeBoundsMs.stopGrace;
    this.secretsDir = processSecretsDir(options.stateDir, options.secretsDir, process.env);
  }

  /**
   * A state dir this process may not write is configuration (`config_error`), not an unreachable
   * runtime: no retry fixes it. Named by the setting that chose it.
   */
  private makeWorkersDir(): void {
    try {
      fs.mkdirSync(this.workersDir, { recursive: true, mode: 0o700 });
      fs.accessSync(this.workersDir, fs.constants.W_OK | fs.constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS' && code !== 'ENOTDIR') throw err;
      throw new RuntimeInputError(
        'stateDir',
        `cannot write ${this.workersDir} (${code}); point CORRAL_PROCESS_STATE_DIR (or CORRAL_STATE_DIR) at a writable directory`,
      );
    }
  }

  private dirOf(ref: WorkerPodRef): string {
    return path.join(this.workersDir, ref.name);
  }

  async create(
    specInput: WorkerPodSpecInput,
    credentialsInput: WorkerCredentials,
    options: RuntimeCallOptions = {},
  ): Promise<CreateWorkerResult> {
    const spec = parseWorkerPodSpec(specInput);
    if (/[\0\r\n]/.test(spec.image)) throw new RuntimeInputError('image', 'must be a path without control characters');
    const credentials = parseWorkerCredentials(credentialsInput);
    const ref = refFor(spec);
    const { signal } = options;
    // Before the first write: a cancelled create makes nothing.
    signal?.throwIfAborted();
    const created = await this.createWorker(spec, credentials, ref, signal);
    // The caller gave up while the worker was being made: it must not outlive the give-up.
    if (created.created && signal?.aborted) {
      await this.delete(ref).catch(() => undefined);
      throw signal.reason;
    }
    return created;
  }

  private async createWorker(
    spec: WorkerPodSpec,
    credentials: WorkerCredentials,
    ref: WorkerPodRef,
    signal: AbortSignal | undefined,
  ): Promise<CreateWorkerResult> {
    const dir = this.dirOf(ref);
    this.makeWorkersDir();
    const executable = path.resolve(this.workDir, spec.image);
    const record: WorkerRecord = {
      name: ref.name,
      workerId: ref.workerId,
      pool: ref.pool,
      spawnAttempt: ref.spawnAttempt,
      epoch: spec.epoch,
      image: spec.image,
      port: 0,
      healthPath: spec.healthPath,
      healthIntervalMs: spec.healthIntervalMs,
      healthFailureThreshold: spec.healthFailureThreshold,
      createdAt: new Date().toISOString(),
      process: null,
      failure: null,
    };
    try {
      // mkdir is atomic: exactly one creator wins, everyone else adopts.
      fs.mkdirSync(dir, { mode: 0o700 });
      // A provisional record at once, so a concurrent create or wait sees "starting", not nothing.
      writeFileAtomic(path.join(dir, recordFile), JSON.stringify(record), 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const existing = readJson<WorkerRecord>(path.join(dir, recordFile));
      if (existing && (existing.workerId !== ref.workerId || existing.pool !== ref.pool)) {
        throw new WorkerNameConflictError('process', ref.name);
      }
      // Adopted: the caller's credentials are the ones it will record, so they win (never backwards).
      await this.writeCredentialsForward(ref, credentials, signal);
      return { ref, created: false };
    }

    this.writeCredentialsFile(dir, ref, credentials);
    const port = await freePort();
    // Nothing runs yet: an abort now leaves only the directory, which create() removes.
    if (signal?.aborted) return { ref, created: true };
    record.port = port;
    const problem = executableProblem(executable);
    if (problem) {
      // Like a pod with a bad image: the create succeeds, the readiness wait reports why it never runs.
      record.failure = { reason: 'invalid_image', detail: problem };
      writeFileAtomic(path.join(dir, recordFile), JSON.stringify(record), 0o600);
      return { ref, created: true };
    }
    let poolEnv: Record<string, string>;
    try {
      // Secret references resolve here, on the corral worker, and go only into the child's environment.
      poolEnv = resolveProcessEnv(spec.env, this.secretsDir);
    } catch (err) {
      if (!(err instanceof SecretReferenceError)) throw err;
      // As a pod whose Secret is missing (CreateContainerConfigError): created, never runs, says why.
      record.failure = { reason: 'config_error', detail: err.message };
      writeFileAtomic(path.join(dir, recordFile), JSON.stringify(record), 0o600);
      return { ref, created: true };
    }

    const env: NodeJS.ProcessEnv = {
      // Deliberately not corral's own environment: DATABASE_URL and friends stay out of workers.
      PATH: [path.dirname(process.execPath), process.env.PATH ?? '/usr/bin:/bin'].join(path.delimiter),
      HOME: path.join(dir, homeDir),
      HOST: '127.0.0.1',
      PORT: String(port),
      CORRAL_WORKER_ID: ref.workerId,
      CORRAL_POOL: ref.pool,
      CORRAL_CREDENTIALS_FILE: path.join(dir, credentialsFile),
      ...poolEnv,
    };
    const [command, args] = timeoutBinary
      ? [timeoutBinary, ['--kill-after=10s', `${spec.maxLifetimeSeconds}s`, executable, ...spec.args]]
      : [executable, spec.args];
    fs.mkdirSync(path.join(dir, homeDir), { mode: 0o700 });
    const log = fs.openSync(path.join(dir, logFile), 'a', 0o600);
    try {
      // Detached: the worker outlives a corral restart, as a pod outlives a controller restart.
      const child = spawn(command, args, {
        cwd: path.join(dir, homeDir),
        env,
        detached: true,
        stdio: ['ignore', log, log],
      });
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid as number));
        child.once('error', reject);
      }).catch((err: NodeJS.ErrnoException) => {
        record.failure = {
          reason: 'invalid_image',
          detail: `could not start ${executable}: ${err.code ?? err.message}`,
        };
        return undefined;
      });
      if (pid !== undefined) {
        record.process = identify(pid);
        let exited!: () => void;
        this.childExits.set(ref.name, new Promise<void>((resolve) => (exited = resolve)));
        child.once('exit', (code, signal) => {
          exited();
          this.childExits.delete(ref.name);
          try {
            writeFileAtomic(path.join(dir, exitFile), JSON.stringify({ code, signal } satisfies ExitRecord), 0o600);
          } catch {
            // The worker was deleted (its directory is gone): nobody needs its exit status.
          }
          for (const wake of this.exitWaiters.get(ref.name) ?? []) wake();
          for (const listener of this.exitListeners) listener(ref.name);
        });
        child.unref();
      }
    } finally {
      fs.closeSync(log);
    }
    try {
      if (this.readRecord(ref)?.deletionRequestedAt)
        throw new Error(`worker ${ref.name} was deleted while it was being created`);
      writeFileAtomic(path.join(dir, recordFile), JSON.stringify(record), 0o600);
    } catch (err) {
      // Deleted meanwhile (or the disk failed): a process nobody can find again must not live on.
      if (record.process) await this.stop(ref, record.process);
      throw err;
    }
    return { ref, created: true };
  }

  private writeCredentialsFile(dir: string, ref: WorkerPodRef, credentials: WorkerCredentials): void {
    writeFileAtomic(path.join(dir, credentialsFile), credentialsFileContent(credentials, ref.workerId), 0o600);
  }

  /**
   * Writes the credentials file, never backwards: under the worker's credentials lock (so another
   * corral process on the same state directory cannot interleave), read the epoch and version the
   * file holds, refuse an older write (StaleRuntimeWriteError), then replace the file atomically.
   * The record's epoch only ever rises too.
   */
  private async writeCredentialsForward(
    ref: WorkerPodRef,
    credentials: WorkerCredentials,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const dir = this.dirOf(ref);
    const lock = path.join(dir, credentialsLockFile);
    const attempted = { epoch: credentials.epoch, version: credentials.version };
    const waitEnds = Date.now() + processRuntimeBoundsMs.credentialLockWait;
    for (;;) {
      signal?.throwIfAborted();
      try {
        fs.writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new WorkerPodNotFoundError(ref.name);
        if (code !== 'EEXIST') throw err;
        const heldFor = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
        if (heldFor > staleLockMs) {
          fs.rmSync(lock, { force: true });
          continue;
        }
        if (Date.now() >= waitEnds) {
          throw new RuntimeUnavailableError(`the credentials of ${ref.name} stayed locked by another writer`);
        }
        await this.pause(ref, 5, signal);
      }
    }
    try {
      // Synchronous from here to the unlock: nothing else in this process interleaves either.
      const record = this.readRecord(ref);
      const stored = readJson<{ epoch?: unknown; version?: unknown }>(path.join(dir, credentialsFile));
      if (typeof stored?.epoch === 'number' && typeof stored.version === 'number') {
        const held = { epoch: stored.epoch, version: stored.version };
        if (goesBackwards(held, attempted))
          throw new StaleRuntimeWriteError(`${ref.name}/${credentialsFile}`, held, attempted);
      }
      try {
        this.writeCredentialsFile(dir, ref, credentials);
        if (record && !record.deletionRequestedAt && record.epoch < credentials.epoch) {
          writeFileAtomic(path.join(dir, recordFile), JSON.stringify({ ...record, epoch: credentials.epoch }), 0o600);
        }
      } catch (err) {
        // Deleted under the write (its directory is gone): there is nothing to write to.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new WorkerPodNotFoundError(ref.name);
        throw err;
      }
    } finally {
      fs.rmSync(lock, { force: true });
    }
  }

  /** Notes in the record that the worker was ready once, so a later death is a health verdict. */
  private markReady(ref: WorkerPodRef): void {
    const record = this.readRecord(ref);
    if (!record || record.readyAt || record.deletionRequestedAt) return;
    try {
      writeFileAtomic(
        path.join(this.dirOf(ref), recordFile),
        JSON.stringify({ ...record, readyAt: new Date().toISOString() }),
        0o600,
      );
    } catch {
      // Deleted meanwhile: nothing to watch.
    }
  }

  private readRecord(ref: WorkerPodRef): WorkerRecord | undefined {
    return readJson<WorkerRecord>(path.join(this.dirOf(ref), recordFile));
  }

  /** Why a process that is no longer running stopped, in the runtime's vocabulary. */
  private exitVerdict(ref: WorkerPodRef, when = 'before it was ready'): { reason: PodFailureReason; detail: string } {
    const exit = readJson<ExitRecord>(path.join(this.dirOf(ref), exitFile));
    if (!exit)
      return {
        reason: 'pod_crashed',
        detail: `the process exited ${when} (status unknown: not our child)`,
      };
    if (exit.code === timeoutExit.deadline)
      return { reason: 'deadline_exceeded', detail: 'the process ran past its max lifetime' };
    if (exit.code === timeoutExit.notExecutable || exit.code === timeoutExit.notFound) {
      return { reason: 'invalid_image', detail: `the executable could not be run (exit ${exit.code})` };
    }
    const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
    return { reason: 'pod_crashed', detail: `the process exited ${when} (${how})` };
  }

  /**
   * One probe of the worker's health hook (or, without one, of its port). Ready = the health URL
   * answers 2xx. The port was free when picked but is not reserved, so a health answer naming
   * another worker id means someone else's process holds it: not ready.
   */
  private async probeHealth(record: WorkerRecord, signal?: AbortSignal): Promise<HealthProbeResult> {
    const timeout = AbortSignal.timeout(this.healthTimeoutMs);
    if (record.healthPath === null) {
      return (await portAccepts(record.port, signal ? AbortSignal.any([signal, timeout]) : timeout))
        ? 'ok'
        : 'unreachable';
    }
    try {
      const res = await fetch(`http://127.0.0.1:${record.port}${record.healthPath}`, {
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        redirect: 'manual',
      });
      if (!res.ok) {
        await res.body?.cancel();
        return 'http_error';
      }
      const body = (await res.text()).slice(0, 4_096);
      try {
        const workerId = (JSON.parse(body) as { workerId?: unknown }).workerId;
        return workerId === undefined || workerId === record.workerId ? 'ok' : 'wrong_identity';
      } catch {
        return 'ok'; // Not JSON: a plain health endpoint; activation checks the protocol.
      }
    } catch {
      return 'unreachable';
    }
  }

  /**
   * One readiness probe, saying why it failed: a health hook that answers an error status or
   * accepts the connection but does not answer is `unhealthy` (its readiness probe fails); nothing
   * accepting connections yet (or someone else's process answering) is `not_accepting`.
   */
  private async readinessProbe(record: WorkerRecord, signal?: AbortSignal): Promise<ReadinessProbe> {
    const result = await this.probeHealth(record, signal);
    if (result === 'ok') return { result };
    if (result === 'http_error') {
      return { result: 'unhealthy', detail: `its health hook ${record.healthPath ?? ''} answers an error status` };
    }
    if (result === 'wrong_identity') {
      return { result: 'not_accepting', detail: `port ${record.port} answers as another worker` };
    }
    const timeout = AbortSignal.timeout(this.healthTimeoutMs);
    if (
      record.healthPath !== null &&
      (await portAccepts(record.port, signal ? AbortSignal.any([signal, timeout]) : timeout))
    ) {
      return {
        result: 'unhealthy',
        detail: `its health hook ${record.healthPath} accepts connections but does not answer within ${this.healthTimeoutMs}ms`,
      };
    }
    return { result: 'not_accepting', detail: `nothing accepts connections on port ${record.port}` };
  }

  /** Resolves after `ms`, or earlier when one of our children exits; rejects on abort. */
  private pause(ref: WorkerPodRef, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiters = this.exitWaiters.get(ref.name) ?? new Set<() => void>();
      this.exitWaiters.set(ref.name, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        done();
        reject(signal?.reason);
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async awaitReady(refInput: WorkerPodRef, options: AwaitReadyOptions): Promise<ReadinessOutcome> {
    const ref = parseWorkerPodRef(refInput);
    checkWaitTimeout(options.timeoutMs);
    const diagnostics: ReadinessDiagnostics = { reconnects: 0, relists: 0 };
    const deadline = Date.now() + options.timeoutMs;
    let announcedWaiting = false;
    let lastProbe: ReadinessProbe | undefined;
    const failed = (reason: WorkerFailureReason, detail: string): ReadinessOutcome => ({
      status: 'failed',
      reason,
      detail,
      diagnostics,
    });
    try {
      for (;;) {
        options.signal?.throwIfAborted();
        const record = this.readRecord(ref);
        if (!record || record.deletionRequestedAt) return failed('pod_vanished', 'the worker process was deleted');
        if (record.failure) return failed(record.failure.reason, record.failure.detail);
        const starting = !record.process && Date.now() - Date.parse(record.createdAt) < spawnGraceMs;
        if (!record.process && !starting) {
          return failed('pod_crashed', 'the spawn was interrupted before the process started');
        }
        if (record.process && !isRunning(record.process)) {
          // Our own child may be dead but not yet reaped: its exit status is moments away.
          const exit = this.childExits.get(ref.name);
          if (exit) await Promise.race([exit, this.pause(ref, 2_000, options.signal)]);
          if (this.readRecord(ref)?.deletionRequestedAt ?? !this.readRecord(ref)) {
            return failed('pod_vanished', 'the worker process was deleted');
          }
          const { reason, detail } = this.exitVerdict(ref);
          return failed(reason, detail);
        }
        if (record.process) {
          lastProbe = await this.readinessProbe(record, options.signal);
          if (lastProbe.result === 'ok') {
            this.markReady(ref);
            return { status: 'ready', endpoint: `http://127.0.0.1:${record.port}`, diagnostics };
          }
        }
        if (Date.now() >= deadline) {
          // Alive at the deadline: its own health hook saying no is health_check_failed; a worker
          // that never got as far as accepting connections (or never started) is spawn_timeout.
          const within = `not ready within ${Math.round(options.timeoutMs / 1000)}s`;
          if (lastProbe?.result === 'unhealthy') return failed('health_check_failed', `${within}: ${lastProbe.detail}`);
          return failed(
            'spawn_timeout',
            `${within}: ${lastProbe && lastProbe.result !== 'ok' ? lastProbe.detail : 'the process did not start'}`,
          );
        }
        if (!announcedWaiting) {
          announcedWaiting = true;
          options.onWaiting?.();
        }
        await this.pause(ref, Math.min(this.pollIntervalMs, Math.max(0, deadline - Date.now())), options.signal);
      }
    } finally {
      if (this.exitWaiters.get(ref.name)?.size === 0) this.exitWaiters.delete(ref.name);
    }
  }

  async writeCredentials(
    refInput: WorkerPodRef,
    credentialsInput: WorkerCredentials,
    options: RuntimeCallOptions = {},
  ): Promise<void> {
    const ref = parseWorkerPodRef(refInput);
    const credentials = parseWorkerCredentials(credentialsInput);
    const record = this.readRecord(ref);
    if (!record || record.deletionRequestedAt) throw new WorkerPodNotFoundError(ref.name);
    await this.writeCredentialsForward(ref, credentials, options.signal);
  }

  async delete(refInput: WorkerPodRef, options: RuntimeCallOptions = {}): Promise<void> {
    const ref = parseWorkerPodRef(refInput);
    options.signal?.throwIfAborted();
    const record = this.readRecord(ref);
    if (record && !record.deletionRequestedAt) {
      const marked: WorkerRecord = { ...record, deletionRequestedAt: new Date().toISOString() };
      writeFileAtomic(path.join(this.dirOf(ref), recordFile), JSON.stringify(marked), 0o600);
    }
    if (record?.process && isRunning(record.process)) await this.stop(ref, record.process, options.signal);
    fs.rmSync(this.dirOf(ref), { recursive: true, force: true });
  }

  /**
   * SIGTERM to the worker's process group, then SIGKILL after the grace period. An abort stops the
   * waiting, not the signals already sent; the record stays marked, so a retried delete goes on.
   */
  private async stop(ref: WorkerPodRef, identity: ProcessIdentity, signal?: AbortSignal): Promise<void> {
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-identity.pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    };
    // The record is a file a same-uid worker could rewrite: never signal a process that does
    // not carry this worker's identity (corral's own group, the embedded Postgres...).
    if (!carriesWorkerId(identity, ref.workerId)) return;
    signalGroup('SIGTERM');
    const graceEnds = Date.now() + this.stopGraceMs;
    while (isRunning(identity) && Date.now() < graceEnds) await this.pause(ref, 25, signal);
    if (isRunning(identity)) {
      signalGroup('SIGKILL');
      const killEnds = Date.now() + processRuntimeBoundsMs.killWait;
      while (isRunning(identity) && Date.now() < killEnds) await this.pause(ref, 25, signal);
    }
  }

  async listManaged(filter: { pool?: string } = {}, options: RuntimeCallOptions = {}): Promise<ManagedWorker[]> {
    const pool = parsePoolFilter(filter.pool);
    const { signal } = options;
    signal?.throwIfAborted();
    let names: string[];
    try {
      names = fs.readdirSync(this.workersDir);
    } catch {
      return [];
    }
    const workers = await Promise.all(
      names.sort().map(async (name): Promise<ManagedWorker | undefined> => {
        const dir = path.join(this.workersDir, name);
        const record = readJson<WorkerRecord>(path.join(dir, recordFile));
        const hasSecret = fs.existsSync(path.join(dir, credentialsFile));
        if (!record) {
          if (!hasSecret) return undefined;
          // Credentials without a record: a stranded "secret" for the janitor.
          return {
            name,
            workerId: '',
            pool: '',
            spawnAttempt: 0,
            epoch: undefined,
            hasPod: false,
            hasSecret,
            verdict: undefined,
          };
        }
        if (pool && record.pool !== pool) return undefined;
        const ref: WorkerPodRef = {
          name,
          workerId: record.workerId,
          pool: record.pool,
          spawnAttempt: record.spawnAttempt,
        };
        let verdict: ManagedWorker['verdict'];
        if (record.failure) verdict = { status: 'failed', reason: record.failure.reason };
        else if (!record.process || !isRunning(record.process))
          verdict = { status: 'failed', reason: this.exitVerdict(ref).reason };
        else verdict = { status: (await this.probeHealth(record, signal)) === 'ok' ? 'ready' : 'pending' };
        return {
          name,
          workerId: record.workerId,
          pool: record.pool,
          spawnAttempt: record.spawnAttempt,
          epoch: record.epoch,
          hasPod: true,
          hasSecret,
          verdict,
        };
      }),
    );
    signal?.throwIfAborted();
    return workers.filter((w): w is ManagedWorker => w !== undefined);
  }

  /**
   * One prober loop for every worker process in the state directory: exits of this instance's
   * children are noticed at once, other processes by a /proc check every scan, and the health
   * hook is probed at each worker's own interval (see ProcessHealthProber).
   */
  watchHealth(options: PodHealthWatchOptions): PodHealthWatch {
    const prober = new ProcessHealthProber(
      {
        names: () => {
          try {
            return fs.readdirSync(this.workersDir);
          } catch {
            return [];
          }
        },
        record: (name) => readJson<WorkerRecord>(path.join(this.workersDir, name, recordFile)),
        isRunning: (identity) => isRunning(identity),
        exitVerdict: (record) => this.exitVerdict(refOfRecord(record), 'while serving'),
        probe: (record, signal) => this.probeHealth(record, signal),
        onChildExit: (listener) => {
          this.exitListeners.add(listener);
          return () => this.exitListeners.delete(listener);
        },
      },
      options,
    );
    prober.start();
    return prober;
  }

  /** The worker's output, for diagnostics and tests. */
  logPath(ref: WorkerPodRef): string {
    return path.join(this.dirOf(ref), logFile);
  }

  credentialsPath(ref: WorkerPodRef): string {
    return path.join(this.dirOf(ref), credentialsFile);
  }

  async close(): Promise<void> {
    for (const waiters of this.exitWaiters.values()) for (const wake of waiters) wake();
  }
}
