// What a runtime needs to start one worker, validated before any API call or file write. Names
// are derived here, deterministically, so a retried create lands on the same pod and adopts it.
import { z } from 'zod';
import { firstIssue } from '../config/first-issue';
import { workerPodName, type WorkerPodRef } from '../common';
import { RuntimeInputError } from './errors';

/** RFC 1123 label: what Kubernetes requires of pod names used as hostnames, and of label values. */
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const maxDnsLabelLength = 63;

const namePart = z
  .string()
  .min(1, 'must not be empty')
  .max(maxDnsLabelLength, `must be at most ${maxDnsLabelLength} characters`)
  .regex(dns1123Label, 'must be lowercase letters, digits and "-", starting and ending with a letter or digit');

const resourceAmounts = z.strictObject({
  cpuMillis: z.number().int('must be a whole number of millicores').positive('must be positive').max(1_024_000),
  memoryMiB: z.number().int('must be a whole number of MiB').positive('must be positive').max(4_194_304),
});

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name')
  .refine((name) => !name.startsWith('CORRAL_') && name !== 'PORT', 'is reserved for corral (CORRAL_*, PORT)');

/**
 * Worker ids have no "-", so `<pool>-<workerId>-<attempt>` parses back unambiguously: pool
 * `web-eu` + worker `w1` and pool `web` + worker `eu-w1` can never share a pod name.
 */
const workerIdPart = z
  .string()
  .min(1, 'must not be empty')
  .max(40, 'must be at most 40 characters')
  .regex(/^[a-z0-9]+$/, 'must be lowercase letters and digits only');
const noNul = (value: string) => !value.includes('\0');

/**
 * A reference to one key of a Secret: Kubernetes passes it to the pod as `valueFrom.secretKeyRef`
 * (the Secret lives in the workers' namespace; corral never reads it); the process runtime reads
 * `<secretsDir>/<name>/<key>` when it spawns the worker. Only the reference travels through
 * Temporal payloads and the registry, never the value (decision 0021).
 */
export const secretKeyRefSchema = z.strictObject({
  /** A Secret name: a DNS-1123 subdomain (so also a safe directory name for the process runtime). */
  name: z
    .string()
    .min(1, 'must not be empty')
    .max(253, 'must be at most 253 characters')
    .regex(
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
      'must be a DNS subdomain (a-z, 0-9, "-", ".")',
    ),
  /** A key of the Secret's data, as Kubernetes allows them ("." and ".." are not keys). */
  key: z
    .string()
    .min(1, 'must not be empty')
    .max(253, 'must be at most 253 characters')
    .regex(/^[-._a-zA-Z0-9]+$/, 'must be letters, digits, "-", "_" or "."')
    .refine((key) => key !== '.' && key !== '..', 'must not be "." or ".."'),
});
export type SecretKeyRef = z.output<typeof secretKeyRefSchema>;

/** One env entry's value: a literal string or `{ valueFrom: { secretKeyRef: { name, key } } }`. */
export const envValueSchema = z.union(
  [
    z.string().max(32_768, 'must be at most 32768 characters').refine(noNul, 'must not contain NUL'),
    z.strictObject({ valueFrom: z.strictObject({ secretKeyRef: secretKeyRefSchema }) }),
  ],
  { error: 'must be a string or { valueFrom: { secretKeyRef: { name, key } } }' },
);
export type EnvValue = z.output<typeof envValueSchema>;
export type EnvSecretRef = Exclude<EnvValue, string>;

export function isSecretRef(value: EnvValue): value is EnvSecretRef {
  return typeof value !== 'string';
}

