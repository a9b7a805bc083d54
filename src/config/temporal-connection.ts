// How corral connects to Temporal: plaintext, TLS, mTLS and/or an API key, read once from the
// same environment variables Temporal's own CLI reads (docs/decisions/0022-tls-to-temporal.md),
// and turned into options for both the client's Connection and the worker's NativeConnection.
// Errors name the variable to fix; descriptions never contain key material or the API key.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Connection, type ConnectionOptions, type TLSConfig } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';

/** The variables read, as Temporal CLI v1.5.1 names them (legacy name first; it wins, as in the CLI). */
export const temporalConnectionEnv = {
  tls: 'TEMPORAL_TLS',
  cert: ['TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_CLIENT_CERT_PATH'],
  key: ['TEMPORAL_TLS_KEY', 'TEMPORAL_TLS_CLIENT_KEY_PATH'],
  ca: ['TEMPORAL_TLS_CA', 'TEMPORAL_TLS_SERVER_CA_CERT_PATH'],
  serverName: 'TEMPORAL_TLS_SERVER_NAME',
  apiKey: 'TEMPORAL_API_KEY',
} as const;

/** Variables the CLI knows that corral refuses rather than silently ignores. */
const unsupportedEnv: Record<string, string> = {
  TEMPORAL_TLS_CERT_DATA: 'mount the PEM as a file and set TEMPORAL_TLS_CERT',
  TEMPORAL_TLS_CLIENT_CERT_DATA: 'mount the PEM as a file and set TEMPORAL_TLS_CERT',
  TEMPORAL_TLS_KEY_DATA: 'mount the PEM as a file and set TEMPORAL_TLS_KEY',
  TEMPORAL_TLS_CLIENT_KEY_DATA: 'mount the PEM as a file and set TEMPORAL_TLS_KEY',
  TEMPORAL_TLS_CA_DATA: 'mount the PEM as a file and set TEMPORAL_TLS_CA',
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: 'mount the PEM as a file and set TEMPORAL_TLS_CA',
};

/**
 * `env` without any Temporal connection setting: for a corral worker started against a local,
 * plaintext dev server (`corral dev`, tests), so a developer's exported Cloud settings (say, for
 * the Temporal CLI) do not make it try TLS against the dev server.
 */
export function withoutTemporalConnectionSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([name]) => !name.startsWith('TEMPORAL_TLS') && name !== temporalConnectionEnv.apiKey),
  );
}

export type TemporalTransport = 'plaintext' | 'TLS' | 'mTLS';

export interface TemporalConnectionConfig {
  transport: TemporalTransport;
  /** `false` for plaintext; otherwise what both connection kinds take as `tls`. */
  tls: TLSConfig | false;
  apiKey?: string;
  /** Where each setting came from (variable=path), for messages: never file contents or the key. */
  sources: string[];
}

/** A Temporal connection setting that cannot be used; `variable` is the one to fix. */
export class TemporalConnectionConfigError extends Error {
  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`${variable}: ${reason}`);
    this.name = 'TemporalConnectionConfigError';
  }
}

/** Connecting failed; the message says to what, over which transport, and the SDK's reason. */
export class TemporalConnectError extends Error {
  constructor(address: string, config: TemporalConnectionConfig, cause: unknown) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0]! : String(cause);
    super(
      `cannot connect to Temporal at ${address} over ${describeTemporalConnection(config)}: ${reason}${hint(reason, config)}`,
      { cause },
    );
    this.name = 'TemporalConnectError';
  }
}

