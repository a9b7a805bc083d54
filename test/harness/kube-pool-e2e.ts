// Pools end to end on the Kubernetes runtime: the real dev server, a fresh registry, a
// KubernetesPodRuntime against the run's real kube-apiserver (a fresh namespace), an in-process
// corral worker with every activity, a CorralClient, and a kubelet that really runs the pods.
//
// The apiserver has no nodes, so `DemoWorkerKubelet` plays the kubelet for corral's pods: for each
// pod it mounts the pod's Secret as files, runs the real demo worker with the pod's environment on
// a loopback address of its own (127.0.0.N, the "pod IP", so every pod may use the pool's one
// port), runs the pod's readiness probe against it, and reports Running/Ready with that pod IP
// through `pods/status`. A worker that exits turns its pod Failed; a deleted pod stops its worker.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { startProcess, type ManagedProcess } from '../../src/embedded/child-process';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import { statusCodeOf } from '../../src/runtime/kubernetes/api-call';
import { managedBySelector } from '../../src/runtime/kubernetes/pod-manifest';
import { kubeletScenarios } from '../fixtures/kubelet-pod-statuses';
import { FakeKubelet } from './fake-kubelet';
import { kubeConfigFor } from './kube';
import { createTestNamespace } from './kube-namespace';
import { demoWorkerImage, startPoolWorld, type PoolWorld } from './pool-e2e';
import { useTestRegistry, type TestRegistry } from './registry';
import { useKube, useTemporalDevServer, type TemporalEndpoint } from './shared';

interface RunningPod {
  name: string;
  uid: string;
  podIP: string;
  port: number;
  probePath: string;
  process: ManagedProcess;
  /** Where the pod's secret volumes are "mounted": secret name → local directory. */
  mounts: Map<string, string>;
  /** The resourceVersion of each mounted secret last written, so an update is re-synced. */
  synced: Map<string, string>;
  ready: boolean;
  failed: boolean;
}

export class DemoWorkerKubelet {
  private readonly core: CoreV1Api;
  private readonly status: FakeKubelet;
  private readonly pods = new Map<string, RunningPod>();
  private nextHost = 2;
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** The last error of a sync round (the loop keeps going, as a kubelet does); for diagnostics. */
  lastError: unknown;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly dir: string,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.status = new FakeKubelet(kubeConfig, namespace);
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          await this.syncOnce();
        } catch (err) {
          this.lastError = err;
        }
        await delay(100);
      }
    })();
  }

  /** Names of the pods whose demo worker process is running now. */
  runningPods(): string[] {
    return [...this.pods.values()]
      .filter((p) => p.process.child.exitCode === null && p.process.child.signalCode === null)
      .map((p) => p.name);
  }

  /** The pod IP this kubelet gave a pod (undefined if it never ran it). */
  podIPOf(name: string): string | undefined {
    return this.pods.get(name)?.podIP;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.all([...this.pods.keys()].map((name) => this.stopPod(name)));
  }

  private async syncOnce(): Promise<void> {
    const [pods, secrets] = await Promise.all([
      this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: managedBySelector }),
      this.core.listNamespacedSecret({ namespace: this.namespace, labelSelector: managedBySelector }),
    ]);
    const live = new Map(
      pods.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => [p.metadata?.uid ?? '', p] as const),
    );
    // Gone (or being deleted): stop its worker, as the kubelet kills the containers.
    for (const running of [...this.pods.values()]) {
      if (!live.has(running.uid)) await this.stopPod(running.name);
    }
    const secretByName = new Map(secrets.items.map((s) => [s.metadata?.name ?? '', s] as const));
    for (const pod of live.values()) {
      const name = pod.metadata?.name ?? '';
      let running = this.pods.get(name);
      if (!running) {
        if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') continue;
        running = this.startPod(pod, secretByName);
        if (!running) continue;
      } else {
        syncSecrets(running.mounts, running.synced, secretByName);
      }
      await this.reportStatus(running);
    }
  }

  /**
   * Starts the pod's one container: the demo worker, with the pod's env and its secret volumes as
   * files. Undefined while a secret it mounts does not exist yet (the kubelet retries the mount).
   */
  private startPod(pod: V1Pod, secrets: Map<string, V1Secret>): RunningPod | undefined {
    const name = pod.metadata?.name ?? '';
    const container = pod.spec?.containers[0];
    if (!container) throw new Error(`pod ${name} has no container`);
    const port = container.ports?.find((p) => p.name === 'http')?.containerPort;
    if (port === undefined) throw new Error(`pod ${name} declares no http port`);
    const podDir = path.join(this.dir, name);
    const mounts = new Map<string, string>();
    const mountPaths = new Map<string, string>();
    for (const mount of container.volumeMounts ?? []) {
      const secretName = pod.spec?.volumes?.find((v) => v.name === mount.name)?.secret?.secretName;
      if (!secretName) continue;
      if (!secrets.has(secretName)) return undefined;
      const local = path.join(podDir, 'volumes', mount.name);
      mounts.set(secretName, local);
      mountPaths.set(mount.mountPath, local);
    }
    const home = path.join(podDir, 'home');
    fs.mkdirSync(home, { recursive: true, mode: 0o700 });
    for (const local of mounts.values()) fs.mkdirSync(local, { recursive: true, mode: 0o700 });
    const synced = new Map<string, string>();
    syncSecrets(mounts, synced, secrets);

    const podIP = `127.0.0.${this.nextHost++}`;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, HOST: podIP };
    for (const variable of container.env ?? []) {
      let value = variable.value ?? '';
      for (const [mountPath, local] of mountPaths) {
        if (value === mountPath || value.startsWith(`${mountPath}/`)) value = local + value.slice(mountPath.length);
      }
      env[variable.name] = value;
    }
    const running: RunningPod = {
      name,
      uid: pod.metadata?.uid ?? '',
      podIP,
      port,
      probePath: container.readinessProbe?.httpGet?.path ?? '/healthz',
      process: startProcess(`kube-pod-${name}`, demoWorkerImage, container.args ?? [], { env, cwd: home }),
      mounts,
      synced,
      ready: false,
      failed: false,
    };
    this.pods.set(name, running);
    return running;
  }

  /** Runs the readiness probe and reports the status a kubelet would: Ready, or Failed on exit. */
  private async reportStatus(running: RunningPod): Promise<void> {
    if (running.failed) return;
    const exitCode = running.process.child.exitCode;
    if (exitCode !== null || running.process.child.signalCode !== null) {
      running.failed = true;
      await this.patchStatus(running, failedStatus(running, exitCode ?? 137));
      return;
    }
    if (running.ready) return;
    const answered = await fetch(`http://${running.podIP}:${running.port}${running.probePath}`, {
      signal: AbortSignal.timeout(1_000),
    }).then(
      async (res) => {
        await res.body?.cancel();
        return res.ok;
      },
      () => false,
    );
    if (!answered) return;
    const ready = kubeletScenarios(new Date(), { notScheduledGraceMs: 120_000 }).ready.status;
    await this.patchStatus(running, { ...ready, ...podAddresses(running.podIP) });
    running.ready = true;
  }

  private async patchStatus(running: RunningPod, status: Record<string, unknown>): Promise<void> {
    try {
      await this.status.setStatus(running.name, status);
    } catch (err) {
      // Deleted meanwhile: the next round stops its worker.
      if (statusCodeOf(err) !== 404) throw err;
    }
  }

  private async stopPod(name: string): Promise<void> {
    const running = this.pods.get(name);
    if (!running) return;
    await running.process.stop(5_000);
    this.pods.delete(name);
    fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
  }
}