export const workerPodSpecSchema = z.strictObject({
  workerId: workerIdPart,
  pool: namePart,
  spawnAttempt: z.number().int().min(1, 'must be at least 1').max(1_000_000),
  epoch: z.number().int().min(1, 'must be at least 1').max(Number.MAX_SAFE_INTEGER),
  /** An OCI image reference (kubernetes) or the path of an executable (process). */
  image: z.string().min(1, 'must not be empty').max(512),
  args: z.array(z.string().max(4_096).refine(noNul, 'must not contain NUL')).max(64).default([]),
  env: z.record(envName, envValueSchema).default({}),
  port: z.number().int().min(1).max(65_535).default(8080),
  /** The health hook: readiness and steady-state health. null: the image has none (ready = the port accepts). */
  healthPath: z
    .string()
    .regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$/, 'must be an absolute URL path')
    .nullable()
    .default('/healthz'),
  /** How often the health hook is probed once the worker serves (kubernetes: readinessProbe.periodSeconds). */
  healthIntervalMs: z.number().int().min(1_000, 'must be at least 1000').max(3_600_000).default(10_000),
  /** Consecutive failed probes before the worker is unhealthy (kubernetes: readinessProbe.failureThreshold). */
  healthFailureThreshold: z.number().int().min(1, 'must be at least 1').max(100).default(3),
  resources: z
    .strictObject({ requests: resourceAmounts, limits: resourceAmounts })
    .refine((r) => r.limits.cpuMillis >= r.requests.cpuMillis, {
      message: 'must be at least the request',
      path: ['limits', 'cpuMillis'],
    })
    .refine((r) => r.limits.memoryMiB >= r.requests.memoryMiB, {
      message: 'must be at least the request',
      path: ['limits', 'memoryMiB'],
    }),
  /** The pool's max lifetime; Kubernetes enforces it as activeDeadlineSeconds, a backstop to corral's own timer. */
  maxLifetimeSeconds: z
    .number()
    .int()
    .min(60, 'must be at least 60')
    .max(31_536_000 * 10),
});

// The plain types a pool's settings carry (src/common/worker-pod.ts: env, resources) must stay
// assignable to this input: the lifecycle workflow passes them to every spawn unchanged, and its
// podSpec() is typed by the spawn activity's input, so tsc checks it there.
export type WorkerPodSpecInput = z.input<typeof workerPodSpecSchema>;
export type WorkerPodSpec = z.output<typeof workerPodSpecSchema>;

/**
 * Distribution's reference grammar (github.com/distribution/reference): optional registry host
 * with port, lowercase path components, optional tag, optional digest. As in docker's
 * normalisation, the first component is a registry host only if it has a "." or ":" or is
 * "localhost"; otherwise it is part of the (lowercase) path.
 */
const pathComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainPattern = new RegExp(`^${domainComponent}(?:\\.${domainComponent})*(?::[0-9]+)?$`);
const remainderPattern = new RegExp(
  `^${pathComponent}(?:/${pathComponent})*` +
    '(?::[\\w][\\w.-]{0,127})?' +
    '(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$',
);

export function isValidImageReference(image: string): boolean {
  if (image.length > 512) return false;
  const slash = image.indexOf('/');
  const first = slash === -1 ? '' : image.slice(0, slash);
  const hasDomain = first.includes('.') || first.includes(':') || first === 'localhost';
  if (hasDomain && !domainPattern.test(first)) return false;
  return remainderPattern.test(hasDomain ? image.slice(slash + 1) : image);
}

export function parseWorkerPodSpec(input: unknown): WorkerPodSpec {
  const result = workerPodSpecSchema.safeParse(input);
  if (!result.success) {
    const { field, message } = firstIssue(result.error);
    throw new RuntimeInputError(field, message);
  }
  const spec = result.data;
  // The derived name must also be a DNS label: refuse now rather than get a 422 mid-spawn.
  podNameFor(spec);
  return spec;
}

/**
 * The spawn attempt is part of the name so a respawn never waits for the previous pod's graceful
 * termination, and a retried create of the same attempt lands on the same name and adopts it.
 */
