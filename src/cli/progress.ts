// Waiting, visibly: once a wait passes one second, a spinner on a terminal; otherwise (a pipe,
// CI, --json) plain lines on stderr, so stdout stays parseable. Quick waits print nothing.
import { createSpinner } from 'nanospinner';

const visibleAfterMs = 1_000;

export async function withProgress<T>(
  label: string,
  work: () => Promise<T>,
  opts: { json?: boolean } = {},
): Promise<T> {
  const started = Date.now();
  // A pty without a size (columns 0, e.g. `script`, some CI runners) would make nanospinner divide
  // by zero and redraw forever: such a terminal gets plain lines too.
  const interactive = process.stdout.isTTY === true && (process.stdout.columns ?? 0) > 0 && !opts.json;
  let spinner: ReturnType<typeof createSpinner> | undefined;
  let announced = false;
  const timer = setTimeout(() => {
    announced = true;
    if (interactive) spinner = createSpinner(label, { stream: process.stdout }).start();
    else process.stderr.write(`${label}...\n`);
  }, visibleAfterMs);
  const finish = (outcome: 'done in' | 'failed after') => {
    if (!announced) return;
    const text = `${label}: ${outcome} ${((Date.now() - started) / 1000).toFixed(1)}s`;
    if (!spinner) process.stderr.write(`${text}\n`);
    else if (outcome === 'done in') spinner.success({ text });
    else spinner.error({ text });
  };
  try {
    const result = await work();
    finish('done in');
    return result;
  } catch (err) {
    finish('failed after');
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
