// The nodes and the kubelet of the test cluster: the real kube-scheduler binds pods to fake
// Nodes, and KWOK (sigs.k8s.io/kwok, built by scripts/provision-tools.sh) writes the status a
// kubelet would, driven by the Stages in test/fixtures/kwok/. A pod's IP comes from its node's
// spec.podCIDR, which is in 127.0.0.0/8, so it routes to this machine's loopback and a test
// process can answer for every pod (test/harness/kwok-workers.ts).
//
// How a pod goes is chosen by the pod, never by a test writing its status: its image
// (`kwokFateImage('oom')`, before it is ever ready) or an annotation patched onto it later
// (`setPodFate(core, namespace, name, 'crash')` kills a running pod). See test/fixtures/kwok/.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { startProcess, failOnExit, type ManagedProcess } from '../../src/embedded/child-process';
import { freePort } from '../../src/embedded/ports';
import { repoRoot, toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { kubeSchedulerArgs } from './kube-control-plane';

/** Every API call the harness makes is bounded. */
const bounded = timeoutOptions(10_000);

/** What the kubelet part of a pod's life should be (test/fixtures/kwok/fates.yaml). */
export const kwokFates = [
  'ready',
  'unready',
  'image-pull-backoff',
  'invalid-image',
  'config-error',
  'entrypoint-missing',
  'crash',
  'crash-loop',
  'oom',
  'evict',
] as const;
export type KwokFate = (typeof kwokFates)[number];
/** Fates that end a running worker: after one, the pod's process no longer answers. */
export const killingFates: readonly KwokFate[] = ['crash', 'crash-loop', 'oom', 'evict'];

export const kwokAnnotations = {
  /** The fate of a pod; overrides the fate of its image. */
  fate: 'corral.test/fate',
  /** The exit code of a `crash` / `crash-loop` (default 1). */
  exitCode: 'corral.test/exit-code',
} as const;

/** An image whose pod meets `fate` (a valid OCI reference; nothing is ever pulled). */
export const kwokFateImage = (fate: KwokFate): string => `corral.test/fate:${fate}`;

/** The annotation, and its value, that mark a Node as KWOK's to manage. */
export const kwokNodeAnnotation = { key: 'kwok.x-k8s.io/node', value: 'fake' } as const;
const nodeNamePrefix = 'kwok-node-';
/** Node i gets pod CIDR 127.(firstPodOctet + i).0.0/16; KWOK's fallback CIDR sits just below. */
const firstPodOctet = 10;
const fallbackPodCidr = `127.${firstPodOctet - 1}.0.0/16`;
/** The address KWOK reports as every node's InternalIP (and so every pod's hostIP). */
const nodeIP = '127.0.0.1';
const notReadyTaint = 'node.kubernetes.io/not-ready';

export interface KwokNodeOptions {
  /** How many nodes to add. */
  count: number;
  /** Allocatable per node: enough for a bench's thousand pods on one node. */
  pods?: number;
  cpu?: string;
  memory?: string;
}

export const kwokNodeDefaults = { pods: 2_000, cpu: '256', memory: '1Ti' } as const;

export interface KwokProcesses {
  scheduler: ManagedProcess;
  kwok: ManagedProcess;
  stop(): Promise<void>;
}

/** The stage files KWOK plays (test/fixtures/kwok/). */
export const kwokConfigFiles = ['kwok.yaml', 'nodes.yaml', 'pods.yaml', 'fates.yaml'].map((file) =>
  path.join(repoRoot, 'test', 'fixtures', 'kwok', file),
);

function httpsHealthy(url: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    // The scheduler serves a self-signed certificate; this only asks whether it is up.
    const req = https.get(url, { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout on ${url}`)));
    req.on('error', reject);
  });
}

/**
 * Starts kube-scheduler and KWOK against an apiserver, both as the admin identity in
 * `kubeconfigFile`; resolves once the scheduler answers /healthz. Nodes come separately
 * (`createKwokNodes`), so whoever needs more capacity can add it.
 */
export async function startKwokProcesses(kubeconfigFile: string, dir: string): Promise<KwokProcesses> {
  const schedulerPort = await freePort();
  const scheduler = startProcess('kube-scheduler', toolPath('kubeScheduler'), [
    ...kubeSchedulerArgs({ kubeconfigFile, port: schedulerPort, certDir: path.join(dir, 'scheduler-certs') }),
    // A bench binds a thousand pods at once; the default 50 QPS would be the bottleneck.
    '--kube-api-qps=1000',
    '--kube-api-burst=2000',
  ]);
  const kwok = startProcess('kwok', toolPath('kwok'), [
    `--kubeconfig=${kubeconfigFile}`,
    `--manage-nodes-with-annotation-selector=${kwokNodeAnnotation.key}=${kwokNodeAnnotation.value}`,
    `--node-ip=${nodeIP}`,
    `--cidr=${fallbackPodCidr}`,
    ...kwokConfigFiles.map((file) => `--config=${file}`),
  ]);
  const stop = async () => {
    await Promise.all([kwok.stop(), scheduler.stop()]);
  };
  try {
    await Promise.race([
      failOnExit(scheduler),
      failOnExit(kwok),
      waitFor(() => httpsHealthy(`https://127.0.0.1:${schedulerPort}/healthz`), {
        what: 'kube-scheduler /healthz',
        timeoutMs: 60_000,
        intervalMs: 200,
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { scheduler, kwok, stop };
}

/** A kubeconfig file for the KWOK and scheduler processes (token auth, the apiserver's CA). */
export function writeKubeconfigFile(file: string, endpoint: { server: string; caFile: string; token: string }): void {
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'corral-test', cluster: { server: endpoint.server, 'certificate-authority': endpoint.caFile } }],
    users: [{ name: 'corral-test-admin', user: { token: endpoint.token } }],
    contexts: [{ name: 'corral-test', context: { cluster: 'corral-test', user: 'corral-test-admin' } }],
    'current-context': 'corral-test',
  };
  // JSON is YAML; client-go reads either.
  fs.writeFileSync(file, JSON.stringify(kubeconfig, null, 2), { mode: 0o600 });
}

