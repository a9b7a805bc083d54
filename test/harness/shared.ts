// Servers shared across one test run. `test/run.ts` starts the dev server, Postgres and
// Kubernetes control plane (with kube-scheduler and KWOK) that the selected files declare
// (`// corral-test-needs: …`, test/harness/test-needs.ts, decision 0027) and hands their addresses
// to every test file through the environment. Under the runner, a file that asks for a server it
// did not declare fails at once; a test file run on its own starts private instances instead.
// Sharing is safe because every test isolates itself: its own database, namespace, task queue
// and workflow ids.
import crypto from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/embedded/postgres';
import { startTemporalDevServer } from '../../src/embedded/temporal-dev-server';
import { startKube, type KubeEndpoint } from './kube';
import { usesSharedServer, type ServerNeed } from './test-needs';

export interface Lease<T> {
  value: T;
  /** Stops a private instance; a no-op for the run's shared one. */
  release(): Promise<void>;
}

export const sharedEnvNames = {
  temporalAddress: 'CORRAL_TEST_TEMPORAL_ADDRESS',
  temporalUiUrl: 'CORRAL_TEST_TEMPORAL_UI_URL',
  postgresUrl: 'CORRAL_TEST_POSTGRES_URL',
  kubeServer: 'CORRAL_TEST_KUBE_SERVER',
  kubeToken: 'CORRAL_TEST_KUBE_TOKEN',
  kubeCaFile: 'CORRAL_TEST_KUBE_CA_FILE',
} as const;

const noop = async (): Promise<void> => undefined;

/** The runner declared and started `server` for this file, but its address is not in the environment. */
function missing(server: ServerNeed, names: string[]): Error {
  return new Error(`test/run.ts did not pass the shared ${server} server (${names.join(', ')} unset)`);
}

export interface TemporalEndpoint {
  address: string;
  uiUrl: string;
  namespace: string;
}

export async function useTemporalDevServer(): Promise<Lease<TemporalEndpoint>> {
  if (usesSharedServer('temporal')) {
    const address = process.env[sharedEnvNames.temporalAddress];
    const uiUrl = process.env[sharedEnvNames.temporalUiUrl];
    if (!address || !uiUrl) throw missing('temporal', [sharedEnvNames.temporalAddress, sharedEnvNames.temporalUiUrl]);
    return { value: { address, uiUrl, namespace: 'default' }, release: noop };
  }
  const server = await startTemporalDevServer();
  return { value: { address: server.address, uiUrl: server.uiUrl, namespace: server.namespace }, release: server.stop };
}

/** A fresh, empty database on the shared (or a private) Postgres server. */
export async function usePostgresDatabase(): Promise<Lease<{ connectionString: string }>> {
  let serverUrl: string;
  let release = noop;
  if (usesSharedServer('postgres')) {
    const shared = process.env[sharedEnvNames.postgresUrl];
    if (!shared) throw missing('postgres', [sharedEnvNames.postgresUrl]);
    serverUrl = shared;
  } else {
    const server = await startEmbeddedPostgres();
    serverUrl = server.connectionString;
    release = server.stop;
  }
  const name = `t_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { value: { connectionString: url.toString() }, release };
}

/**
 * The run's cluster (or a private one): kube-apiserver, kube-scheduler and KWOK with two fake
 * nodes (test/harness/kube.ts). A test that needs pods to run starts its own answerer for its
 * namespace (test/harness/kwok-workers.ts); more nodes come from createKwokNodes.
 */
export async function useKube(): Promise<Lease<KubeEndpoint>> {
  if (usesSharedServer('kube')) {
    const server = process.env[sharedEnvNames.kubeServer];
    const adminToken = process.env[sharedEnvNames.kubeToken];
    const caFile = process.env[sharedEnvNames.kubeCaFile];
    if (!server || !adminToken || !caFile) {
      throw missing('kube', [sharedEnvNames.kubeServer, sharedEnvNames.kubeToken, sharedEnvNames.kubeCaFile]);
    }
    return { value: { server, adminToken, caFile }, release: noop };
  }
  const kube = await startKube();
  return { value: { server: kube.server, adminToken: kube.adminToken, caFile: kube.caFile }, release: kube.stop };
}
