// corral's side of the worker protocol's calls (DESIGN, "Worker protocol"):
// - POST /activate {workerId, epoch, tenant}, shared by the lifecycle activities and the corral
//   API's hand-over. The answer is typed: accepted, refused (the worker has seen a higher epoch,
//   or the body was wrong), or failed (unreachable, timed out, 5xx).
// - POST /drain {workerId, epoch}: drained, still draining, refused, or unreachable.
// Every call is bounded by `signal`.

export type ActivationAnswer =
  | { outcome: 'accepted'; credentialVersion: number }
  | { outcome: 'refused'; status: number; error: string | null; highestEpoch: number | null }
  | { outcome: 'failed'; detail: string };

export async function postActivation(
  endpoint: string,
  body: { workerId: string; epoch: number; tenant: string | null },
  signal: AbortSignal,
): Promise<ActivationAnswer> {
  let res: Response;
  try {
    res = await fetch(`${endpoint}/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
      redirect: 'manual',
    });
  } catch (err) {
    return { outcome: 'failed', detail: err instanceof Error ? err.message : String(err) };
  }
  // A worker's error text is cut short: it ends up in logs and activity failures.
  const answer = (await res.json().catch(() => ({}))) as {
    credentialVersion?: unknown;
    error?: unknown;
    highestEpoch?: unknown;
  };
  if (res.ok && typeof answer.credentialVersion === 'number') {
    return { outcome: 'accepted', credentialVersion: answer.credentialVersion };
  }
  if (res.status === 409 || res.status === 400) {
    return {
      outcome: 'refused',
      status: res.status,
      error: typeof answer.error === 'string' ? answer.error.slice(0, 200) : null,
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
): Promise<WorkerDrainAnswer> {
  let res: Response;
  try {
    res = await fetch(`${endpoint}/drain`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
      redirect: 'manual',
    });
  } catch (err) {
    return {
      outcome: 'unreachable',
      acknowledged: false,
      drained: false,
      detail: err instanceof Error ? err.message : String(err),
    };
  }
  const answer = (await res.json().catch(() => ({}))) as { drained?: unknown; error?: unknown };
  if (res.ok) {
    const drained = answer.drained !== false;
    return { outcome: drained ? 'drained' : 'draining', acknowledged: true, drained };
  }
  if (res.status === 409) {
    return {
      outcome: 'refused',
      acknowledged: false,
      drained: false,
      error: typeof answer.error === 'string' ? answer.error.slice(0, 200) : null,
    };
  }
  return { outcome: 'unreachable', acknowledged: false, drained: false, detail: `drain answered HTTP ${res.status}` };
}
