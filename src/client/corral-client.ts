// CorralClient: how a control plane written in TypeScript (and the `corral` CLI) uses corral —
// a typed client of the corral API (src/api/, docs/api/openapi.json). It holds an API address and
// a bearer token, never registry credentials. Every call is time-bounded; a refusal is a
// CorralError with the API's code (`pool_not_found`, `lease_ended`, `stale_lease`, …).
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  ApplyPoolResponse,
  PoolScaleResponse,
  ClaimResponse,
  DeletePoolResponse,
  LeaseCheckResponse,
  PoolSummary,
  ReleaseResponse,
  TransitionResponse,
  WorkerResponse,
} from '../api/api-schemas';
import { parseDuration } from '../config/duration';
import type { PoolSpec, PoolSpecInput } from '../config/pool-spec';
import type { WorkerState, PoolDescription } from '../common';
import { CorralError, corralErrorCodes, type CorralErrorCode } from './errors';

export type ClaimResult = ClaimResponse;
/** What release and lease checks need: a claim's answer without how it was served. */
export type Lease = Omit<ClaimResponse, 'path' | 'waitedMs'>;
/** A pool as the API describes it, its spec typed. */
export type Pool = Omit<PoolSummary, 'spec' | 'counts'> & {
  spec: PoolSpec;
  counts: Partial<Record<WorkerState, number>>;
};
export interface PoolDetails {
  pool: Pool;
  /** Changes of what the workers run (the pod template), not of the pool's sizes. */
  templateGeneration: number;
  /** Live workers by template generation and state, newest first (null: still being started). */
  generations: { generation: number | null; current: boolean; counts: Partial<Record<WorkerState, number>> }[];
  /** The pool workflow's own view; null when it is not running. */
  workflow: PoolDescription | null;
}
export type { LeaseCheckResponse as LeaseCheck, WorkerResponse as Worker, TransitionResponse };

export interface ClaimOptions {
  tenant: string;
  /** Idempotency key: every call with it gets the same lease while that lease is valid. */
  requestId: string;
  /** How long to wait for a worker (ms or "30s"); default 60 s. */
  timeout?: number | string;
}

/** The corral API did not answer (not running, wrong address, network). */
export class CorralUnreachableError extends Error {
  override readonly name = 'CorralUnreachableError';
}

export interface CorralClientOptions {
  /** The corral API, e.g. http://127.0.0.1:7070 */
  url: string;
  /** A bearer token from the API's tokens file; omit for the embedded default on loopback. */
  token?: string;
  /** Bound on every call but a claim (which gets its own timeout plus this). Default 30 s. */
  requestTimeoutMs?: number;
}

const defaultRequestTimeoutMs = 30_000;

export class CorralClient {
  private readonly base: string;

