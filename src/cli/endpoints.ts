// Where CLI commands find Temporal and the registry: flags, then the environment, then the
// endpoints file `corral dev` writes under .corral/ — so after `make start`, a second terminal
// needs no setup for `corral claim demo --tenant acme`.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { repoRoot } from '../embedded/tools';
import { UsageError } from './cli-errors';

export const defaultStateDir = path.join(repoRoot, '.corral');

const endpointsFileSchema = z.object({
  temporalAddress: z.string().min(1),
  namespace: z.string().min(1),
  databaseUrl: z.string().min(1),
  uiUrl: z.string().optional(),
  metricsUrl: z.string().optional(),
});
export type EmbeddedEndpoints = z.infer<typeof endpointsFileSchema>;

export function endpointsFile(stateDir = process.env.CORRAL_STATE_DIR || defaultStateDir): string {
  return path.join(stateDir, 'endpoints.json');
}

/** Written by `corral dev` once the stack is up (mode 0600: it holds the local database URL). */
export function writeEmbeddedEndpoints(stateDir: string, endpoints: EmbeddedEndpoints): void {
  fs.writeFileSync(endpointsFile(stateDir), `${JSON.stringify(endpoints, null, 2)}\n`, { mode: 0o600 });
}

export function removeEmbeddedEndpoints(stateDir: string): void {
  fs.rmSync(endpointsFile(stateDir), { force: true });
}

function readEmbeddedEndpoints(): EmbeddedEndpoints | undefined {
  let text: string;
  try {
    text = fs.readFileSync(endpointsFile(), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = endpointsFileSchema.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : undefined;
}

export interface ConnectionFlags {
  temporalAddress?: string;
  namespace?: string;
}

export interface ResolvedEndpoints {
  temporalAddress: string;
  namespace: string;
  databaseUrl: string;
  /** The corral workers' task queue (env CORRAL_TASK_QUEUE); corral's default when unset. */
  taskQueue?: string;
}

export function resolveEndpoints(flags: ConnectionFlags): ResolvedEndpoints {
  const embedded = readEmbeddedEndpoints();
  const temporalAddress = flags.temporalAddress ?? process.env.TEMPORAL_ADDRESS ?? embedded?.temporalAddress;
  const databaseUrl = process.env.DATABASE_URL ?? embedded?.databaseUrl;
  if (!temporalAddress) {
    throw new UsageError('no Temporal address: pass --temporal-address, set TEMPORAL_ADDRESS, or run `make start`');
  }
  if (!databaseUrl) throw new UsageError('no registry database: set DATABASE_URL, or run `make start`');
  const namespace = flags.namespace ?? process.env.TEMPORAL_NAMESPACE ?? embedded?.namespace ?? 'default';
  return { temporalAddress, namespace, databaseUrl, taskQueue: process.env.CORRAL_TASK_QUEUE || undefined };
}

export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new UsageError(`environment variable ${name} is not set`);
  return value;
}

/** For doctor: whatever is configured, without requiring anything. */
export function resolveEndpointsLoosely(flags: ConnectionFlags): Partial<ResolvedEndpoints> & { namespace: string } {
  const embedded = readEmbeddedEndpoints();
  return {
    temporalAddress: flags.temporalAddress ?? process.env.TEMPORAL_ADDRESS ?? embedded?.temporalAddress,
    namespace: flags.namespace ?? process.env.TEMPORAL_NAMESPACE ?? embedded?.namespace ?? 'default',
    databaseUrl: process.env.DATABASE_URL ?? embedded?.databaseUrl,
  };
}
