// The corral API's request and response shapes, as zod schemas: Fastify validates every request
// against them before a handler runs (unknown fields refused, the field named), and the OpenAPI
// document (/openapi.json, docs/api/openapi.json) is generated from the same schemas.
import { z } from 'zod';
import { parseDuration } from '../config/duration';
import { transitionOrigins, lifecycleOperations, workerStates } from '../common';
import { corralErrorCodes } from '../client/errors';

export const maxClaimTimeoutMs = 10 * 60_000;
export const defaultClaimTimeoutMs = 60_000;

const name = z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters');
const epoch = z.number().int('must be an integer').positive('must be positive').max(Number.MAX_SAFE_INTEGER);
const state = z.enum(workerStates);

export const poolParams = z.strictObject({ pool: name });
export const workerParams = z.strictObject({ workerId: name });

export const claimBody = z
  .strictObject({
    tenant: name.describe('who the worker is for'),
    requestId: name.describe(
      'idempotency key: every call with it gets the same lease while that lease is valid, `lease_ended` after',
    ),
    timeout: z
      .union([z.number().int().positive(), z.string().min(1).max(32)])
      .optional()
      .describe('how long to wait for a worker: milliseconds or a duration such as "30s" (default 60s, at most 10m)')
      .refine((value) => {
        if (value === undefined) return true;
        const parsed = typeof value === 'number' ? value : parseDuration(value);
        return parsed !== undefined && Number.isFinite(parsed) && parsed > 0 && parsed <= maxClaimTimeoutMs;
      }, 'must be a duration between 1ms and 10m'),
  })
  .meta({ id: 'ClaimRequest' });

export const leaseSchema = z
  .object({
    pool: z.string(),
    workerId: z.string(),
    epoch: z.number().int().describe('the fencing token: the lease is valid while the worker is claimed at it'),
    endpoint: z.string().describe('where the tenant reaches its worker'),
    tenant: z.string(),
  })
  .meta({ id: 'Lease' });

export const claimResponse = leaseSchema
  .extend({
    path: z.enum(['warm', 'cold']).describe('warm: an idle worker; cold: one spawned for this claim'),
    waitedMs: z
      .number()
      .int()
      .min(0)
      .describe("how long the claim waited in the pool's queue for capacity (0: it did not wait)"),
  })
  .meta({ id: 'ClaimResult' });

export const releaseBody = z
  .strictObject({
    epoch,
    tenant: name.optional().describe('when given, the release is refused unless the lease is this tenant’s'),
  })
  .meta({ id: 'ReleaseRequest' });

export const releaseResponse = z
  .object({ workerId: z.string(), state, epoch: z.number().int() })
  .meta({ id: 'ReleaseResult' });

export const leaseCheckQuery = z.strictObject({
  epoch: z.coerce.number().int('must be an integer').positive('must be positive').max(Number.MAX_SAFE_INTEGER),
});

export const leaseCheckResponse = z
  .object({
    valid: z.boolean(),
    status: z.enum(['valid', 'stale_lease', 'not_claimed', 'row_missing']),
    state: state.nullable(),
    epoch: z.number().int().nullable().describe('the worker’s current epoch'),
    tenant: z.string().nullable().describe('the lease holder, when valid'),
    endpoint: z.string().nullable().describe('where the holder reaches its worker, when valid'),
  })
  .meta({ id: 'LeaseCheck' });

