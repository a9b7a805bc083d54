// Waiting, visibly: on a terminal, a spinner appears once a wait passes one second; otherwise (a
// pipe, CI, --json) plain lines on stderr so stdout stays parseable.
import { createSpinner } from 'nanospinner';

const spinnerAfterMs = 1_000;

export async function withProgress<T>(
  label: string,
  work: () => Promise<T>,
  opts: { json?: boolean } = {},
): Promise<T> {
  const started = Date.now();
  const interactive = process.stdout.isTTY === true && !opts.json;
  if (!interactive) {
    process.stderr.write(`${label}...\n`);
    try {
      const result = await work();
      process.stderr.write(`${label}: done in ${formatSeconds(Date.now() - started)}\n`);
      return result;
    } catch (err) {
      process.stderr.write(`${label}: failed after ${formatSeconds(Date.now() - started)}\n`);
      throw err;
    }
  }
  let spinner: ReturnType<typeof createSpinner> | undefined;
  const timer = setTimeout(() => {
    spinner = createSpinner(label, { stream: process.stdout }).start();
  }, spinnerAfterMs);
  try {
    const result = await work();
    spinner?.success({ text: `${label}: done in ${formatSeconds(Date.now() - started)}` });
    return result;
  } catch (err) {
    spinner?.error({ text: `${label}: failed after ${formatSeconds(Date.now() - started)}` });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function formatSeconds(elapsedMs: number): string {
  return `${(elapsedMs / 1000).toFixed(1)}s`;
}
