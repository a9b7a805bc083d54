// Which corral worker replicas are alive (the `corral_replicas` table), and which of them watch a
// given worker's health. Each replica beats every `beatIntervalMs`; a replica seen within
// `livenessMs` is live. A worker is watched by the first `watchersPerWorker` live replicas in its
// rendezvous (highest-random-weight) order: every worker has a watcher while any replica lives,
// two replicas give a kill -9 no blind spot, and membership changes move only the workers whose
// top replicas changed. While the registry is unreachable the last view is kept (and this replica
// always counts itself), so an outage never leaves a worker unwatched.
import crypto from 'node:crypto';
import type pg from 'pg';

export interface ReplicaMembershipOptions {
  db: pg.Pool;
  /** This replica's id: unique per process (hostname + pid + start time). */
  replicaId: string;
  beatIntervalMs?: number;
  livenessMs?: number;
  watchersPerWorker?: number;
  log?: (line: string) => void;
}

export const defaultReplicaBeatIntervalMs = 2_000;
export const defaultReplicaLivenessMs = 10_000;
/** Rows of replicas gone this long are deleted by whoever beats next. */
const forgetAfter = '1 hour';

/** The rendezvous weight of `replicaId` for `workerId` (first 6 bytes of SHA-256, as a number). */
function weight(replicaId: string, workerId: string): number {
  return crypto.createHash('sha256').update(replicaId).update('\0').update(workerId).digest().readUIntBE(0, 6);
}

export class ReplicaMembership {
  private live: string[];
  /** `watches` answers for the current view (cleared when the view changes). */
  private readonly watching = new Map<string, boolean>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly beatIntervalMs: number;
  private readonly livenessMs: number;
  private readonly watchersPerWorker: number;

  constructor(private readonly o: ReplicaMembershipOptions) {
    this.beatIntervalMs = o.beatIntervalMs ?? defaultReplicaBeatIntervalMs;
    this.livenessMs = o.livenessMs ?? defaultReplicaLivenessMs;
    this.watchersPerWorker = o.watchersPerWorker ?? 2;
    this.live = [o.replicaId];
  }

  /** Beats once (so the first view is real), then every interval until `stop`. */
  async start(): Promise<void> {
    await this.refresh();
    this.schedule();
  }

  /** One beat now: this replica's row refreshed and the live view re-read. */
  async refresh(): Promise<void> {
    await this.beat();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.beat().finally(() => this.schedule()), this.beatIntervalMs);
    this.timer.unref();
  }

  /** Upserts this replica's row and reads who else is live, in one round trip. */
  private async beat(): Promise<void> {
    try {
      const { rows } = await this.o.db.query<{ id: string }>(
        `WITH me AS (
           INSERT INTO corral_replicas (id) VALUES ($1)
           ON CONFLICT (id) DO UPDATE SET seen_at = now()
         ), forgotten AS (
           DELETE FROM corral_replicas WHERE seen_at < now() - $3::interval
         )
         SELECT id FROM corral_replicas WHERE seen_at > now() - make_interval(secs => $2::double precision / 1000)`,
        [this.o.replicaId, this.livenessMs, forgetAfter],
      );
      // The CTE's insert is not visible to the SELECT of the same statement: add ourselves.
      const ids = new Set(rows.map((row) => row.id));
      ids.add(this.o.replicaId);
      const next = [...ids].sort();
      if (next.join('\n') !== this.live.join('\n')) {
        this.live = next;
        this.watching.clear();
      }
    } catch (err) {
      this.o.log?.(`replica membership not refreshed (keeping ${this.live.length} replicas): ${messageOf(err)}`);
    }
  }

  liveReplicas(): readonly string[] {
    return this.live;
  }

  /** Whether this replica is one of the worker's watchers. */
  watches(workerId: string): boolean {
    if (this.live.length <= this.watchersPerWorker) return true;
    const known = this.watching.get(workerId);
    if (known !== undefined) return known;
    const ranked = this.live
      .map((id) => ({ id, w: weight(id, workerId) }))
      .sort((a, b) => b.w - a.w || (a.id < b.id ? -1 : 1));
    const mine = ranked.slice(0, this.watchersPerWorker).some((r) => r.id === this.o.replicaId);
    if (this.watching.size > 100_000) this.watching.clear();
    this.watching.set(workerId, mine);
    return mine;
  }

  /** Stops beating and removes this replica's row, so the others take its share at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.o.db.query('DELETE FROM corral_replicas WHERE id = $1', [this.o.replicaId]).catch(() => undefined);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