/** Writes each mounted secret's keys as files (0600, atomically), again whenever the secret changes. */
function syncSecrets(mounts: Map<string, string>, synced: Map<string, string>, secrets: Map<string, V1Secret>): void {
  for (const [secretName, local] of mounts) {
    const secret = secrets.get(secretName);
    const version = secret?.metadata?.resourceVersion ?? '';
    if (!secret || synced.get(secretName) === version) continue;
    for (const [key, value] of Object.entries(secret.data ?? {})) {
      const file = path.join(local, key);
      fs.writeFileSync(`${file}.tmp`, Buffer.from(value, 'base64'), { mode: 0o600 });
      fs.renameSync(`${file}.tmp`, file);
    }
    synced.set(secretName, version);
  }
}

function podAddresses(ip: string) {
  return { hostIP: ip, hostIPs: [{ ip }], podIP: ip, podIPs: [{ ip }] };
}

function failedStatus(running: RunningPod, exitCode: number): Record<string, unknown> {
  const at = new Date().toISOString();
  return {
    phase: 'Failed',
    ...podAddresses(running.podIP),
    conditions: [
      { type: 'Ready', status: 'False', lastProbeTime: null, lastTransitionTime: at, reason: 'PodFailed' },
      { type: 'ContainersReady', status: 'False', lastProbeTime: null, lastTransitionTime: at, reason: 'PodFailed' },
    ],
    containerStatuses: [
      {
        name: 'worker',
        image: 'registry.example/corral/demo-worker:0.1.0',
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: { terminated: { exitCode, reason: 'Error', startedAt: at, finishedAt: at } },
      },
    ],
  };
}

export interface KubePoolE2e extends PoolWorld {
  temporal: TemporalEndpoint;
  client: Client;
  registry: TestRegistry;
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  runtime: KubernetesPodRuntime;
  kubelet: DemoWorkerKubelet;
  close(): Promise<void>;
}

export async function useKubePoolE2e(): Promise<KubePoolE2e> {
  const kube = await useKube();
  const kubeConfig = kubeConfigFor(kube.value);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kubeConfig, 'kpool');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-kubelet-'));
  const kubelet = new DemoWorkerKubelet(kubeConfig, namespace, dir);
  kubelet.start();

  const temporal = await useTemporalDevServer();
  const registry = await useTestRegistry();
  const clientConnection = await Connection.connect({ address: temporal.value.address });
  const client = new Client({ connection: clientConnection, namespace: temporal.value.namespace });
  const runtime = new KubernetesPodRuntime({ kubeConfig, namespace, unreachableAfterMs: 10_000 });
  const world = await startPoolWorld({
    temporal: temporal.value,
    client,
    registry,
    runtime,
    explainWait: () => (kubelet.lastError instanceof Error ? `; kubelet: ${kubelet.lastError.message}` : ''),
  });

  return {
    ...world,
    temporal: temporal.value,
    client,
    registry,
    kubeConfig,
    core,
    namespace,
    runtime,
    kubelet,
    async close() {
      await world.stop();
      for (const managed of await runtime.listManaged()) {
        const { workerId, pool, spawnAttempt, name } = managed;
        await runtime.delete({ workerId, pool, spawnAttempt, name });
      }
      await kubelet.stop();
      await runtime.close();
      // Without a controller-manager the namespace stays Terminating; the run's apiserver goes anyway.
      await core.deleteNamespace({ name: namespace }).catch(() => undefined);
      await clientConnection.close();
      await registry.close();
      await temporal.release();
      await kube.release();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
