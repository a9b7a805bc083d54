// Input schemas for the lifecycle store. Everything is checked before SQL, so a bad value is a
// RegistryInputError naming its field, never a half-applied write or a database error.
import { z } from 'zod';
import { firstIssue } from '../config/first-issue';
import { lifecycleOperations, transitionOrigins, workerStates } from '../common';
import { RegistryInputError } from './errors';

export const maxIdLength = 128;
export const maxTextLength = 512;

export const workerIdSchema = z.string().min(1, 'must not be empty').max(maxIdLength);
const nameSchema = z.string().min(1, 'must not be empty').max(maxIdLength);
const textSchema = z.string().min(1, 'must not be empty').max(maxTextLength);
export const epochSchema = z
  .number()
  .int('must be an integer')
  .positive('must be positive')
  .max(Number.MAX_SAFE_INTEGER);
export const stateSchema = z.enum(workerStates);
export const operationSchema = z.enum(lifecycleOperations);
export const originSchema = z.enum(transitionOrigins);

export const createWorkerInput = z.strictObject({
  id: workerIdSchema,
  pool: nameSchema,
  image: textSchema,
  podName: textSchema.optional(),
  origin: originSchema,
});

export const patchSchema = z.strictObject({
  tenant: nameSchema.nullable().optional(),
  podName: textSchema.nullable().optional(),
  endpoint: textSchema.nullable().optional(),
  spawnAttempt: z.number().int().min(1).max(1_000_000).optional(),
  failureReason: nameSchema.nullable().optional(),
  credentialVersion: z.number().int().min(0).max(2_147_483_647).optional(),
  credentialExpiresAt: z.date().nullable().optional(),
  claimRequestId: nameSchema.nullable().optional(),
});

export const transitionInput = z.strictObject({
  workerId: workerIdSchema,
  expected: z.strictObject({
    epoch: epochSchema,
    states: z.array(stateSchema).min(1, 'must name at least one state'),
  }),
  to: stateSchema,
  patch: patchSchema.default({}),
  operation: operationSchema,
  origin: originSchema,
});

export const leaseSchema = z.strictObject({ workerId: workerIdSchema, epoch: epochSchema });

export const listWorkersInput = z.strictObject({
  pool: nameSchema.optional(),
  states: z.array(stateSchema).optional(),
  limit: z.number().int().min(1).max(10_000).default(1_000),
});

/** Parses or throws a RegistryInputError naming the first offending field (e.g. `expected.epoch`). */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const { field, message } = firstIssue(result.error);
  throw new RegistryInputError(field, message);
}
