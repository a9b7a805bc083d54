// `corral doctor`: checks, up front, what would otherwise fail later in production — the registry
// reachable and migrated, Temporal reachable with corral's search attributes registered, and (for
// the kubernetes runtime) every RBAC verb corral needs. Only what is configured is checked.
import type { Connection } from '@temporalio/client';
import { KubeConfig } from '@kubernetes/client-node';
import fs from 'node:fs';
import pg from 'pg';
import { migrationsDir } from '../registry/migrate';
import { checkKubernetesPermissions } from '../runtime/kubernetes/doctor';
import { corralSearchAttributeKeys } from '../common/search-attributes';
import {
  connectTemporalClient,
  describeTemporalConnection,
  temporalConnectionFromEnv,
  type TemporalConnectionConfig,
} from '../config/temporal-connection';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
}

const checkTimeoutMs = 10_000;

export async function checkRegistry(databaseUrl: string): Promise<DoctorCheck> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: checkTimeoutMs,
    statement_timeout: checkTimeoutMs,
  });
  try {
    await client.connect();
    const wanted = fs
      .readdirSync(migrationsDir)
      .filter((f) => f.endsWith('.sql'))
      .map((f) => f.replace(/\.sql$/, ''));
    const table = await client.query<{ exists: boolean }>(
      `SELECT to_regclass('public.corral_migrations') IS NOT NULL AS exists`,
    );
    const applied = table.rows[0]?.exists
      ? (await client.query<{ name: string }>('SELECT name FROM corral_migrations')).rows.map((r) => r.name)
      : [];
    const missing = wanted.filter((name) => !applied.includes(name));
    if (missing.length > 0) {
      return { name: 'registry', ok: false, detail: `${missing.length} migration(s) not applied; run corral migrate` };
    }
    return { name: 'registry', ok: true, detail: `reachable, schema up to date (${applied.length} migrations)` };
  } catch (err) {
    return { name: 'registry', ok: false, detail: `unreachable: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * How corral would connect (plaintext, TLS, mTLS, API key: never the key or file contents), then
 * whether Temporal answers that way with corral's search attributes registered.
 */
export async function checkTemporal(
  address: string,
  namespace: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<DoctorCheck[]> {
  let settings: TemporalConnectionConfig;
  try {
    settings = temporalConnectionFromEnv(env);
  } catch (err) {
    return [{ name: 'temporal connection', ok: false, detail: err instanceof Error ? err.message : String(err) }];
  }
  const transport: DoctorCheck = {
    name: 'temporal connection',
    ok: true,
    detail: describeTemporalConnection(settings),
  };
  let connection: Connection | undefined;
  try {
    connection = await connectTemporalClient(address, settings, { connectTimeout: checkTimeoutMs });
    const deadline = () => new Date(Date.now() + checkTimeoutMs);
    await connection.withDeadline(deadline(), () => connection!.workflowService.describeNamespace({ namespace }));
    const { customAttributes } = await connection.withDeadline(deadline(), () =>
      connection!.operatorService.listSearchAttributes({ namespace }),
    );
    const registered = customAttributes ?? {};
    const missing = corralSearchAttributeKeys.filter((key) => !(key.name in registered)).map((key) => key.name);
    return [
      transport,
      { name: 'temporal', ok: true, detail: `reachable at ${address}, namespace ${namespace}` },
      missing.length === 0
        ? { name: 'search attributes', ok: true, detail: corralSearchAttributeKeys.map((k) => k.name).join(', ') }
        : {
            name: 'search attributes',
            ok: false,
            detail: `not registered: ${missing.join(', ')} (temporal operator search-attribute create --name ${missing[0]} --type Keyword)`,
          },
    ];
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return [
      transport,
      { name: 'temporal', ok: false, detail: `cannot use ${address} namespace ${namespace}: ${message}` },
    ];
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

export async function checkKubernetes(namespace: string, kubeconfigPath?: string): Promise<DoctorCheck> {
  const kubeConfig = new KubeConfig();
  try {
    if (kubeconfigPath) kubeConfig.loadFromFile(kubeconfigPath);
    else kubeConfig.loadFromDefault();
    const report = await checkKubernetesPermissions(kubeConfig, namespace, { apiTimeoutMs: checkTimeoutMs });
    return report.ok
      ? { name: 'kubernetes rbac', ok: true, detail: `every verb corral needs on pods and secrets in ${namespace}` }
      : {
          name: 'kubernetes rbac',
          ok: false,
          detail: `missing in namespace ${namespace}: ${report.missing.join(', ')}`,
        };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { name: 'kubernetes rbac', ok: false, detail: `cannot ask the apiserver: ${message}` };
  }
}
