// Turns a zod failure into the one thing a person needs: which field, and what is wrong with it.
import type { z } from 'zod';

export interface FieldIssue {
  /** Dotted path of the offending input, e.g. `resources.limits.memoryMiB`; `input` for the root. */
  field: string;
  message: string;
}

export function firstIssue(error: z.ZodError): FieldIssue {
  const issue = error.issues[0];
  const path = issue ? issue.path.map(String) : [];
  // An unknown key is named itself (`colour`), not its parent object.
  if (issue?.code === 'unrecognized_keys' && issue.keys.length > 0) {
    return { field: [...path, issue.keys[0]!].join('.'), message: 'is not a known field' };
  }
  return { field: path.length > 0 ? path.join('.') : 'input', message: issue?.message ?? 'is invalid' };
}