export const workerSchema = z
  .object({
    id: z.string(),
    pool: z.string(),
    image: z.string(),
    state,
    epoch: z.number().int(),
    tenant: z.string().nullable(),
    podName: z.string().nullable(),
    endpoint: z.string().nullable(),
    spawnAttempt: z.number().int(),
    failureReason: z.string().nullable(),
    credentialVersion: z.number().int(),
    credentialExpiresAt: z.string().nullable(),
    claimRequestId: z.string().nullable(),
    stateSince: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Worker' });

export const listWorkersQuery = z.strictObject({
  pool: name.optional(),
  state: z
    .string()
    .optional()
    .describe('comma-separated states')
    .refine(
      (value) => value === undefined || value.split(',').every((s) => (workerStates as readonly string[]).includes(s)),
      `must be comma-separated states (${workerStates.join(', ')})`,
    ),
  limit: z.coerce.number().int().min(1).max(10_000).default(500),
});

export const transitionSchema = z
  .object({
    workerId: z.string(),
    fromState: state.nullable(),
    toState: state,
    epochBefore: z.number().int().nullable(),
    epochAfter: z.number().int(),
    operation: z.enum(lifecycleOperations),
    origin: z.enum(transitionOrigins),
    tenant: z.string().nullable(),
    failureReason: z.string().nullable(),
    at: z.string(),
  })
  .meta({ id: 'Transition' });

export const historyResponse = z
  .object({ worker: workerSchema, transitions: z.array(transitionSchema) })
  .meta({ id: 'WorkerHistory' });

const counts = z.record(z.string(), z.number().int()).describe('live workers by state');

export const poolSummary = z
  .object({
    name: z.string(),
    status: z.enum(['active', 'draining', 'drained']),
    generation: z.number().int(),
    breakerState: z.enum(['closed', 'open', 'half_open']),
    spec: z.record(z.string(), z.unknown()).describe('the applied PoolSpec, defaults filled in, durations in ms'),
    counts,
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Pool' });

export const applyPoolResponse = z
  .object({ pool: poolSummary, created: z.boolean(), changed: z.boolean() })
  .meta({ id: 'ApplyPoolResult' });

export const describePoolResponse = z
  .object({
    pool: poolSummary,
    templateGeneration: z
      .number()
      .int()
      .describe('changes of what workers run (image, args, env, port, health path, protocol, resources)'),
    generations: z
      .array(
        z.object({
          generation: z.number().int().nullable().describe('null: a worker still being started'),
          current: z.boolean(),
          counts: z.record(z.string(), z.number().int()),
        }),
      )
      .describe('live workers by template generation and state, newest first (rolling replacement)'),
    workflow: z
      .record(z.string(), z.unknown())
      .nullable()
      .describe('the pool workflow’s own view (breaker, pending spawns, totals); null if it is not running'),
  })
  .meta({ id: 'PoolDescription' });

export const scalePoolBody = z
  .strictObject({
    minIdle: z.number().int().min(0).optional(),
    maxWorkers: z.number().int().min(1).optional(),
    maxIdle: z.number().int().min(0).optional().describe("demand mode's ceiling on idle workers"),
  })
  .refine(
    (body) => body.minIdle !== undefined || body.maxWorkers !== undefined || body.maxIdle !== undefined,
    'give minIdle, maxWorkers and/or maxIdle',
  )
  .meta({ id: 'ScalePoolRequest' });

export const poolScaleResponse = z
  .object({
    pool: z.string(),
    mode: z.enum(['static', 'demand']),
    minIdle: z.number().int(),
    maxIdle: z.number().int().describe('demand mode: the ceiling on idle workers (maxWorkers unless set)'),
    maxWorkers: z.number().int(),
    effectiveTarget: z.number().int().describe('idle workers the pool keeps now'),
    headroom: z
      .number()
      .int()
      .describe('the burst term of the target: ceil(forecast + burst × √forecast) − ceil(forecast)'),
    claimsPerMinute: z
      .number()
      .describe(
        'the claim rate the target is computed from (max of the last 10 s, the last minute and the busiest minute of the cool-down window)',
      ),
    leadSeconds: z.number().describe('the replenishment lead time: reactionSeconds + spawnSeconds'),
    reactionSeconds: z
      .number()
      .describe(
        "mean time from a recent warm claim to the pool's next reservation of a worker (0 before any is known)",
      ),
    spawnSeconds: z
      .number()
      .describe("mean reservation-to-ready of the pool's recent workers (10 before any is known)"),
    idle: z.number().int(),
    live: z.number().int(),
    waiting: z.number().int().describe("claims waiting in the pool's queue"),
  })
  .meta({ id: 'PoolScale' });

export const deletePoolResponse = z
  .object({ pool: z.string(), deleted: z.boolean(), status: z.enum(['active', 'draining', 'drained', 'deleted']) })
  .meta({ id: 'DeletePoolResult' });

export const errorSchema = z
  .object({
    code: z.enum(corralErrorCodes as [string, ...string[]]),
    message: z.string(),
    field: z.string().optional().describe('for invalid_request: the offending field'),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: 'Error' });

export type ClaimBody = z.output<typeof claimBody>;
export type ClaimResponse = z.output<typeof claimResponse>;
export type ReleaseResponse = z.output<typeof releaseResponse>;
export type LeaseCheckResponse = z.output<typeof leaseCheckResponse>;
export type WorkerResponse = z.output<typeof workerSchema>;
export type TransitionResponse = z.output<typeof transitionSchema>;
export type PoolSummary = z.output<typeof poolSummary>;
export type ApplyPoolResponse = z.output<typeof applyPoolResponse>;
export type DescribePoolResponse = z.output<typeof describePoolResponse>;
export type DeletePoolResponse = z.output<typeof deletePoolResponse>;
export type PoolScaleResponse = z.output<typeof poolScaleResponse>;
export type ErrorBody = z.output<typeof errorSchema>;
