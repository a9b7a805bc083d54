// A real Prometheus (Debian's 2.42, provisioned by scripts/provision-tools.sh) as a child process:
// a free loopback port, its own temporary data directory and a generated config that scrapes the
// given targets every second and evaluates the given rule files every second. Resolved once
// /-/ready answers (bounded); stop() ends the process and removes the directory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { failOnExit, startProcess, type ManagedProcess } from '../../src/embedded/child-process';
import { freePort } from '../../src/embedded/ports';
import { toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';

export interface ScrapeTarget {
  /** The scrape job's name (the `job` label). */
  job: string;
  /** A /metrics URL, e.g. `http://127.0.0.1:41234/metrics`. */
  url: string;
}

export interface PromSample {
  metric: Record<string, string>;
  /** [unix seconds, value as Prometheus writes it: "1", "NaN", "+Inf"]. */
  value: [number, string];
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt?: string;
  value: string;
}

export interface PromRule {
  name: string;
  type: 'alerting' | 'recording';
  query: string;
  duration?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  health: string;
  lastError?: string;
  state?: string;
  alerts?: PromAlert[];
}

export interface PromRuleGroup {
  name: string;
  file: string;
  interval: number;
  rules: PromRule[];
}

/** An error answer of the HTTP API (a PromQL parse error is `errorType: bad_data`). */
export class PromQueryError extends Error {
  constructor(
    readonly errorType: string,
    message: string,
  ) {
    super(message);
    this.name = 'PromQueryError';
  }
}

export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly proc: ManagedProcess;
  /** The config file written for this instance (kept for a failed test's log). */
  readonly configFile: string;
  /** An instant query (`/api/v1/query`), at `time` (unix seconds) or now; a vector's samples. */
  query(expr: string, time?: number): Promise<PromSample[]>;
  /** `/api/v1/label/<name>/values`, optionally restricted to series matching `match`. */
  labelValues(name: string, match?: string): Promise<string[]>;
  rules(): Promise<PromRuleGroup[]>;
  alerts(): Promise<PromAlert[]>;
  /** The scrape targets with their health (`up`, `down`, `unknown`) and last error. */
  targets(): Promise<{ job: string; health: string; lastError: string; scrapeUrl: string }[]>;
  stop(): Promise<void>;
}

const requestTimeoutMs = 10_000;

/** YAML is a superset of JSON: the config is written as JSON, no YAML library needed. */
function configText(targets: ScrapeTarget[], ruleFiles: string[], intervalSeconds: number): string {
  return JSON.stringify(
    {
      global: {
        scrape_interval: `${intervalSeconds}s`,
        scrape_timeout: `${intervalSeconds}s`,
        evaluation_interval: `${intervalSeconds}s`,
      },
      rule_files: ruleFiles,
      scrape_configs: targets.map((t) => {
        const url = new URL(t.url);
        return {
          job_name: t.job,
          scheme: url.protocol.replace(':', ''),
          metrics_path: url.pathname,
          static_configs: [{ targets: [url.host] }],
        };
      }),
    },
    null,
    2,
  );
}

async function api<T>(base: string, pathAndQuery: string): Promise<T> {
  const res = await fetch(`${base}${pathAndQuery}`, { signal: AbortSignal.timeout(requestTimeoutMs) });
  const body = (await res.json()) as { status: string; data?: T; errorType?: string; error?: string };
  if (body.status !== 'success') {
    throw new PromQueryError(body.errorType ?? `HTTP ${res.status}`, body.error ?? JSON.stringify(body));
  }
  return body.data as T;
}

export async function startPrometheus(opts: {
  targets: ScrapeTarget[];
  /** Rule files to load (absolute paths); checked by Prometheus at start. */
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval, seconds (default 1). */
  intervalSeconds?: number;
  /** Bound on the start (default 60 s). */
  readyTimeoutMs?: number;
  name?: string;
}): Promise<RunningPrometheus> {
  const binary = toolPath('prometheus');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(configFile, configText(opts.targets, opts.ruleFiles ?? [], opts.intervalSeconds ?? 1));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = startProcess(opts.name ?? 'prometheus', binary, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // Nothing outlives the test: no WAL compression work to wait for, short retention.
    '--storage.tsdb.retention.time=1d',
    '--log.level=info',
  ]);
  const stop = async () => {
    await proc.stop(15_000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      failOnExit(proc),
      waitFor(
        async () => {
          const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
          await res.body?.cancel();
          return res.ok;
        },
        { what: `Prometheus ready on ${url} (log: ${proc.logFile})`, timeoutMs: opts.readyTimeoutMs ?? 60_000 },
      ),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    proc,
    configFile,
    async query(expr, time) {
      const params = new URLSearchParams({ query: expr });
      if (time !== undefined) params.set('time', String(time));
      const data = await api<{ resultType: string; result: unknown }>(url, `/api/v1/query?${params}`);
      if (data.resultType === 'vector') return data.result as PromSample[];
      if (data.resultType === 'scalar') return [{ metric: {}, value: data.result as [number, string] }];
      throw new PromQueryError('unexpected', `${expr}: result type ${data.resultType}, want an instant vector`);
    },
    labelValues: (name, match) =>
      api<string[]>(
        url,
        `/api/v1/label/${encodeURIComponent(name)}/values${match ? `?${new URLSearchParams({ 'match[]': match })}` : ''}`,
      ),
    rules: async () => (await api<{ groups: PromRuleGroup[] }>(url, '/api/v1/rules')).groups,
    alerts: async () => (await api<{ alerts: PromAlert[] }>(url, '/api/v1/alerts')).alerts,
    targets: async () =>
      (
        await api<{
          activeTargets: { labels: Record<string, string>; health: string; lastError: string; scrapeUrl: string }[];
        }>(url, '/api/v1/targets?state=active')
      ).activeTargets.map((t) => ({
        job: t.labels.job ?? '',
        health: t.health,
        lastError: t.lastError,
        scrapeUrl: t.scrapeUrl,
      })),
    stop,
  };
}
