// PoolSpec: what an operator writes (pool.yaml, `applyPool`) to describe a pool of workers.
// Validated with floors before anything starts, so a bad value is one PoolSpecError naming its
// field (`deadlines.spawn: must be at least 10s`), never a pool that half-starts. Durations are
// written the way Temporal writes them ("30s", "5m", "1h", or milliseconds), parsed by `ms`.
import ms from 'ms';
import { parseDuration } from './duration';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  type WorkerLifecycleSettings,
  releasePolicies,
  runtimeKinds,
  workerProtocolV2,
  workerProtocols,
  type WorkerProtocolName,
} from '../common';
import { firstIssue } from './first-issue';
import { envValueSchema } from '../runtime/worker-pod-spec';

export class PoolSpecError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'PoolSpecError';
  }
}

const second = 1_000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;

/** A duration as a Temporal-style string or milliseconds, bounded below by `floorMs`. */
function duration(floorMs: number, ceilingMs = 3_650 * day) {
  return z
    .union([z.number(), z.string()])
    .transform((value, ctx) => {
      const parsed = typeof value === 'number' ? value : parseDuration(value);
      if (parsed === undefined || !Number.isFinite(parsed) || !Number.isInteger(parsed)) {
        ctx.addIssue({
          code: 'custom',
          message: `is not a duration (e.g. "30s", "5m", "1h"): ${JSON.stringify(value)}`,
        });
        return z.NEVER;
      }
      return parsed;
    })
    .refine((msValue) => msValue >= floorMs, `must be at least ${ms(floorMs)}`)
    .refine((msValue) => msValue <= ceilingMs, `must be at most ${ms(ceilingMs)}`);
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const resourceAmounts = z.strictObject({
  cpuMillis: z.number().int('must be a whole number of millicores').positive('must be positive'),
  memoryMiB: z.number().int('must be a whole number of MiB').positive('must be positive'),
});

/** Env names that look like they hold a secret (case-insensitive): their values must be Secret references. */
export const secretLookingEnvName = /PASSWORD|TOKEN|SECRET|KEY/i;
export const looksSecret = (name: string): boolean => secretLookingEnvName.test(name);

/** How many idle workers a pool keeps: `minIdle` always, or as many as demand asks between minIdle and maxIdle. */
export const warmCapacityModes = ['static', 'demand'] as const;

/** What a claim on a full pool does: wait its turn (within its timeout) or get `at_capacity` at once. */
export const onFullPolicies = ['wait', 'reject'] as const;

export const poolSpecSchema = z
  .strictObject({
    // Pod names are `<pool>-<workerId>-<attempt>` ≤ 63; 20 leaves room for the rest.
    name: z.string().max(20, 'must be at most 20 characters').regex(dnsLabel, 'must be a DNS label (a-z, 0-9, "-")'),
    runtime: z.enum(runtimeKinds),
    image: z.string().min(1, 'must not be empty').max(512),
    args: z.array(z.string().max(4_096)).max(64).default([]),
    /** Literal strings or Secret references (decision 0021); names that look secret must be references. */
    env: z.record(z.string(), envValueSchema).default({}),
    port: z.number().int().min(1).max(65_535).default(8080),
    /** null: the image has no health hook, so corral does not probe it. */
    healthPath: z.string().startsWith('/', 'must be an absolute URL path').nullable().default('/healthz'),
    /**
     * The worker protocol its image speaks: corral.worker/v2 (signed) unless the pool opts into
     * corral.worker/v1, which anyone who can reach a worker can activate or drain (insecure;
     * docs/worker-protocol.md). Fixed until the pool has drained.
     */
    workerProtocol: z.enum(workerProtocols).default(workerProtocolV2),
    resources: z
      .strictObject({ requests: resourceAmounts, limits: resourceAmounts })
      .default({ requests: { cpuMillis: 100, memoryMiB: 128 }, limits: { cpuMillis: 1_000, memoryMiB: 512 } }),
    minIdle: z.number().int().min(0, 'must be at least 0').max(10_000),
    maxWorkers: z.number().int().min(1, 'must be at least 1').max(10_000),
    /**
     * A claim that finds no warm worker and no free slot: `wait` in the pool's fair queue within
     * its timeout (decision 0034), or `reject` at once with `at_capacity`.
     */
    onFull: z.enum(onFullPolicies).default('wait'),
    /**
     * The most workers one tenant may hold (claimed and hot_idle, and cold ones being made for it):
     * a claim over it is refused at once with `quota_exceeded`. Unset: no per-tenant limit.
     */
    maxPerTenant: z.number().int().min(1, 'must be at least 1').max(10_000).optional(),
    /** Per-tenant overrides of maxPerTenant (0 bars the tenant), by tenant id. */
    tenantQuotas: z
      .record(
        z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters'),
        z.number().int().min(0, 'must be at least 0').max(10_000),
      )
      .refine((quotas) => Object.keys(quotas).length <= 1_000, 'must name at most 1000 tenants')
      .optional(),
    /**
     * Demand-driven warm capacity (decision 0035): in `demand` mode the pool keeps
     * clamp(minIdle, forecast + headroom, maxIdle) idle workers from the observed claim rate, and
     * retires idle workers beyond that once demand has cooled down for `coolDown`.
     */
    warmCapacity: z
      .strictObject({
        mode: z.enum(warmCapacityModes).default('static'),
        /** The most idle workers demand may ask for (default: maxWorkers). */
        maxIdle: z.number().int().min(0, 'must be at least 0').max(10_000).optional(),
        /** How long the claim rate is remembered: the target falls only as a burst leaves this window. */
        coolDown: duration(1 * minute, 1 * day).default(10 * minute),
        /** Headroom in standard deviations of the forecast (Poisson): ceil(burst × √forecast). */
        burst: z.number().min(0, 'must be at least 0').max(10, 'must be at most 10').default(2),
      })
      .default({ mode: 'static', coolDown: 10 * minute, burst: 2 }),
    /**
     * Rolling replacement (decision 0036): when the pod template changes, idle workers of older
     * generations are replaced with up to this many extra idle workers at a time (new ones
     * first); at maxWorkers, idle capacity dips by at most this much instead.
     */
    maxSurge: z.number().int().min(1, 'must be at least 1').max(1_000).default(1),
    /** Spawns started per minute while refilling. */
    refillPerMinute: z.number().int().min(1, 'must be at least 1').max(10_000).default(30),
    releasePolicy: z.enum(releasePolicies).default('hot_idle'),
    maxSpawnAttempts: z.number().int().min(1, 'must be at least 1').max(100).default(3),
    deadlines: z
      .strictObject({
        spawn: duration(10 * second).default(2 * minute),
        activation: duration(1 * second).default(30 * second),
        /** null: an idle worker is kept until its max lifetime. */
        idleTtl: duration(1 * minute)
          .nullable()
          .default(null),
        hotIdleTtl: duration(1 * second).default(10 * minute),
        maxLifetime: duration(10 * minute).default(7 * day),
        drain: duration(0).default(10 * minute),
      })
      .default({
        spawn: 2 * minute,
        activation: 30 * second,
        idleTtl: null,
        hotIdleTtl: 10 * minute,
        maxLifetime: 7 * day,
        drain: 10 * minute,
      }),
    health: z
      .strictObject({
        interval: duration(1 * second).default(10 * second),
        failureThreshold: z.number().int().min(1, 'must be at least 1').max(100).default(3),
      })
      .default({ interval: 10 * second, failureThreshold: 3 }),
    credentials: z
      .strictObject({
        ttl: duration(5 * minute).default(1 * hour),
        refreshLead: duration(10 * second).default(5 * minute),
      })
      .default({ ttl: 1 * hour, refreshLead: 5 * minute }),
    breaker: z
      .strictObject({
        /** Consecutive spawn failures that open the breaker. */
        failureThreshold: z.number().int().min(1, 'must be at least 1').max(1_000).default(5),
        cooldown: duration(1 * second).default(1 * minute),
        /** Successful probe spawns in half-open that close it again. */
        successThreshold: z.number().int().min(1, 'must be at least 1').max(100).default(1),
      })
      .default({ failureThreshold: 5, cooldown: 1 * minute, successThreshold: 1 }),
  })
  .superRefine((spec, ctx) => {
    for (const [name, value] of Object.entries(spec.env)) {
      if (typeof value === 'string' && looksSecret(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['env', name],
          message:
            'looks like a secret, so it must not be a literal value (it would be stored in Temporal histories and ' +
            'the registry): use { valueFrom: { secretKeyRef: { name, key } } }',
        });
      }
    }
    if (spec.maxPerTenant !== undefined && spec.maxPerTenant > spec.maxWorkers) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxPerTenant'],
        message: `must not exceed maxWorkers (${spec.maxWorkers})`,
      });
    }
    for (const [tenant, quota] of Object.entries(spec.tenantQuotas ?? {})) {
      if (quota > spec.maxWorkers) {
        ctx.addIssue({
          code: 'custom',
          path: ['tenantQuotas', tenant],
          message: `must not exceed maxWorkers (${spec.maxWorkers})`,
        });
      }
    }
    const maxIdle = spec.warmCapacity.maxIdle;
    if (maxIdle !== undefined && (maxIdle < spec.minIdle || maxIdle > spec.maxWorkers)) {
      ctx.addIssue({
        code: 'custom',
        path: ['warmCapacity', 'maxIdle'],
        message: `must be between minIdle (${spec.minIdle}) and maxWorkers (${spec.maxWorkers})`,
      });
    }
    if (spec.minIdle > spec.maxWorkers) {
      ctx.addIssue({ code: 'custom', path: ['minIdle'], message: `must not exceed maxWorkers (${spec.maxWorkers})` });
    }
    if (spec.credentials.refreshLead >= spec.credentials.ttl) {
      ctx.addIssue({
        code: 'custom',
        path: ['credentials', 'refreshLead'],
        message: `must be shorter than credentials.ttl (${ms(spec.credentials.ttl)})`,
      });
    }
    if (spec.deadlines.maxLifetime <= spec.deadlines.spawn + spec.deadlines.activation) {
      ctx.addIssue({
        code: 'custom',
        path: ['deadlines', 'maxLifetime'],
        message: 'must be longer than the spawn and activation deadlines together',
      });
    }
    for (const kind of ['cpuMillis', 'memoryMiB'] as const) {
      if (spec.resources.limits[kind] < spec.resources.requests[kind]) {
        ctx.addIssue({ code: 'custom', path: ['resources', 'limits', kind], message: 'must be at least the request' });
      }
    }
  });

