// The workers behind KWOK's pods: KWOK plays the kubelet but runs nothing, so this answers the
// worker protocol (src/demo-worker/demo-worker.ts's own code, one state per pod) for every pod of
// a namespace, as that pod's worker. Pod IPs are in 127.0.0.0/8 (test/harness/kwok.ts), so one
// listener on 0.0.0.0:<port> receives every pod's traffic for that port, and the address a
// connection was made to (`req.socket.localAddress`) says which pod was called.
//
// A pod answers while its container runs (phase Running, state running), it is not being deleted,
// and no killing fate (crash, crash-loop, oom, evict) was given to it; otherwise its connections
// are reset, as a dead process's would be. Its credentials are its mounted Secret's, read from
// the apiserver on each activation (they rotate). Pods are found by a list/watch of the
// namespace's corral pods, and by a direct lookup by pod IP when the watch has not caught up.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CoreV1Api, makeInformer, type Informer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import {
  createWorkerProtocol,
  serveWorkerProtocolRequest,
  type WorkerProtocol,
} from '../../src/demo-worker/demo-worker';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { corralLabels, credentialsFileName } from '../../src/runtime/kubernetes/pod-manifest';
import { killingFates, kwokAnnotations, setPodFate, type KwokFate } from './kwok';

const bounded = timeoutOptions(5_000);

export interface KwokWorkersOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Ports to listen on from the start (0: the kernel picks one; see `ports`). */
  ports?: number[];
  /**
   * Also listen on each port a pod of the namespace declares as `http` (default true), so a
   * test may pick the pool's port after the answerer started. Opened when the pod is first seen,
   * long before KWOK makes it Ready.
   */
  followPodPorts?: boolean;
}

export interface KwokWorkers {
  /** The ports listened on now. */
  ports(): number[];
  /** Opens one more listener (0: the kernel picks); resolves with its port. */
  listen(port: number): Promise<number>;
  /** Names of the pods whose worker answers now. */
  runningPods(): string[];
  /** The pod IP KWOK gave a pod, as last seen. */
  podIPOf(name: string): string | undefined;
  /**
   * Kills a running pod's worker the way a test/bench should: it stops answering at once, and
   * the fate annotation makes KWOK write the kubelet's status (Failed/OOMKilled, Evicted…).
   */
  kill(name: string, fate: KwokFate, options?: { exitCode?: number }): Promise<void>;
  /** The last error of the watch or a listener (they keep going); for diagnostics. */
  readonly lastError: unknown;
  stop(): Promise<void>;
}

const ipv4Mapped = /^::ffff:/;

function fateOf(pod: V1Pod): string | undefined {
  return pod.metadata?.annotations?.[kwokAnnotations.fate];
}

function httpPortOf(pod: V1Pod): number | undefined {
  return pod.spec?.containers[0]?.ports?.find((p) => p.name === 'http')?.containerPort;
}

function isAlive(pod: V1Pod, killed: Set<string>): boolean {
  const uid = pod.metadata?.uid ?? '';
  if (killed.has(uid) || pod.metadata?.deletionTimestamp) return false;
  if ((killingFates as readonly string[]).includes(fateOf(pod) ?? '')) return false;
  return pod.status?.phase === 'Running' && pod.status.containerStatuses?.[0]?.state?.running !== undefined;
}