  constructor(private readonly options: CorralClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  get url(): string {
    return this.base;
  }

  // --- claims --------------------------------------------------------------------------------

  /** A worker for `tenant`, exactly once per `requestId`, with its fencing token. */
  async claim(pool: string, options: ClaimOptions): Promise<ClaimResult> {
    const timeoutMs =
      typeof options.timeout === 'string' ? (parseDuration(options.timeout) ?? 60_000) : (options.timeout ?? 60_000);
    const body: Record<string, unknown> = { tenant: options.tenant, requestId: options.requestId };
    if (options.timeout !== undefined) body.timeout = options.timeout;
    // The server answers `timeout` itself at the claim's deadline; this bound only covers a lost server.
    const bound = Math.min(timeoutMs, 10 * 60_000) + this.requestTimeoutMs;
    return this.call('POST', `/v1/pools/${encodeURIComponent(pool)}/claims`, body, bound);
  }

  /** Gives the worker back; the pool's release policy decides what happens to it. Idempotent per lease. */
  async release(lease: { workerId: string; epoch: number; tenant?: string }): Promise<ReleaseResponse> {
    const body: Record<string, unknown> = { epoch: lease.epoch };
    if (lease.tenant !== undefined) body.tenant = lease.tenant;
    return this.call('POST', `/v1/workers/${encodeURIComponent(lease.workerId)}/release`, body);
  }

  /** Anyone may check a lease: valid only while the worker is claimed at exactly that epoch. */
  async checkLease(lease: { workerId: string; epoch: number }): Promise<LeaseCheckResponse> {
    return this.call(
      'GET',
      `/v1/workers/${encodeURIComponent(lease.workerId)}/lease?epoch=${encodeURIComponent(String(lease.epoch))}`,
    );
  }

  // --- pools ---------------------------------------------------------------------------------

  /** Creates or updates a pool (idempotent) and makes sure its workflow runs. */
  async applyPool(spec: PoolSpecInput | unknown): Promise<Omit<ApplyPoolResponse, 'pool'> & { pool: Pool }> {
    const name = (spec as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || name.length === 0) {
      throw new CorralError('invalid_request', 'name: must be a non-empty string', 'name');
    }
    return this.call('PUT', `/v1/pools/${encodeURIComponent(name)}`, spec);
  }

  async listPools(): Promise<Pool[]> {
    return (await this.call<{ pools: Pool[] }>('GET', '/v1/pools')).pools;
  }

  async describePool(name: string): Promise<PoolDetails> {
    return this.call('GET', `/v1/pools/${encodeURIComponent(name)}`);
  }

  /** The pool, or null if there is none. */
  async getPool(name: string): Promise<Pool | null> {
    try {
      return (await this.describePool(name)).pool;
    } catch (err) {
      if (err instanceof CorralError && err.code === 'pool_not_found') return null;
      throw err;
    }
  }

  async scalePool(
    name: string,
    change: { minIdle?: number; maxWorkers?: number; maxIdle?: number },
  ): Promise<Omit<ApplyPoolResponse, 'pool'> & { pool: Pool }> {
    return this.call('POST', `/v1/pools/${encodeURIComponent(name)}/scale`, change);
  }

  /** The pool's warm capacity: target, headroom, claim rate, idle and waiting (what an autoscaler reads). */
  async poolScale(name: string): Promise<PoolScaleResponse> {
    return this.call('GET', `/v1/pools/${encodeURIComponent(name)}/scale`);
  }

  /** Stops new claims at once; the pool workflow retires every worker. Answers at once. */
  async drainPool(name: string): Promise<Pool> {
    return this.call('POST', `/v1/pools/${encodeURIComponent(name)}/drain`);
  }

  /** Resolves once the pool reads `drained` (polled). */
  async waitForDrained(name: string, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<Pool> {
    return this.poll(
      `pool ${name} to drain`,
      async () => {
        const pool = await this.getPool(name);
        if (!pool) throw new CorralError('pool_not_found', `no pool named ${name}`);
        return pool.status === 'drained' ? pool : null;
      },
      opts,
    );
  }

  /** Drains the pool if needed, waits for the drain, then forgets it (worker history is kept). */
  async deletePool(name: string, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<DeletePoolResponse> {
    return this.poll(
      `pool ${name} to be deleted`,
      async () => {
        const answer = await this.call<DeletePoolResponse>('DELETE', `/v1/pools/${encodeURIComponent(name)}`);
        return answer.deleted ? answer : null;
      },
      opts,
    );
  }

  /** Resolves once the pool has at least `count` idle workers. For demos and operators, not the claim path. */
  async waitForIdle(name: string, count: number, opts: { timeoutMs: number }): Promise<void> {
    await this.poll(
      `pool ${name} to have ${count} idle worker(s)`,
      async () => {
        const pool = await this.getPool(name);
        if (!pool) throw new CorralError('pool_not_found', `no pool named ${name}`);
        return (pool.counts.idle ?? 0) >= count ? true : null;
      },
      { timeoutMs: opts.timeoutMs, intervalMs: 250 },
    );
  }

  // --- workers -------------------------------------------------------------------------------

  async listWorkers(filter: { pool?: string; states?: WorkerState[]; limit?: number } = {}): Promise<WorkerResponse[]> {
    const query = new URLSearchParams();
    if (filter.pool !== undefined) query.set('pool', filter.pool);
    if (filter.states !== undefined && filter.states.length > 0) query.set('state', filter.states.join(','));
    if (filter.limit !== undefined) query.set('limit', String(filter.limit));
    const suffix = query.size > 0 ? `?${query}` : '';
    return (await this.call<{ workers: WorkerResponse[] }>('GET', `/v1/workers${suffix}`)).workers;
  }

  async getWorker(workerId: string): Promise<WorkerResponse | null> {
    try {
      return await this.call('GET', `/v1/workers/${encodeURIComponent(workerId)}`);
    } catch (err) {
      if (err instanceof CorralError && err.code === 'not_found') return null;
      throw err;
    }
  }

  /** A worker's audit trail from the registry, oldest first. */
  async history(workerId: string): Promise<{ worker: WorkerResponse; transitions: TransitionResponse[] }> {
    return this.call('GET', `/v1/workers/${encodeURIComponent(workerId)}/history`);
  }

  /** Nothing to close (Node's HTTP agent pools its own connections); kept so callers can treat clients alike. */
  async close(): Promise<void> {}

  // --- plumbing ------------------------------------------------------------------------------

  private get requestTimeoutMs(): number {
    return this.options.requestTimeoutMs ?? defaultRequestTimeoutMs;
  }

  private async call<T>(method: string, path: string, body?: unknown, timeoutMs = this.requestTimeoutMs): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    let res: HttpAnswer;
    try {
      res = await exchange(new URL(`${this.base}${path}`), method, headers, payload, timeoutMs);
    } catch (err) {
      throw new CorralUnreachableError(
        `cannot reach the corral API at ${this.base} (${describeExchangeFailure(err, timeoutMs)})`,
      );
    }
    const { status, text, location } = res;
    if (status >= 300 && status < 400) {
      throw new CorralUnreachableError(
        `${this.base} is not the corral API: it redirects (HTTP ${status}) to ${location ?? 'nowhere'}; use that URL`,
      );
    }
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (status >= 200 && status < 300) return parsed as T;
    const error = parsed as { code?: unknown; message?: unknown; field?: unknown; details?: unknown } | undefined;
    const code = (corralErrorCodes as string[]).includes(String(error?.code))
      ? (error!.code as CorralErrorCode)
      : 'internal';
    throw new CorralError(
      code,
      typeof error?.message === 'string' ? error.message : `the corral API answered HTTP ${status}`,
      typeof error?.field === 'string' ? error.field : undefined,
      typeof error?.details === 'object' && error.details !== null
        ? (error.details as Record<string, unknown>)
        : undefined,
    );
  }

  private async poll<T>(
    what: string,
    attempt: () => Promise<T | null>,
    opts: { timeoutMs?: number; intervalMs?: number },
  ): Promise<T> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
    for (;;) {
      const result = await attempt();
      if (result !== null) return result;
      if (Date.now() >= deadline) throw new CorralError('timeout', `timed out waiting for ${what}`);
      await sleep(opts.intervalMs ?? 500);
    }
  }
}

interface HttpAnswer {
  status: number;
  text: string;
  /** A redirect's target: the API never redirects, so whatever answered is not it. */
  location?: string;
}

/** The largest answer read (a list of workers or a history is far below); a longer one is refused. */
const maxAnswerBytes = 32 * 1024 * 1024;

/**
 * One request and its whole answer, within `timeoutMs`. node:http rather than fetch: fetch's first
 * call in a process loads undici and compiles its WebAssembly HTTP parser, about 100 ms of CPU —
 * more than the rest of a CLI command together (docs/decisions/0024-compiled-cli-and-client-package.md).
 */
function exchange(
  url: URL,
  method: string,
  headers: Record<string, string>,
  payload: string | undefined,
  timeoutMs: number,
): Promise<HttpAnswer> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = transport.request(url, { method, headers, signal: AbortSignal.timeout(timeoutMs) }, (response) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > maxAnswerBytes) {
          request.destroy(new Error(`the answer is larger than ${maxAnswerBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          text: Buffer.concat(chunks).toString('utf8'),
          location: response.headers.location,
        }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(payload);
  });
}

/** Why no answer came: the system error's code (ECONNREFUSED, ENOTFOUND…), or the timeout. */
function describeExchangeFailure(err: unknown, timeoutMs: number): string {
  const failure = err as { code?: unknown; name?: unknown; cause?: { name?: unknown } } | null;
  if (failure?.name === 'AbortError' && failure.cause?.name === 'TimeoutError')
    return `no answer within ${timeoutMs} ms`;
  if (typeof failure?.code === 'string') return failure.code;
  return err instanceof Error ? err.message : String(err);
}