/** Reads the connection settings; throws TemporalConnectionConfigError naming the variable. */
export function temporalConnectionFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalConnectionConfig {
  for (const [name, advice] of Object.entries(unsupportedEnv)) {
    if (env[name]) throw new TemporalConnectionConfigError(name, `not supported by corral; ${advice}`);
  }
  if (parseBool(env, 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION')) {
    throw new TemporalConnectionConfigError(
      'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION',
      'not supported by the TypeScript SDK; set TEMPORAL_TLS_SERVER_NAME to the name in the server certificate',
    );
  }
  const tlsFlag = parseBool(env, temporalConnectionEnv.tls);
  const cert = pick(env, temporalConnectionEnv.cert);
  const key = pick(env, temporalConnectionEnv.key);
  const ca = pick(env, temporalConnectionEnv.ca);
  const serverName = nonEmpty(env[temporalConnectionEnv.serverName]);
  const apiKey = nonEmpty(env[temporalConnectionEnv.apiKey]);

  if (cert && !key) throw new TemporalConnectionConfigError('TEMPORAL_TLS_KEY', `required with ${cert.name}`);
  if (key && !cert) throw new TemporalConnectionConfigError('TEMPORAL_TLS_CERT', `required with ${key.name}`);
  const wantsTls = Boolean(cert || ca || serverName);
  if (tlsFlag === false && wantsTls) {
    const given = [cert?.name, ca?.name, serverName ? temporalConnectionEnv.serverName : undefined].filter(Boolean);
    throw new TemporalConnectionConfigError(temporalConnectionEnv.tls, `false contradicts ${given.join(', ')}`);
  }
  // As the CLI: any TLS setting or an API key implies TLS unless TEMPORAL_TLS=false says otherwise.
  const useTls = tlsFlag ?? (wantsTls || apiKey !== undefined);
  const sources: string[] = [];
  if (apiKey !== undefined) sources.push(temporalConnectionEnv.apiKey);
  if (!useTls) return { transport: 'plaintext', tls: false, apiKey, sources };

  const tls: TLSConfig = {};
  if (ca) {
    const pem = readPem(ca);
    try {
      new crypto.X509Certificate(pem);
    } catch (err) {
      throw new TemporalConnectionConfigError(ca.name, `${ca.path} is not a PEM certificate (${message(err)})`);
    }
    tls.serverRootCACertificate = pem;
    sources.push(`${ca.name}=${ca.path}`);
  }
  if (cert && key) {
    const crt = readPem(cert);
    const keyPem = readPem(key);
    let x509: crypto.X509Certificate;
    try {
      x509 = new crypto.X509Certificate(crt);
    } catch (err) {
      throw new TemporalConnectionConfigError(cert.name, `${cert.path} is not a PEM certificate (${message(err)})`);
    }
    let privateKey: crypto.KeyObject;
    try {
      privateKey = crypto.createPrivateKey(keyPem);
    } catch (err) {
      throw new TemporalConnectionConfigError(key.name, `${key.path} is not a PEM private key (${message(err)})`);
    }
    if (!x509.checkPrivateKey(privateKey)) {
      throw new TemporalConnectionConfigError(
        key.name,
        `${key.path} is not the key of the certificate in ${cert.path}`,
      );
    }
    tls.clientCertPair = { crt, key: keyPem };
    sources.push(`${cert.name}=${cert.path}`, `${key.name}=${key.path}`);
  }
  if (serverName) {
    tls.serverNameOverride = serverName;
    sources.push(`${temporalConnectionEnv.serverName}=${serverName}`);
  }
  return { transport: tls.clientCertPair ? 'mTLS' : 'TLS', tls, apiKey, sources };
}

/** "mTLS + API key", "TLS", "plaintext": what `corral doctor` and errors report. */
export function describeTemporalConnection(config: TemporalConnectionConfig): string {
  const transport =
    config.apiKey !== undefined && config.transport === 'plaintext'
      ? 'plaintext + API key (sent unencrypted: TEMPORAL_TLS=false)'
      : `${config.transport}${config.apiKey !== undefined ? ' + API key' : ''}`;
  const settings = config.sources.filter((s) => s !== temporalConnectionEnv.apiKey);
  return settings.length > 0 ? `${transport} (${settings.join(', ')})` : transport;
}

/** Options for `Connection.connect` (the client); `extra` adds e.g. `connectTimeout`. */
export function clientConnectionOptions(
  address: string,
  config: TemporalConnectionConfig,
  extra: Omit<ConnectionOptions, 'address' | 'tls' | 'apiKey'> = {},
): ConnectionOptions {
  return { ...extra, address, tls: config.tls, ...(config.apiKey !== undefined ? { apiKey: config.apiKey } : {}) };
}

/** Options for `NativeConnection.connect` (the worker). */
export function nativeConnectionOptions(address: string, config: TemporalConnectionConfig): NativeConnectionOptions {
  return { address, tls: config.tls, ...(config.apiKey !== undefined ? { apiKey: config.apiKey } : {}) };
}

/** `Connection.connect` with the parsed settings; a failure names the address and the transport. */
export async function connectTemporalClient(
  address: string,
  config: TemporalConnectionConfig,
  extra: Omit<ConnectionOptions, 'address' | 'tls' | 'apiKey'> = {},
): Promise<Connection> {
  try {
    return await Connection.connect(clientConnectionOptions(address, config, extra));
  } catch (err) {
    throw new TemporalConnectError(address, config, err);
  }
}

/** `NativeConnection.connect` with the parsed settings; a failure names the address and the transport. */
export async function connectTemporalNative(
  address: string,
  config: TemporalConnectionConfig,
): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(nativeConnectionOptions(address, config));
  } catch (err) {
    throw new TemporalConnectError(address, config, err);
  }
}

/** What to check for the TLS failures people meet first (rustls' and Node's wording). */
function hint(reason: string, config: TemporalConnectionConfig): string {
  if (/UnknownIssuer|unable to get local issuer|self[- ]signed certificate/i.test(reason)) {
    return config.tls && config.tls.serverRootCACertificate
      ? ' (the server certificate is not signed by the CA in TEMPORAL_TLS_CA)'
      : ' (the server certificate is not signed by a CA this system trusts: set TEMPORAL_TLS_CA)';
  }
  if (/NotValidForName|does not match certificate|altnames/i.test(reason)) {
    return ' (the server certificate does not name this host: set TEMPORAL_TLS_SERVER_NAME)';
  }
  return '';
}

interface PathSetting {
  name: string;
  path: string;
}

function pick(env: NodeJS.ProcessEnv, names: readonly string[]): PathSetting | undefined {
  for (const name of names) {
    const path = nonEmpty(env[name]);
    if (path !== undefined) return { name, path };
  }
  return undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function parseBool(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = nonEmpty(env[name]?.trim());
  if (raw === undefined) return undefined;
  if (/^(true|1)$/i.test(raw)) return true;
  if (/^(false|0)$/i.test(raw)) return false;
  throw new TemporalConnectionConfigError(name, `expected true or false, got ${JSON.stringify(raw)}`);
}

function readPem(setting: PathSetting): Buffer {
  let data: Buffer;
  try {
    data = fs.readFileSync(setting.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TemporalConnectionConfigError(setting.name, `cannot read ${setting.path}${code ? ` (${code})` : ''}`);
  }
  if (!data.toString('latin1').includes('-----BEGIN ')) {
    throw new TemporalConnectionConfigError(setting.name, `${setting.path} is not PEM (no -----BEGIN line)`);
  }
  return data;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