export async function startKwokWorkers(options: KwokWorkersOptions): Promise<KwokWorkers> {
  const { kubeConfig, namespace } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const labelSelector = corralLabels.workerId;
  /** Pods by IP (the latest pod given that IP) and by name. */
  const byIP = new Map<string, V1Pod>();
  const byName = new Map<string, V1Pod>();
  /** One protocol state per pod (by uid): a pod that reuses an IP is a new worker. */
  const protocols = new Map<string, WorkerProtocol>();
  const killed = new Set<string>();
  const servers = new Map<number, http.Server>();
  let lastError: unknown;
  let stopped = false;

  const remember = (pod: V1Pod) => {
    const name = pod.metadata?.name ?? '';
    const previous = byName.get(name);
    if (previous?.status?.podIP && previous.status.podIP !== pod.status?.podIP) {
      if (byIP.get(previous.status.podIP)?.metadata?.uid === previous.metadata?.uid) byIP.delete(previous.status.podIP);
    }
    byName.set(name, pod);
    if (pod.status?.podIP) byIP.set(pod.status.podIP, pod);
    const port = httpPortOf(pod);
    if (options.followPodPorts !== false && port !== undefined && !servers.has(port)) {
      listen(port).catch((err: unknown) => (lastError = err));
    }
  };
  const forget = (pod: V1Pod) => {
    const name = pod.metadata?.name ?? '';
    const uid = pod.metadata?.uid ?? '';
    if (byName.get(name)?.metadata?.uid === uid) byName.delete(name);
    const ip = pod.status?.podIP;
    if (ip && byIP.get(ip)?.metadata?.uid === uid) byIP.delete(ip);
    protocols.delete(uid);
    killed.delete(uid);
  };

  /** The pod at `ip`: from the watch, else asked of the apiserver (the watch may lag the caller's). */
  const podAt = async (ip: string): Promise<V1Pod | undefined> => {
    const known = byIP.get(ip);
    if (known) return known;
    const found = await core.listNamespacedPod(
      { namespace, labelSelector, fieldSelector: `status.podIP=${ip}` },
      bounded,
    );
    const pod = found.items.find((p) => !p.metadata?.deletionTimestamp);
    if (pod) remember(pod);
    return pod;
  };

  const protocolFor = (pod: V1Pod): WorkerProtocol => {
    const uid = pod.metadata?.uid ?? '';
    let protocol = protocols.get(uid);
    if (!protocol) {
      const secretName = pod.spec?.volumes?.find((v) => v.name === 'credentials')?.secret?.secretName;
      protocol = createWorkerProtocol({
        workerId: pod.metadata?.labels?.[corralLabels.workerId] ?? '',
        // The mounted secret, as the kubelet would project it: read when the worker reads its file.
        readCredentials: async () => {
          if (!secretName) return undefined;
          const secret = await core.readNamespacedSecret({ namespace, name: secretName }, bounded);
          const content = secret.data?.[credentialsFileName];
          return content === undefined
            ? undefined
            : (JSON.parse(Buffer.from(content, 'base64').toString('utf8')) as unknown);
        },
      });
      protocols.set(uid, protocol);
    }
    return protocol;
  };

  const refuse = (socket: Socket) => socket.destroy();

  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const ip = (req.socket.localAddress ?? '').replace(ipv4Mapped, '');
    const port = req.socket.localPort;
    podAt(ip).then(
      (pod) => {
        // Nothing of this namespace at that address and port: as if nothing listened there.
        if (!pod || httpPortOf(pod) !== port || !isAlive(pod, killed)) return refuse(req.socket);
        serveWorkerProtocolRequest(req, res, protocolFor(pod));
      },
      (err: unknown) => {
        lastError = err;
        refuse(req.socket);
      },
    );
  };

  async function listen(port: number): Promise<number> {
    if (servers.has(port)) return port;
    const server = http.createServer(handle);
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    if (port !== 0) servers.set(port, server);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '0.0.0.0', () => resolve());
      });
    } catch (err) {
      servers.delete(port);
      throw err;
    }
    const actual = (server.address() as AddressInfo).port;
    servers.set(actual, server);
    return actual;
  }

  const informer: Informer<V1Pod> = makeInformer(
    kubeConfig,
    `/api/v1/namespaces/${namespace}/pods`,
    () => core.listNamespacedPod({ namespace, labelSelector }, bounded),
    labelSelector,
  );
  informer.on('add', remember);
  informer.on('update', remember);
  informer.on('delete', forget);
  informer.on('error', (err: unknown) => {
    lastError = err;
    // client-node's informer stops on an error; start it again after a pause, as a kubelet would.
    const restart = () => {
      if (!stopped) informer.start().catch((e: unknown) => (lastError = e));
    };
    if (!stopped) setTimeout(restart, 1_000);
  });
  await informer.start();
  for (const port of options.ports ?? []) await listen(port);

  return {
    ports: () => [...servers.keys()],
    listen,
    runningPods: () => [...byName.values()].filter((p) => isAlive(p, killed)).map((p) => p.metadata?.name ?? ''),
    podIPOf: (name) => byName.get(name)?.status?.podIP,
    async kill(name, fate, killOptions = {}) {
      if ((killingFates as readonly string[]).includes(fate)) {
        const pod = byName.get(name) ?? (await core.readNamespacedPod({ namespace, name }, bounded));
        const uid = pod.metadata?.uid;
        if (uid) killed.add(uid);
      }
      await setPodFate(core, namespace, name, fate, killOptions);
    },
    get lastError() {
      return lastError;
    },
    async stop() {
      stopped = true;
      await informer.stop();
      await Promise.all(
        [...new Set(servers.values())].map(
          (server) =>
            new Promise<void>((resolve) => {
              server.closeAllConnections();
              server.close(() => resolve());
            }),
        ),
      );
      servers.clear();
    },
  };
}
