// How the CLI fails: exit 2 for bad usage (the command line or an input file is wrong and running
// it again unchanged cannot help), exit 1 for an operational failure (a server said no or was not
// there), each as one sentence. Stack traces only with --debug.
import { CommanderError } from 'commander';
import { CorralUnreachableError } from '../client/corral-client';
import { CorralError } from '../client/errors';
import { RuntimeInputError } from '../runtime/errors';

export const exitCodes = { ok: 0, failure: 1, usage: 2 } as const;

/** Bad usage detected by corral itself (a value commander cannot check, a malformed file). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** An operational failure already reported in full (e.g. doctor printed its findings). */
export class ReportedFailure extends Error {
  constructor(message = 'failed') {
    super(message);
    this.name = 'ReportedFailure';
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
  if (err instanceof UsageError || err instanceof RuntimeInputError) return exitCodes.usage;
  if (err instanceof CorralError && err.code === 'invalid_request') return exitCodes.usage;
  return exitCodes.failure;
}

/** One line for a person: what went wrong, naming the field or value where there is one. */
export function describeCliError(err: unknown): string {
  if (err instanceof CorralError) {
    const subject = err.field ? `${err.field}: ` : '';
    return `${err.code.replace(/_/g, ' ')}: ${subject}${stripField(err.message, err.field)}`;
  }
  if (err instanceof CorralUnreachableError) return `${err.message}; is corral running? (make start)`;
  if (err instanceof AggregateError && err.errors.length > 0) return describeCliError(err.errors[0]);
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(message)) {
    return `cannot reach a server (${firstLine(message)}); is corral running? (make start)`;
  }
  return firstLine(message);
}

function stripField(message: string, field?: string): string {
  return field && message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}
