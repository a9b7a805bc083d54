// The process runtime's one health watcher per corral worker: a single loop over every worker
// process in the state directory, instead of an activity per worker. A worker is watched once a
// readiness wait found it ready (`readyAt` in its record); from then on
// - its exit is a verdict: at once for a child of this corral worker (the 'exit' event), within one
//   scan (`scanIntervalMs`, a /proc read per worker) for a process another corral worker started;
// - its health hook is probed every `healthIntervalMs` (its record's, like a pod's readinessProbe),
//   and `healthFailureThreshold` failures in a row are a `health_check_failed` verdict.
// A worker being deleted (its record says so, or its directory is gone) is never a verdict.
import type { WorkerFailureReason } from '../../common';
import type { HealthProbeResult, PodHealthWatch, PodHealthWatchOptions } from '../pod-runtime';
import type { ProcessIdentity } from './process-identity';
import { refOfRecord, type WorkerRecord } from './process-record';

/** What the prober needs of the process runtime (its state directory and probes). */
export interface ProcessWorkerSource {
  names(): string[];
  record(name: string): WorkerRecord | undefined;
  isRunning(identity: ProcessIdentity): boolean;
  exitVerdict(record: WorkerRecord): { reason: WorkerFailureReason; detail: string };
  probe(record: WorkerRecord, signal: AbortSignal): Promise<HealthProbeResult>;
  /** Subscribes to exits of this corral worker's own children; returns the unsubscribe. */
  onChildExit(listener: (name: string) => void): () => void;
}

interface WatchedWorker {
  record: WorkerRecord;
  failures: number;
  lastProblem: HealthProbeResult | null;
  nextProbeAt: number;
  probing: boolean;
  /** When the record was last re-read while waiting for its `readyAt`. */
  readAt: number;
  reported: boolean;
}

/** How often the directory and each process are checked (a process that is not our child). */
const defaultScanIntervalMs = 250;
/** A record not ready yet is re-read this often (a readiness wait writes `readyAt`). */
const notReadyRereadMs = 1_000;
const defaultHealthIntervalMs = 10_000;
const defaultFailureThreshold = 3;

export class ProcessHealthProber implements PodHealthWatch {
  private readonly watched = new Map<string, WatchedWorker>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private scanning = false;
  private readonly startedAt = Date.now();

  constructor(
    private readonly source: ProcessWorkerSource,
    private readonly options: PodHealthWatchOptions,
    private readonly scanIntervalMs = defaultScanIntervalMs,
  ) {}

  start(): void {
    this.unsubscribe = this.source.onChildExit((name) => this.checkExit(name));
    this.scheduleScan(0);
  }

  async close(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.timer);
    this.unsubscribe?.();
  }

  private scheduleScan(delayMs: number): void {
    if (this.abort.signal.aborted) return;
    this.timer = setTimeout(() => this.scan(), delayMs);
    this.timer.unref();
  }

  private scan(): void {
    if (this.scanning) return;
    this.scanning = true;
    try {
      const now = Date.now();
      const names = new Set(this.source.names());
      for (const name of this.watched.keys()) if (!names.has(name)) this.watched.delete(name);
      for (const name of names) {
        let worker = this.watched.get(name);
        if (!worker) {
          const record = this.source.record(name);
          if (!record) continue;
          worker = {
            record,
            failures: 0,
            lastProblem: null,
            nextProbeAt: 0,
            probing: false,
            readAt: now,
            reported: false,
          };
          this.watched.set(name, worker);
        }
        this.check(worker, now);
      }
    } catch (err) {
      this.options.log?.(`process health scan failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.scanning = false;
      this.scheduleScan(this.scanIntervalMs);
    }
  }

  private check(worker: WatchedWorker, now: number): void {
    if (worker.reported) return;
    if (!worker.record.readyAt) {
      if (now - worker.readAt < notReadyRereadMs) return;
      worker.record = this.source.record(worker.record.name) ?? worker.record;
      worker.readAt = now;
      if (!worker.record.readyAt) {
        // Only records older than this prober can predate `readyAt`; a fresh spawn's readiness
        // wait marks it, so a fill costs no extra probes.
        if (Date.parse(worker.record.createdAt) < this.startedAt) this.checkServing(worker);
        return;
      }
    }
    const { record } = worker;
    if (this.options.watches && !this.options.watches(record.workerId)) return;
    if (!record.process || !this.source.isRunning(record.process)) {
      this.checkExit(record.name);
      return;
    }
    if (record.healthPath !== null && now >= worker.nextProbeAt && !worker.probing) {
      worker.nextProbeAt = now + (record.healthIntervalMs ?? defaultHealthIntervalMs);
      worker.probing = true;
      void this.source
        .probe(record, this.abort.signal)
        .then((result) => this.onProbe(worker, result))
        .finally(() => (worker.probing = false));
    }
  }

  /**
   * A record without `readyAt` whose process answers its health check was ready once: a worker
   * spawned before records carried the mark (an upgrade). From now on it is watched.
   */
  private checkServing(worker: WatchedWorker): void {
    const { record } = worker;
    if (worker.probing || !record.process || !this.source.isRunning(record.process)) return;
    worker.probing = true;
    void this.source
      .probe(record, this.abort.signal)
      .then((result) => {
        if (this.abort.signal.aborted) return;
        if (result === 'ok' && !worker.record.readyAt) {
          worker.record = { ...worker.record, readyAt: new Date().toISOString() };
        }
        this.options.onProbe?.(result, record.image);
      })
      .finally(() => (worker.probing = false));
  }

  private onProbe(worker: WatchedWorker, result: HealthProbeResult): void {
    if (this.abort.signal.aborted || worker.reported) return;
    this.options.onProbe?.(result, worker.record.image);
    worker.failures = result === 'ok' ? 0 : worker.failures + 1;
    if (result !== 'ok') worker.lastProblem = result;
    if (worker.failures < (worker.record.healthFailureThreshold ?? defaultFailureThreshold)) return;
    // A process that died between probes has a better reason than "stopped answering".
    const current = this.source.record(worker.record.name);
    if (!current || current.deletionRequestedAt) return;
    if (!current.process || !this.source.isRunning(current.process)) {
      this.checkExit(current.name);
      return;
    }
    this.report(worker, 'health_check_failed', `${worker.failures} health probes failed; last: ${worker.lastProblem}`);
  }

  /** A process stopped (or may have): a verdict unless it is being deleted or was never ready. */
  private checkExit(name: string): void {
    const worker = this.watched.get(name);
    const record = this.source.record(name);
    if (!record || record.deletionRequestedAt || worker?.reported) return;
    if (!record.readyAt && !worker?.record.readyAt) return; // never served: the readiness wait reports it
    if (record.process && this.source.isRunning(record.process)) return;
    if (this.options.watches && !this.options.watches(record.workerId)) return;
    const { reason, detail } = this.source.exitVerdict(record);
    const tracked = worker ?? {
      record,
      failures: 0,
      lastProblem: null,
      nextProbeAt: 0,
      probing: false,
      readAt: Date.now(),
      reported: false,
    };
    this.watched.set(name, tracked);
    this.report(tracked, reason, detail);
  }

  private report(worker: WatchedWorker, reason: WorkerFailureReason, detail: string): void {
    worker.reported = true;
    this.options.onVerdict({ ref: refOfRecord(worker.record), reason, detail });
  }
}
