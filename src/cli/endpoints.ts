// Where CLI commands find corral: the corral API's address and token from flags or the
// environment, then the endpoints file `corral dev` writes under .corral/ — so after `make start`,
// a second terminal needs no setup for `corral claim demo --tenant acme`. The CLI never needs the
// registry's password: only `corral worker`, `migrate` and `doctor` read DATABASE_URL.
import fs from 'node:fs';
import path from 'node:path';
import { stateDir } from '../embedded/state-dir';
import { UsageError } from './cli-errors';

export interface EmbeddedEndpoints {
  apiUrl: string;
  temporalAddress: string;
  namespace: string;
  uiUrl?: string;
  metricsUrl?: string;
}

export function endpointsFile(dir = stateDir()): string {
  return path.join(dir, 'endpoints.json');
}

/** Written by `corral dev` once the stack is up (mode 0600: it is that person's stack). */
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
  try {
    return asEmbeddedEndpoints(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * The file's fields, checked by hand rather than with a zod schema: every client command reads this
 * file, and loading zod would cost more than the command's own HTTP call.
 */
function asEmbeddedEndpoints(value: unknown): EmbeddedEndpoints | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { apiUrl, temporalAddress, namespace, uiUrl, metricsUrl } = value as Record<string, unknown>;
  const text = (field: unknown) => typeof field === 'string';
  if (![apiUrl, temporalAddress, namespace].every((field) => text(field) && field !== '')) return undefined;
  if (![uiUrl, metricsUrl].every((field) => field === undefined || text(field))) return undefined;
  return value as EmbeddedEndpoints;
}

export interface ApiEndpoint {
  url: string;
  token?: string;
}

/** The corral API: CORRAL_API_URL (+ CORRAL_API_TOKEN or CORRAL_API_TOKEN_FILE), or `make start`'s file. */
export function resolveApiEndpoint(): ApiEndpoint {
  const url = process.env.CORRAL_API_URL || readEmbeddedEndpoints()?.apiUrl;
  if (!url) throw new UsageError('no corral API: set CORRAL_API_URL (and CORRAL_API_TOKEN), or run `make start`');
  return { url, token: apiToken() };
}

function apiToken(): string | undefined {
  if (process.env.CORRAL_API_TOKEN) return process.env.CORRAL_API_TOKEN;
  const file = process.env.CORRAL_API_TOKEN_FILE;
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UsageError(`CORRAL_API_TOKEN_FILE: cannot read ${file} (${(err as { code?: string }).code ?? err})`);
  }
}

export interface ConnectionFlags {
  temporalAddress?: string;
  namespace?: string;
}

export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new UsageError(`environment variable ${name} is not set`);
  return value;
}

/** For doctor: whatever is configured, without requiring anything. */
export function resolveEndpointsLoosely(flags: ConnectionFlags): {
  temporalAddress?: string;
  namespace: string;
  databaseUrl?: string;
  apiUrl?: string;
} {
  const embedded = readEmbeddedEndpoints();
  return {
    temporalAddress: flags.temporalAddress ?? process.env.TEMPORAL_ADDRESS ?? embedded?.temporalAddress,
    namespace: flags.namespace ?? process.env.TEMPORAL_NAMESPACE ?? embedded?.namespace ?? 'default',
    databaseUrl: process.env.DATABASE_URL,
    apiUrl: process.env.CORRAL_API_URL || embedded?.apiUrl,
  };
}
