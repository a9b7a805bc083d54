// Secret references for the process runtime (decision 0021). A pool env entry
// `{ valueFrom: { secretKeyRef: { name, key } } }` is read, at spawn, from the file
// `<secretsDir>/<name>/<key>` on the corral worker that spawns the worker, the layout of a
// Kubernetes Secret mounted as a volume. The value goes only into the worker process's
// environment: never into a record, a log line or an error.
import fs from 'node:fs';
import path from 'node:path';
import { isSecretRef, type EnvValue, type SecretKeyRef } from '../worker-pod-spec';

/** The environment variable naming the directory (default `<stateDir>/secrets`). */
export const processSecretsDirSetting = 'CORRAL_PROCESS_SECRETS_DIR';

/** The largest secret value read into an environment variable (the limit of a literal one). */
export const maxSecretValueBytes = 32_768;

/** A Secret reference that cannot be resolved; `field` names the env entry (`env.DB_PASSWORD`). */
export class SecretReferenceError extends Error {
  override readonly name = 'SecretReferenceError';
  constructor(
    readonly field: string,
    readonly ref: SecretKeyRef,
    reason: string,
  ) {
    super(`${field}: valueFrom.secretKeyRef ${ref.name}/${ref.key}: ${reason}`);
  }
}

export function secretFilePath(secretsDir: string, ref: SecretKeyRef): string {
  // name is a DNS subdomain and key has no "/" and is not "." or "..": the path stays inside secretsDir.
  return path.join(secretsDir, ref.name, ref.key);
}

/** The directory secret references resolve from: the option, else the environment, else `<stateDir>/secrets`. */
export function processSecretsDir(stateDir: string, option: string | undefined, env: NodeJS.ProcessEnv): string {
  return path.resolve(option ?? (env[processSecretsDirSetting] || path.join(stateDir, 'secrets')));
}

/**
 * The worker's env with every reference replaced by its file's content (exactly its bytes, as
 * Kubernetes does: write it with `printf`, not `echo`, unless the newline belongs to it).
 * Throws a SecretReferenceError naming the first entry that cannot be read.
 */
export function resolveProcessEnv(env: Record<string, EnvValue>, secretsDir: string): Record<string, string> {
  const resolved: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!isSecretRef(value)) {
      resolved[name] = value;
      continue;
    }
    const ref = value.valueFrom.secretKeyRef;
    const file = secretFilePath(secretsDir, ref);
    const field = `env.${name}`;
    let content: Buffer;
    try {
      const stat = fs.statSync(file);
      if (!stat.isFile()) throw new SecretReferenceError(field, ref, `${file} is not a regular file`);
      if (stat.size > maxSecretValueBytes) {
        throw new SecretReferenceError(field, ref, `${file} is larger than ${maxSecretValueBytes} bytes`);
      }
      content = fs.readFileSync(file);
    } catch (err) {
      if (err instanceof SecretReferenceError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file} (${code ?? 'error'})`;
      throw new SecretReferenceError(field, ref, reason);
    }
    if (content.includes(0)) throw new SecretReferenceError(field, ref, `${file} contains a NUL byte`);
    resolved[name] = content.toString('utf8');
  }
  return resolved;
}
