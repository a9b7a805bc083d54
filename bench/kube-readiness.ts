// How fast a pod's fate reaches the caller waiting on it, on a real kube-apiserver + etcd +
// kube-scheduler with KWOK playing the kubelet (test/harness/kwok.ts), through the runtime's watch:
//   byFate:    a started, not-ready pod is given a fate by annotation (or deleted); from just
//              before that one patch is sent to awaitReady resolving with the typed verdict;
//   fromCreate: a pod whose image decides its fate (or that no node can hold); from create to
//              the verdict: scheduling, KWOK's stages and the watch;
//   fleet:     `fleet` pods created at once, create → ready for each (KWOK at scale).
// Usage: node --require tsx/cjs bench/kube-readiness.ts [rounds] [fleet] → JSON.
import { performance } from 'node:perf_hooks';
import { CoreV1Api } from '@kubernetes/client-node';
import { provisionTools } from '../src/embedded/tools';
import { KubernetesPodRuntime } from '../src/runtime/kubernetes/kubernetes-runtime';
import type { ReadinessOutcome } from '../src/runtime/pod-runtime';
import type { WorkerPodSpecInput } from '../src/runtime/worker-pod-spec';
import { kubeConfigFor, startKube } from '../test/harness/kube';
import { createTestNamespace } from '../test/harness/kube-namespace';
import { kwokFateImage, setPodFate, waitForPodStarted, type KwokFate } from '../test/harness/kwok';
import { credentials, newWorkerId } from '../test/integration/runtime-behaviour';
import { summarise } from './stats';
import type { WorkerPodRef } from '../src/common';

type Timed = ReturnType<typeof summarise> & { verdict: string };

async function main() {
  const rounds = Number(process.argv[2] ?? 10);
  const fleet = Number(process.argv[3] ?? 0);
  Object.assign(process.env, provisionTools(['kube']));
  const kube = await startKube({ nodes: 2 });
  try {
    const admin = kubeConfigFor(kube);
    const namespace = await createTestNamespace(admin, 'bench');
    const core = admin.makeApiClient(CoreV1Api);
    const runtime = new KubernetesPodRuntime({ kubeConfig: admin, namespace, notScheduledGraceMs: 0 });
    const spec = (overrides: Partial<WorkerPodSpecInput> = {}): WorkerPodSpecInput => ({
      workerId: newWorkerId(),
      pool: 'bench',
      spawnAttempt: 1,
      epoch: 1,
      image: kwokFateImage('unready'),
      resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 200, memoryMiB: 64 } },
      maxLifetimeSeconds: 3_600,
      ...overrides,
    });
    const wait = (ref: WorkerPodRef, onWaiting?: () => void): Promise<ReadinessOutcome> =>
      runtime.awaitReady(ref, { timeoutMs: 120_000, onWaiting });
    const verdictOf = (o: ReadinessOutcome) => (o.status === 'ready' ? 'ready' : o.reason);

    const byFate: Record<string, Timed> = {};
    for (const fate of ['ready', 'crash', 'crash-loop', 'oom', 'evict', 'deleted'] as const) {
      const samples: number[] = [];
      let verdict = '';
      for (let round = 0; round < rounds; round++) {
        const { ref } = await runtime.create(spec(), credentials(1));
        // Started (not ready) first, so the patch is all that is left between the pod and its verdict.
        await waitForPodStarted(core, namespace, ref.name);
        let markWaiting!: () => void;
        const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
        const outcome = wait(ref, markWaiting);
        await waiting;
        const t0 = performance.now();
        if (fate === 'deleted') await core.deleteNamespacedPod({ namespace, name: ref.name, gracePeriodSeconds: 0 });
        else await setPodFate(core, namespace, ref.name, fate);
        const result = await outcome;
        samples.push(performance.now() - t0);
        verdict = verdictOf(result);
        await runtime.delete(ref);
      }
      byFate[fate] = { verdict, ...summarise(samples) };
    }

    const fromCreate: Record<string, Timed> = {};
    const imageFates: KwokFate[] = ['ready', 'image-pull-backoff', 'invalid-image', 'config-error', 'oom', 'evict'];
    const cases: [string, Partial<WorkerPodSpecInput>][] = [
      ...imageFates.map((fate): [string, Partial<WorkerPodSpecInput>] => [fate, { image: kwokFateImage(fate) }]),
      [
        'unschedulable',
        {
          resources: { requests: { cpuMillis: 512_000, memoryMiB: 64 }, limits: { cpuMillis: 512_000, memoryMiB: 64 } },
        },
      ],
    ];
    for (const [name, overrides] of cases) {
      const samples: number[] = [];
      let verdict = '';
      for (let round = 0; round < rounds; round++) {
        const t0 = performance.now();
        const { ref } = await runtime.create(spec(overrides), credentials(1));
        const result = await wait(ref);
        samples.push(performance.now() - t0);
        verdict = verdictOf(result);
        await runtime.delete(ref);
      }
      fromCreate[name] = { verdict, ...summarise(samples) };
    }

    let fleetResult: (ReturnType<typeof summarise> & { pods: number; ready: number; wallMs: number }) | undefined;
    if (fleet > 0) {
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: fleet }, async () => {
          const start = performance.now();
          const { ref } = await runtime.create(spec({ image: kwokFateImage('ready') }), credentials(1));
          const result = await wait(ref);
          return { ref, ms: performance.now() - start, ready: result.status === 'ready' };
        }),
      );
      fleetResult = {
        pods: fleet,
        ready: results.filter((r) => r.ready).length,
        wallMs: Math.round(performance.now() - t0),
        ...summarise(results.map((r) => r.ms)),
      };
      await Promise.all(results.map((r) => runtime.delete(r.ref)));
    }

    await runtime.close();
    console.log(
      JSON.stringify(
        {
          bench: 'kube-readiness',
          unit: 'ms',
          kubelet: 'KWOK v0.8.0 + kube-scheduler v1.34.4',
          rounds,
          byFate: { measure: 'fate annotation (or delete) sent → awaitReady resolved', ...byFate },
          fromCreate: { measure: 'create → awaitReady resolved', ...fromCreate },
          ...(fleetResult ? { fleet: { measure: 'N creates at once, each create → ready', ...fleetResult } } : {}),
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
