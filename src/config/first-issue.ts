// Turns a zod failure into the one thing a person needs: which field, and what is wrong with it.
import type { z } from 'zod';

export interface FieldIssue {
  /** Dotted path of the offending input, e.g. `resources.limits.memoryMiB`; `input` for the root. */
  field: string;
  message: string;
}

export function firstIssue(error: z.ZodError): FieldIssue {
  const issue = error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : 'input';
  return { field, message: issue?.message ?? 'is invalid' };
}
