// Health outside history: one long-running, heartbeating activity per serving worker probes its
// `/healthz` and returns only when something changed (the worker stopped answering as itself).
// A healthy worker therefore costs no history events at all; heartbeats are not history.
import { setTimeout as delay } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import {
  type WorkerFailureReason,
  workerProtocolV1,
  workerProtocolV2,
  type WorkerProtocolName,
  type WorkerPodRef,
} from '../common';
import type { WorkerMetrics } from '../metrics/worker-metrics';
import type { HealthProbeResult, PodRuntime } from '../runtime/pod-runtime';
import { parseAnswer, readWorkerAnswerBytes } from '../runtime/worker-protocol-client';
import { checkAnswer, deriveWorkerKey, proofHeader, proofHeaders } from '../runtime/worker-protocol-proof';

export interface MonitorWorkerHealthInput {
  ref: WorkerPodRef;
  endpoint: string;
  workerId: string;
  intervalMs: number;
  /** Consecutive failed probes before the verdict. */
  failureThreshold: number;
  /** The pool's protocol: 'corral.worker/v1' only where the pool opted into it (insecure). */
  protocol?: WorkerProtocolName;
}

export interface HealthVerdict {
  status: 'unhealthy';
  reason: WorkerFailureReason;
  detail: string;
  consecutiveFailures: number;
}

/** Heartbeat details: a retried attempt (on another corral worker) resumes the count. */
interface MonitorProgress {
  consecutiveFailures: number;
}

/** One probe: its result (a metric label) and, unless `ok`, what was wrong. */
async function probe(
  input: MonitorWorkerHealthInput,
  signal: AbortSignal,
  masterKey: Buffer | undefined,
): Promise<{ result: HealthProbeResult; problem: string | null }> {
  try {
    // corral.worker/v2: /healthz names no one; a signed probe is answered with the worker's proof.
    const workerKey =
      masterKey && input.protocol !== workerProtocolV1 ? deriveWorkerKey(masterKey, input.workerId) : undefined;
    const headers = workerKey ? proofHeaders(workerKey, 'GET', '/healthz', '') : undefined;
    const res = await fetch(`${input.endpoint}/healthz`, {
      headers,
      signal: AbortSignal.any([signal, AbortSignal.timeout(Math.min(input.intervalMs, 5_000))]),
      redirect: 'manual',
    });
    // Read bounded: a worker's answer never reaches memory, logs or history whole.
    const raw = await readWorkerAnswerBytes(res);
    const body = parseAnswer(raw);
    if (!res.ok) return { result: 'http_error', problem: `HTTP ${res.status}` };
    const itself =
      workerKey && headers
        ? body.protocol === workerProtocolV2 &&
          raw !== null &&
          checkAnswer(workerKey, headers[proofHeader] ?? '', raw, res.headers.get(proofHeader))
        : body.protocol === workerProtocolV1 && body.workerId === input.workerId;
    if (!itself) {
      return {
        result: 'wrong_identity',
        problem: `answers, but not as corral worker ${input.workerId} (${workerKey ? workerProtocolV2 : workerProtocolV1})`,
      };
    }
    return { result: 'ok', problem: null };
  } catch (err) {
    if (signal.aborted) throw err;
    return { result: 'unreachable', problem: err instanceof Error ? err.message : String(err) };
  }
}

export function createHealthActivities(
  runtime: PodRuntime,
  observe: {
    metrics?: WorkerMetrics;
    /** The worker's image, for the probe counter's label (the input does not carry it). */
    imageOf?: (workerId: string) => Promise<string | null>;
    /** corral's worker-protocol master key: probes are signed and answers must prove the worker (v2). */
    workerProtocolKey?: Buffer;
  } = {},
) {
  const { metrics, imageOf, workerProtocolKey } = observe;
  return {
    /**
     * Probes until `failureThreshold` probes in a row fail, then asks the runtime why (a crashed,
     * OOM-killed, evicted or vanished pod has a better name than "stopped answering"). Runs until
     * cancelled while the worker is healthy.
     */
    async monitorWorkerHealth(input: MonitorWorkerHealthInput): Promise<HealthVerdict> {
      const context = Context.current();
      const signal = context.cancellationSignal;
      const resumed = context.info.heartbeatDetails as MonitorProgress | undefined;
      let consecutiveFailures = resumed?.consecutiveFailures ?? 0;
      let lastProblem = '';
      // Looked up once per attempt; a failed lookup labels the probes `unknown`, nothing more.
      const image = metrics && imageOf ? await imageOf(input.workerId).catch(() => null) : null;
      for (;;) {
        context.heartbeat({ consecutiveFailures } satisfies MonitorProgress);
        await delay(input.intervalMs, undefined, { signal });
        const { result, problem } = await probe(input, signal, workerProtocolKey);
        metrics?.countHealthCheck(result, image);
        consecutiveFailures = problem === null ? 0 : consecutiveFailures + 1;
        if (problem !== null) lastProblem = problem;
        if (consecutiveFailures >= input.failureThreshold) break;
      }
      const outcome = await runtime.awaitReady(input.ref, { timeoutMs: Math.min(input.intervalMs, 5_000), signal });
      const detail = `${consecutiveFailures} health probes failed; last: ${lastProblem}`;
      // The worker had served: a short wait that ends on its deadline is its health check failing,
      // not a spawn that timed out (the deadline here is the monitor's own, not a spawn's).
      if (outcome.status === 'failed' && outcome.reason !== 'spawn_timeout') {
        return {
          status: 'unhealthy',
          reason: outcome.reason,
          detail: `${outcome.detail}; ${detail}`,
          consecutiveFailures,
        };
      }
      return { status: 'unhealthy', reason: 'health_check_failed', detail, consecutiveFailures };
    },
  };
}

export type HealthActivities = ReturnType<typeof createHealthActivities>;
