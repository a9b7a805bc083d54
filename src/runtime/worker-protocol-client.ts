// corral's side of the worker protocol's calls (docs/worker-protocol.md):
// - POST /activate {workerId, epoch, tenant}, shared by the lifecycle activities and the corral
//   API's hand-over. The answer is typed: accepted, refused (the worker has seen a higher epoch,
//   or the body was wrong), or failed (unreachable, timed out, 5xx).
// - POST /drain {workerId, epoch}: drained, still draining, refused, or unreachable.
// With a worker key (corral.worker/v2, docs/worker-protocol.md) every call is signed and only an
// answer carrying the worker's proof counts. Every call is bounded by `signal`. What a worker
// sends back is bounded before anything keeps it: at most `maxWorkerAnswerBytes` of a body are read, and any text taken from it is cut to
// `maxWorkerTextLength` characters (it ends up in logs, activity failures and so in history).
import { checkAnswer, proofHeader, proofHeaders } from './worker-protocol-proof';

/** The most of a worker's answer that is read; the rest is discarded unread. */
export const maxWorkerAnswerBytes = 64 * 1024;
/** The most characters of any text a worker sends that corral keeps (errors, details). */
export const maxWorkerTextLength = 256;

/** `text` cut to `maxWorkerTextLength` characters (UTF-16 code units, never a lone half of a pair). */
export function capWorkerText(text: string): string {
  if (text.length <= maxWorkerTextLength) return text;
  let end = maxWorkerTextLength;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end);
}

/**
 * The answer's JSON object, reading at most `maxWorkerAnswerBytes` (a longer body is cut short,
 * so it does not parse, and counts as no answer). Never throws.
 */
export async function readWorkerAnswer(res: Response): Promise<Record<string, unknown>> {
  return parseAnswer(await readWorkerAnswerBytes(res));
}

export function parseAnswer(raw: Buffer | null): Record<string, unknown> {
  if (raw === null) return {};
  try {
    const parsed = JSON.parse(raw.toString('utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/** The answer's bytes, or null past `maxWorkerAnswerBytes` (the rest is never read). Never throws. */
export async function readWorkerAnswerBytes(res: Response): Promise<Buffer | null> {
  const body = res.body;
  if (!body) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxWorkerAnswerBytes) {
        truncated = true;
        break;
      }
      chunks.push(value);
    }
  } catch {
    truncated = true;
  } finally {
    if (truncated) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return truncated ? null : Buffer.concat(chunks);
}

/**
 * corral.worker/v2: the worker's key (deriveWorkerKey). With it a call is signed, and an answer
 * counts only if it carries the worker's proof (anything else is `unproven`: not this worker).
 */
export interface CallSigning {
  workerKey: Buffer;
}

interface SentCall {
  res: Response;
  /** null when the answer was longer than the read cap. */
  raw: Buffer | null;
  /** Without signing: true. With it: whether the answer carries the worker's proof. */
  proven: boolean;
}

async function send(
  endpoint: string,
  path: '/activate' | '/drain',
  body: object,
  signal: AbortSignal,
  signing: CallSigning | undefined,
): Promise<SentCall> {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signing) Object.assign(headers, proofHeaders(signing.workerKey, 'POST', path, text));
  const res = await fetch(`${endpoint}${path}`, { method: 'POST', headers, body: text, signal, redirect: 'manual' });
  const raw = await readWorkerAnswerBytes(res);
  const proven =
    !signing ||
    (raw !== null && checkAnswer(signing.workerKey, headers[proofHeader] ?? '', raw, res.headers.get(proofHeader)));
  return { res, raw, proven };
}

function errorText(value: unknown): string | null {
  return typeof value === 'string' ? capWorkerText(value) : null;
}

function failureText(err: unknown): string {
  return capWorkerText(err instanceof Error ? err.message : String(err));
}

/** `unproven` (signed calls only): what answered did not prove it holds the worker's key. */
export type ActivationAnswer =
  | { outcome: 'accepted'; credentialVersion: number }
  | { outcome: 'refused'; status: number; error: string | null; highestEpoch: number | null }
  | { outcome: 'failed'; detail: string; unproven?: true };

export async function postActivation(
  endpoint: string,
  body: { workerId: string; epoch: number; tenant: string | null },
  signal: AbortSignal,
  signing?: CallSigning,
): Promise<ActivationAnswer> {
  let call: SentCall;
  try {
    call = await send(endpoint, '/activate', body, signal, signing);
  } catch (err) {
    return { outcome: 'failed', detail: failureText(err) };
  }
  const { res } = call;
  // A worker's answer is read bounded and its error text cut short: it ends up in logs and activity failures.
  const answer = parseAnswer(call.raw);
  // v2: the worker refused corral's proof, or its absence (another worker, or a clock out of step).
  if (res.status === 401) {
    return { outcome: 'refused', status: 401, error: errorText(answer.error), highestEpoch: null };
  }
  if (!call.proven) {
    return {
      outcome: 'failed',
      detail: `the answer (HTTP ${res.status}) carries no proof of worker ${body.workerId}`,
      unproven: true,
    };
  }
  if (res.ok && typeof answer.credentialVersion === 'number') {
    return { outcome: 'accepted', credentialVersion: answer.credentialVersion };
  }
  if (res.status === 409 || res.status === 400) {
    return {
      outcome: 'refused',
      status: res.status,
      error: errorText(answer.error),
      highestEpoch: typeof answer.highestEpoch === 'number' ? answer.highestEpoch : null,
    };
  }
  return { outcome: 'failed', detail: `activation answered HTTP ${res.status}` };
}

/**
 * `acknowledged`: the worker took the drain. `drained`: it has finished its work (a worker that
 * does not say, one speaking the protocol before `drained` existed, has nothing to wait for).
 */
export type WorkerDrainAnswer =
  | { outcome: 'drained' | 'draining'; acknowledged: true; drained: boolean }
  | { outcome: 'refused'; acknowledged: false; drained: false; error: string | null }
  | { outcome: 'unreachable'; acknowledged: false; drained: false; detail: string };

export async function postDrain(
  endpoint: string,
  body: { workerId?: string; epoch?: number },
  signal: AbortSignal,
  signing?: CallSigning,
): Promise<WorkerDrainAnswer> {
  let call: SentCall;
  try {
    call = await send(endpoint, '/drain', body, signal, signing);
  } catch (err) {
    return {
      outcome: 'unreachable',
      acknowledged: false,
      drained: false,
      detail: failureText(err),
    };
  }
  const { res } = call;
  const answer = parseAnswer(call.raw);
  // v2: a refused proof, or an answer without the worker's proof: not this worker, nothing drained.
  if (res.status === 401 || !call.proven) {
    return {
      outcome: 'refused',
      acknowledged: false,
      drained: false,
      error: res.status === 401 ? errorText(answer.error) : 'unproven_answer',
    };
  }
  if (res.ok) {
    const drained = answer.drained !== false;
    return { outcome: drained ? 'drained' : 'draining', acknowledged: true, drained };
  }
  if (res.status === 409) {
    return {
      outcome: 'refused',
      acknowledged: false,
      drained: false,
      error: errorText(answer.error),
    };
  }
  return { outcome: 'unreachable', acknowledged: false, drained: false, detail: `drain answered HTTP ${res.status}` };
}
