// corral's side of the worker protocol's activation call (DESIGN, "Worker protocol"), shared by the
// lifecycle activities and the corral API's hand-over: POST /activate {workerId, epoch, tenant}.
// The answer is typed: accepted, refused (the worker has seen a higher epoch, or the body was
// wrong), or failed (unreachable, timed out, 5xx). Every call is bounded by `signal`.

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
