// Workflows used only by the smoke tests that prove the Temporal servers are real.
import { sleep } from '@temporalio/workflow';

export interface SleepResult {
  /** Workflow time (the server's clock) when the workflow started and when its timer fired. */
  startedAtMs: number;
  wokeAtMs: number;
}

export async function sleepForDaysWorkflow(days: number): Promise<SleepResult> {
  const startedAtMs = Date.now();
  await sleep(`${days} days`);
  return { startedAtMs, wokeAtMs: Date.now() };
}

export async function greetingWorkflow(name: string): Promise<string> {
  return `hello, ${name}`;
}