function nodeIndex(node: V1Node): number | undefined {
  const name = node.metadata?.name ?? '';
  if (!name.startsWith(nodeNamePrefix)) return undefined;
  const index = Number(name.slice(nodeNamePrefix.length));
  return Number.isInteger(index) ? index : undefined;
}

/**
 * Adds `count` fake Nodes that KWOK manages, each with its own pod CIDR in 127.0.0.0/8
 * (kwok-node-i: 127.(10+i).0.0/16), and waits until KWOK has made each Ready. Indexes continue
 * after the nodes already there, so a bench may add capacity to the shared cluster.
 */
export async function createKwokNodes(kubeConfig: KubeConfig, options: KwokNodeOptions): Promise<V1Node[]> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const settings = { ...kwokNodeDefaults, ...options };
  const existing = await core.listNode({}, bounded);
  const used = existing.items.map(nodeIndex).filter((i): i is number => i !== undefined);
  const first = used.length === 0 ? 0 : Math.max(...used) + 1;
  if (firstPodOctet + first + settings.count > 255) throw new Error('no 127.x.0.0/16 pod CIDR left for more nodes');
  const resources = { pods: String(settings.pods), cpu: settings.cpu, memory: settings.memory };
  const names: string[] = [];
  for (let i = first; i < first + settings.count; i++) {
    const name = `${nodeNamePrefix}${i}`;
    const podCIDR = `127.${firstPodOctet + i}.0.0/16`;
    names.push(name);
    await core.createNode(
      {
        body: {
          metadata: {
            name,
            annotations: { [kwokNodeAnnotation.key]: kwokNodeAnnotation.value },
            labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', type: 'kwok' },
          },
          spec: { podCIDR, podCIDRs: [podCIDR] },
          // The apiserver keeps a new Node's status; KWOK's node stage keeps these and adds the rest.
          status: { allocatable: resources, capacity: resources },
        },
      },
      bounded,
    );
  }
  const nodes = await Promise.all(
    names.map((name) =>
      waitFor(
        async () => {
          const node = await core.readNode({ name }, bounded);
          const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
          return ready?.status === 'True' ? node : undefined;
        },
        { what: `KWOK to make node ${name} Ready`, timeoutMs: 60_000, intervalMs: 100 },
      ),
    ),
  );
  // The apiserver's TaintNodesByCondition admission taints every new Node not-ready:NoSchedule;
  // the node lifecycle controller (controller-manager, not run here) lifts it once the node is
  // Ready. The harness does that part.
  return Promise.all(
    nodes.map((node) =>
      core.patchNode(
        {
          name: node.metadata?.name ?? '',
          body: { spec: { taints: (node.spec?.taints ?? []).filter((t) => t.key !== notReadyTaint) } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch, bounded),
      ),
    ),
  );
}

/**
 * Gives a pod a fate by annotation: KWOK then writes what the kubelet would (e.g. `oom` turns a
 * running pod Failed/OOMKilled). The test's part is one metadata patch, never a status write.
 */
export async function setPodFate(
  core: CoreV1Api,
  namespace: string,
  name: string,
  fate: KwokFate,
  options: { exitCode?: number } = {},
): Promise<void> {
  const annotations: Record<string, string> = { [kwokAnnotations.fate]: fate };
  if (options.exitCode !== undefined) annotations[kwokAnnotations.exitCode] = String(options.exitCode);
  await core.patchNamespacedPod(
    { namespace, name, body: { metadata: { annotations } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch, bounded),
  );
}

/** Lowers a live pod's activeDeadlineSeconds (allowed on a running pod): KWOK enforces it from startTime. */
export async function shortenPodDeadline(
  core: CoreV1Api,
  namespace: string,
  name: string,
  seconds: number,
): Promise<void> {
  await core.patchNamespacedPod(
    { namespace, name, body: { spec: { activeDeadlineSeconds: seconds } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch, bounded),
  );
}

/** Resolves once KWOK has started the pod's first container (Running), ready or not. */
export async function waitForPodStarted(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  await waitFor(
    async () =>
      (await core.readNamespacedPod({ namespace, name }, bounded)).status?.containerStatuses?.[0]?.state?.running !==
      undefined,
    { what: `KWOK to start ${name}'s container`, timeoutMs: 60_000 },
  );
}