export function podNameFor(spec: Pick<WorkerPodSpec, 'pool' | 'workerId' | 'spawnAttempt'>): string {
  const name = workerPodName(spec.pool, spec.workerId, spec.spawnAttempt);
  if (name.length > maxDnsLabelLength) {
    throw new RuntimeInputError(
      'podName',
      `"${name}" would be ${name.length} characters; pod names are at most ${maxDnsLabelLength} (shorten the pool name or worker id)`,
    );
  }
  return name;
}

export function refFor(spec: Pick<WorkerPodSpec, 'pool' | 'workerId' | 'spawnAttempt'>): WorkerPodRef {
  return { workerId: spec.workerId, pool: spec.pool, spawnAttempt: spec.spawnAttempt, name: podNameFor(spec) };
}

export const workerPodRefSchema = z.strictObject({
  workerId: workerIdPart,
  pool: namePart,
  spawnAttempt: z.number().int().min(1).max(1_000_000),
  name: namePart,
});

/** A pool name as a filter (it ends up in a label selector, so it must be a plain label value). */
export function parsePoolFilter(pool: unknown): string | undefined {
  if (pool === undefined) return undefined;
  const result = namePart.safeParse(pool);
  if (!result.success) throw new RuntimeInputError('pool', firstIssue(result.error).message);
  return result.data;
}

/** The longest readiness wait a caller may ask for; spawn deadlines are minutes, not days. */
export const maxReadinessWaitMs = 24 * 3_600_000;

export function checkWaitTimeout(timeoutMs: unknown): number {
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isFinite(timeoutMs) ||
    timeoutMs <= 0 ||
    timeoutMs > maxReadinessWaitMs
  ) {
    throw new RuntimeInputError('timeoutMs', `must be a positive number of milliseconds up to ${maxReadinessWaitMs}`);
  }
  return timeoutMs;
}

export function parseWorkerPodRef(input: unknown): WorkerPodRef {
  const result = workerPodRefSchema.safeParse(input);
  if (!result.success) {
    const { field, message } = firstIssue(result.error);
    throw new RuntimeInputError(field, message);
  }
  const expected = podNameFor(result.data);
  if (expected !== result.data.name) throw new RuntimeInputError('name', `must be "${expected}" for this worker`);
  return result.data;
}

/** Short-lived material handed to a worker; only its version and expiry ever leave the runtime. */
export const workerCredentialsSchema = z.strictObject({
  epoch: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  version: z.number().int().min(1).max(2_147_483_647),
  expiresAt: z.date(),
  token: z.string().min(16, 'must be at least 16 characters').max(16_384),
  /** corral.worker/v2: the worker's protocol key, 64 hex digits (docs/worker-protocol.md); absent for v1. */
  protocolKey: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits')
    .optional(),
});
export type WorkerCredentials = z.output<typeof workerCredentialsSchema>;

export function parseWorkerCredentials(input: unknown): WorkerCredentials {
  const result = workerCredentialsSchema.safeParse(input);
  if (!result.success) {
    const { field, message } = firstIssue(result.error);
    throw new RuntimeInputError(`credentials.${field}`, message);
  }
  return result.data;
}

/**
 * A credential write goes backwards when its epoch or its credential version is below what the
 * runtime holds: both only ever grow for one worker, so a lower one comes from a stale sender.
 */
export function goesBackwards(
  stored: { epoch: number; version: number },
  attempted: { epoch: number; version: number },
): boolean {
  return attempted.epoch < stored.epoch || attempted.version < stored.version;
}

/** The credentials file as the worker reads it (JSON); shared by both runtimes and the demo worker. */
export function credentialsFileContent(credentials: WorkerCredentials, workerId: string): string {
  return `${JSON.stringify({
    workerId,
    epoch: credentials.epoch,
    version: credentials.version,
    expiresAt: credentials.expiresAt.toISOString(),
    token: credentials.token,
    ...(credentials.protocolKey ? { protocolKey: credentials.protocolKey } : {}),
  })}\n`;
}
