// corral's production topology on the real node (test/harness/real-node.ts): Temporal and Postgres
// on the host, listening on the node IP (the pod bridge's gateway, which pods reach), and corral
// itself deployed from the project's Helm chart as a Deployment of the corral image. There is no
// kube-proxy, so Service ClusterIPs lead nowhere: the corral container's KUBERNETES_SERVICE_HOST
// and _PORT (the chart's extraEnv) name the apiserver's own address on the node IP, which its
// serving certificate covers (docs/decisions/0031-the-production-topology-on-a-real-node.md).
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { AppsV1Api, CoreV1Api, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/embedded/postgres';
import { startTemporalDevServer, type TemporalDevServer } from '../../src/embedded/temporal-dev-server';
import { repoRoot, toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { applyObjects, parseKubeYaml } from './kube-apply';
import type { RealNode } from './real-node';

const run = promisify(execFile);

/** Temporal and Postgres on the host, and the addresses pods use to reach them. */
export interface HostServices {
  temporal: TemporalDevServer;
  postgres: RunningPostgres;
  /** DATABASE_URL as a pod sees it (the node IP). Contains the password: never log it. */
  podDatabaseUrl: string;
  /** TEMPORAL_ADDRESS as a pod sees it (the node IP). */
  podTemporalAddress: string;
  stop(): Promise<void>;
}

/**
 * The Temporal CLI's dev server, and embedded Postgres on loopback and the node IP admitting the
 * pod subnet (scram-sha-256) besides loopback.
 */
export async function startHostServices(node: RealNode): Promise<HostServices> {
  // The dev server dials its own services on 127.0.0.1 whatever --ip says (a frontend bound to the
  // node IP alone fails every call: "dial tcp 127.0.0.1:…: connection refused"), so it listens on
  // every address; pods use the node IP's.
  const temporal = await startTemporalDevServer({ ip: '0.0.0.0' });
  const postgres = await startEmbeddedPostgres({
    extraListenAddress: node.nodeIP,
    allowedClientCidrs: [node.podCidr],
  }).catch(async (err: unknown) => {
    await temporal.stop();
    throw err;
  });
  const podDatabaseUrl = new URL(postgres.connectionString);
  podDatabaseUrl.hostname = node.nodeIP;
  return {
    temporal,
    postgres,
    podDatabaseUrl: podDatabaseUrl.toString(),
    podTemporalAddress: `${node.nodeIP}:${temporal.address.split(':').at(-1)}`,
    async stop() {
      await Promise.allSettled([postgres.stop(), temporal.stop()]);
    },
  };
}

export interface CorralRelease {
  namespace: string;
  workersNamespace: string;
  deployment: string;
  /** A bearer token the release's API accepts. */
  apiToken: string;
  /** The worker-protocol master key the replicas share (its Secret's value). */
  workerProtocolKey: Buffer;
  /**
   * Waits until `count` replicas are Ready, none terminating; returns each one's corral API by pod
   * name (http://<pod IP>:7070).
   */
  waitForReadyReplicas(count: number, timeoutMs: number): Promise<Map<string, string>>;
  /** The tail of each corral container's log on the node (for a failed wait). */
  logTails(): string;
}

const releaseName = 'corral';
const apiPort = 7070;

/** `helm template` of deploy/helm/corral with `values`, helm isolated from this machine's config. */
async function helmTemplate(
  dir: string,
  namespace: string,
  values: Record<string, unknown>,
): Promise<KubernetesObject[]> {
  const valuesFile = path.join(dir, 'topology-values.json');
  fs.writeFileSync(valuesFile, JSON.stringify(values), { mode: 0o600 });
  const helmHome = path.join(dir, 'helm');
  const chart = path.join(repoRoot, 'deploy', 'helm', 'corral');
  const { stdout } = await run(
    toolPath('helm'),
    ['template', releaseName, chart, '--namespace', namespace, '--values', valuesFile],
    {
      timeout: 60_000,
      killSignal: 'SIGKILL',
      env: {
        ...process.env,
        HELM_CONFIG_HOME: path.join(helmHome, 'config'),
        HELM_CACHE_HOME: path.join(helmHome, 'cache'),
        HELM_DATA_HOME: path.join(helmHome, 'data'),
      },
    },
  );
  return parseKubeYaml(stdout, 'helm template corral');
}

/** Whether a pod is Ready and not on its way out. */
const isServing = (pod: V1Pod): boolean =>
  !pod.metadata?.deletionTimestamp &&
  (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True') &&
  Boolean(pod.status?.podIP);

/**
 * Installs the chart (release `corral` in namespace `corral`, workers in `corral-workers`) with
 * the corral image, Temporal and Postgres on the host, and the apiserver's real address; creates
 * the three Secrets the chart references first. Does not wait for the replicas.
 */
export async function installCorralChart(
  node: RealNode,
  host: HostServices,
  options: { image: string; replicas: number },
): Promise<CorralRelease> {
  const namespace = 'corral';
  const workersNamespace = 'corral-workers';
  const colon = options.image.lastIndexOf(':');
  const apiserver = new URL(node.server);
  const objects = await helmTemplate(node.dir, namespace, {
    replicaCount: options.replicas,
    image: {
      repository: options.image.slice(0, colon),
      tag: options.image.slice(colon + 1),
      pullPolicy: 'IfNotPresent',
    },
    workers: { namespace: workersNamespace },
    temporal: { address: host.podTemporalAddress, namespace: host.temporal.namespace },
    extraEnv: [
      { name: 'KUBERNETES_SERVICE_HOST', value: apiserver.hostname },
      { name: 'KUBERNETES_SERVICE_PORT', value: apiserver.port },
    ],
  });
  const apiToken = crypto.randomBytes(24).toString('hex');
  const workerProtocolKey = crypto.randomBytes(32);
  const kubeConfig = node.kubeConfig();
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);

  await applyObjects(
    node,
    objects.filter((o) => o.kind === 'Namespace'),
  );
  const secrets: Record<string, Record<string, string>> = {
    'corral-registry': { 'database-url': host.podDatabaseUrl },
    'corral-worker-protocol': { key: workerProtocolKey.toString('hex') },
    'corral-api-tokens': { tokens: `${apiToken}\n` },
  };
  for (const [name, stringData] of Object.entries(secrets)) {
    await core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData } });
  }
  await applyObjects(
    node,
    objects.filter((o) => o.kind !== 'Namespace'),
  );
  const deployment = objects.find((o) => o.kind === 'Deployment')?.metadata?.name;
  if (!deployment) throw new Error('the chart rendered no Deployment');
  const selector = 'app.kubernetes.io/name=corral,app.kubernetes.io/component=worker';

  const readyReplicas = async () => {
    const pods = await core.listNamespacedPod({ namespace, labelSelector: selector });
    return new Map(
      pods.items.filter(isServing).map((p) => [p.metadata!.name!, `http://${p.status!.podIP!}:${apiPort}`] as const),
    );
  };
  const logTails = () => {
    const logsDir = path.join(node.dir, 'kubelet', 'pod-logs');
    if (!fs.existsSync(logsDir)) return '';
    return fs
      .readdirSync(logsDir)
      .filter((d) => d.startsWith(`${namespace}_`))
      .flatMap((d) => {
        const container = path.join(logsDir, d, 'worker');
        if (!fs.existsSync(container)) return [];
        return fs.readdirSync(container).map((f) => {
          const text = fs.readFileSync(path.join(container, f), 'utf8');
          return `--- ${d}/${f}\n${text.split('\n').slice(-40).join('\n')}`;
        });
      })
      .join('\n');
  };
  return {
    namespace,
    workersNamespace,
    deployment,
    apiToken,
    workerProtocolKey,
    logTails,
    async waitForReadyReplicas(count, timeoutMs) {
      let last = new Map<string, string>();
      let terminating = 0;
      try {
        await waitFor(
          async () => {
            const pods = await core.listNamespacedPod({ namespace, labelSelector: selector });
            terminating = pods.items.filter((p) => p.metadata?.deletionTimestamp).length;
            last = await readyReplicas();
            const status = (await apps.readNamespacedDeployment({ name: deployment, namespace })).status;
            return last.size === count && terminating === 0 && status?.readyReplicas === count;
          },
          { what: `${count} ready corral replicas`, timeoutMs, intervalMs: 500 },
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}: ${last.size} ready, ${terminating} terminating\n${logTails()}`);
      }
      return last;
    },
  };
}
