// Every Kubernetes API call corral makes goes through here: a per-request timeout (client-node
// has none by default), the caller's abort signal, a small bounded retry for transient failures
// (429, 5xx, connection errors), and a translation of 403 into an error naming the verb and
// resource — or, when a ResourceQuota refused it, into a quota error (a capacity problem).
import { ApiException, Observable, type ConfigurationOptions } from '@kubernetes/client-node';
import { RuntimeForbiddenError, RuntimeQuotaExceededError, RuntimeUnavailableError } from '../errors';

/** Per-call options that abort the HTTP request after `timeoutMs` (or when `signal` aborts). */
export function timeoutOptions(bound: number | AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(typeof bound === 'number' ? AbortSignal.timeout(bound) : bound);
          return new Observable(Promise.resolve(context));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

export function statusCodeOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

const networkErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_SOCKET',
]);

/**
 * May succeed later: 429, 5xx, network failures and timeouts. Anything else without an HTTP
 * status (no current cluster, a failing credential plugin) is a configuration error, raised at
 * once rather than dressed up as "unreachable" after the bound.
 */
export function isTransient(err: unknown): boolean {
  const code = statusCodeOf(err);
  if (code !== undefined) return code === 429 || code >= 500;
  const e = err as { code?: unknown; name?: unknown; type?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' && networkErrorCodes.has(e.code)) return true;
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return true;
  if (e?.type === 'system' || e?.type === 'request-timeout' || e?.type === 'aborted') return true; // node-fetch FetchError
  // Our own watch stream's bounds (no headers in time, silence, a cut connection).
  return (
    typeof e?.message === 'string' &&
    /^(no response to the watch|watch stream silent|watch connection closed)/.test(e.message)
  );
}

export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { message?: string };
      if (body?.message) return `${err.code}: ${body.message}`;
    } catch {
      // Not a Status object; fall through to the generic text.
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * The ResourceQuota admission plugin's refusals (k8s.io/apiserver …/resourcequota/controller.go):
 * "exceeded quota: <name>, requested: …" (namespace full) and "status unknown for quota: <name>"
 * (no usage calculated yet: the quota controller has not caught up). Both are 403 Forbidden. Not
 * "failed quota: <name>: must specify …": that one says the pod spec lacks requests/limits the
 * quota needs, a spec problem that a retry cannot fix.
 */
const quotaRefusal = /exceeded quota|status unknown for quota/i;

export function isQuotaRefusal(err: unknown): boolean {
  return statusCodeOf(err) === 403 && quotaRefusal.test(apiMessage(err));
}

export interface ApiCallContext {
  verb: string;
  resource: string;
  namespace: string;
  /** Attempts for transient failures, the first included. */
  attempts: number;
  /** First backoff; doubles each attempt. */
  backoffMs: number;
  /**
   * The caller's cancellation: checked before every attempt and during the backoff. Once it has
   * aborted, its reason is thrown (never dressed up as "unavailable"). The request itself must be
   * given the same signal (see `timeoutOptions`).
   */
  signal?: AbortSignal;
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Runs `call`, retrying transient failures a bounded number of times. A 403 becomes a
 * RuntimeForbiddenError, exhausted retries a RuntimeUnavailableError; other API errors (404,
 * 409, 422) are rethrown untouched for the caller to interpret.
 */
export async function callKubernetes<T>(context: ApiCallContext, call: () => Promise<T>): Promise<T> {
  const { signal } = context;
  let lastError: unknown;
  for (let attempt = 1; attempt <= context.attempts; attempt++) {
    signal?.throwIfAborted();
    try {
      return await call();
    } catch (err) {
      // An aborted request fails with an AbortError: the caller's reason is the truth.
      signal?.throwIfAborted();
      const code = statusCodeOf(err);
      if (code === 403) {
        if (isQuotaRefusal(err))
          throw new RuntimeQuotaExceededError(context.resource, context.namespace, apiMessage(err));
        throw new RuntimeForbiddenError(context.verb, context.resource, context.namespace, apiMessage(err));
      }
      if (!isTransient(err)) throw err;
      lastError = err;
      if (attempt < context.attempts) await sleep(context.backoffMs * 2 ** (attempt - 1), signal);
    }
  }
  throw new RuntimeUnavailableError(
    `kubernetes API unavailable: ${context.verb} ${context.resource} in "${context.namespace}" failed ${context.attempts} times (${apiMessage(lastError)})`,
    { cause: lastError },
  );
}
