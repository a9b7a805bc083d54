// How fast a pod's fate reaches the caller waiting on it: for each kubelet-written status (and
// a deletion), the time from just before the status patch is sent to awaitReady resolving with
// the typed verdict, through the runtime's watch. Real kube-apiserver + etcd on this machine.
// Usage: node --require tsx/cjs bench/kube-readiness.ts [rounds] → JSON.
import { performance } from 'node:perf_hooks';
import { CoreV1Api } from '@kubernetes/client-node';
import { provisionTools } from '../src/embedded/tools';
import { KubernetesPodRuntime } from '../src/runtime/kubernetes/kubernetes-runtime';
import { FakeKubelet } from '../test/harness/fake-kubelet';
import { kubeConfigFor, startKube } from '../test/harness/kube';
import { createTestNamespace } from '../test/harness/kube-namespace';
import { kubeletScenarios } from '../test/fixtures/kubelet-pod-statuses';
import { credentials, newWorkerId } from '../test/integration/runtime-behaviour';
import { summarise } from './stats';

async function main() {
  const rounds = Number(process.argv[2] ?? 10);
  Object.assign(process.env, provisionTools(['kube']));
  const kube = await startKube();
  try {
    const admin = kubeConfigFor(kube);
    const namespace = await createTestNamespace(admin, 'bench');
    const core = admin.makeApiClient(CoreV1Api);
    const kubelet = new FakeKubelet(admin, namespace);
    const runtime = new KubernetesPodRuntime({ kubeConfig: admin, namespace, notScheduledGraceMs: 0 });
    const names = Object.keys(kubeletScenarios(new Date(), { notScheduledGraceMs: 0 })).filter(
      (name) => kubeletScenarios(new Date(), { notScheduledGraceMs: 0 })[name]!.expected !== 'pending',
    );
    const all: number[] = [];
    const byScenario: Record<string, ReturnType<typeof summarise> & { verdict: string }> = {};
    for (const name of [...names, 'deleted']) {
      const samples: number[] = [];
      let verdict = '';
      for (let round = 0; round < rounds; round++) {
        const { ref } = await runtime.create(
          {
            workerId: newWorkerId(),
            pool: 'bench',
            spawnAttempt: 1,
            epoch: 1,
            image: 'registry.example/corral/demo-worker:0.1.0',
            resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 200, memoryMiB: 64 } },
            maxLifetimeSeconds: 3_600,
          },
          credentials(1),
        );
        let markWaiting!: () => void;
        const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
        const outcome = runtime.awaitReady(ref, { timeoutMs: 60_000, onWaiting: markWaiting });
        await waiting;
        const t0 = performance.now();
        if (name === 'deleted') await core.deleteNamespacedPod({ namespace, name: ref.name, gracePeriodSeconds: 0 });
        else await kubelet.setStatus(ref.name, kubeletScenarios(new Date(), { notScheduledGraceMs: 0 })[name]!.status);
        const result = await outcome;
        const ms = performance.now() - t0;
        verdict = result.status === 'ready' ? 'ready' : result.reason;
        samples.push(ms);
        all.push(ms);
        await runtime.delete(ref);
      }
      byScenario[name] = { verdict, ...summarise(samples) };
    }
    console.log(
      JSON.stringify(
        {
          bench: 'kube-readiness',
          unit: 'ms',
          measure: 'status patch sent → awaitReady resolved',
          rounds,
          all: summarise(all),
          byScenario,
        },
        null,
        2,
      ),
    );
  } finally {
    await kube.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
