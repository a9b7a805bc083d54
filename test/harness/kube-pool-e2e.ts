// Pools end to end on the Kubernetes runtime: the real dev server, a fresh registry, a
// KubernetesPodRuntime against the run's real kube-apiserver (a fresh namespace), an in-process
// corral worker with every activity, a CorralClient, and pods that really get scheduled and run.
//
// The real kube-scheduler binds each pod to a KWOK node and KWOK plays the kubelet (Running,
// Ready, a pod IP in 127.0.0.0/8: test/harness/kwok.ts); the worker behind each pod IP is the
// demo worker's protocol code answering in this process (test/harness/kwok-workers.ts), with the
// pod's Secret as its credentials, on whatever port the pool's pods declare.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import { kubeConfigFor } from './kube';
import { createTestNamespace } from './kube-namespace';
import { startKwokWorkers, type KwokWorkers } from './kwok-workers';
import { startPoolWorld, type PoolWorld } from './pool-e2e';
import { useTestRegistry, type TestRegistry } from './registry';
import { useKube, useTemporalDevServer, type TemporalEndpoint } from './shared';

export interface KubePoolE2e extends PoolWorld {
  temporal: TemporalEndpoint;
  client: Client;
  registry: TestRegistry;
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  runtime: KubernetesPodRuntime;
  /** The workers behind the pods' IPs (KWOK plays the kubelet; these answer as the containers). */
  workers: KwokWorkers;
  /** The same as `workers`, under the name the tests used when the harness played kubelet itself. */
  kubelet: KwokWorkers;
  close(): Promise<void>;
}

export async function useKubePoolE2e(): Promise<KubePoolE2e> {
  const kube = await useKube();
  const kubeConfig = kubeConfigFor(kube.value);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const namespace = await createTestNamespace(kubeConfig, 'kpool');
  const workers = await startKwokWorkers({ kubeConfig, namespace });

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
    explainWait: () => (workers.lastError instanceof Error ? `; pod workers: ${workers.lastError.message}` : ''),
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
    workers,
    kubelet: workers,
    async close() {
      await world.stop();
      for (const managed of await runtime.listManaged()) {
        const { workerId, pool, spawnAttempt, name } = managed;
        await runtime.delete({ workerId, pool, spawnAttempt, name });
      }
      await workers.stop();
      await runtime.close();
      // Without a controller-manager the namespace stays Terminating; the run's apiserver goes anyway.
      await core.deleteNamespace({ name: namespace }).catch(() => undefined);
      await clientConnection.close();
      await registry.close();
      await temporal.release();
      await kube.release();
    },
  };
}