export type PoolSpecInput = z.input<typeof poolSpecSchema>;
export type PoolSpec = z.output<typeof poolSpecSchema>;

/** Parses a pool spec or throws a PoolSpecError naming the first offending field. */
export function parsePoolSpec(input: unknown): PoolSpec {
  const result = poolSpecSchema.safeParse(input);
  if (result.success) return result.data;
  const { field, message } = firstIssue(result.error);
  throw new PoolSpecError(field, message);
}

/** A stored spec's worker protocol (specs stored before the field existed are v2 pools). */
export function workerProtocolOf(spec: Pick<PoolSpec, 'workerProtocol'>): WorkerProtocolName {
  return spec.workerProtocol ?? workerProtocolV2;
}

/**
 * What the pool's workers run — the pod template — as a hash (decision 0036): runtime, image, args,
 * env, port, health path, worker protocol, resources. A change of it replaces the pool's idle workers;
 * a change of anything else (sizes, deadlines, policies) does not. Computed from the parsed spec, so
 * defaults added later hash the same as before.
 */
export function podTemplateHash(spec: PoolSpec): string {
  const template = {
    runtime: spec.runtime,
    image: spec.image,
    args: spec.args,
    env: Object.fromEntries(Object.entries(spec.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    port: spec.port,
    healthPath: spec.healthPath,
    workerProtocol: spec.workerProtocol,
    resources: spec.resources,
  };
  return createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 32);
}

/** One worker's share of its pool's spec: what a workerLifecycle workflow is started with. */
export function lifecycleSettingsFor(spec: PoolSpec): WorkerLifecycleSettings {
  return {
    image: spec.image,
    args: spec.args,
    env: spec.env,
    port: spec.port,
    workerProtocol: workerProtocolOf(spec),
    healthPath: spec.healthPath ?? undefined,
    resources: spec.resources,
    spawnDeadlineMs: spec.deadlines.spawn,
    activationDeadlineMs: spec.deadlines.activation,
    idleTtlMs: spec.deadlines.idleTtl,
    hotIdleTtlMs: spec.deadlines.hotIdleTtl,
    credentialTtlMs: spec.credentials.ttl,
    credentialRefreshLeadMs: spec.credentials.refreshLead,
    maxLifetimeMs: spec.deadlines.maxLifetime,
    maxSpawnAttempts: spec.maxSpawnAttempts,
    healthIntervalMs: spec.healthPath === null ? null : spec.health.interval,
    healthFailureThreshold: spec.health.failureThreshold,
    drainTimeoutMs: spec.deadlines.drain,
    releasePolicy: spec.releasePolicy,
  };
}
