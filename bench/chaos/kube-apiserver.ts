// Drill 3: the kube-apiserver fails during spawns (kubernetes runtime on the KWOK harness:
// etcd + kube-apiserver + kube-scheduler + KWOK, test/harness/kube.ts; the worker protocol for
// every pod IP answered by bench/fleet-kwok-workers.ts in a child process).
// The replicas reach the apiserver through the fault proxy (test/harness/fault-proxy.ts).
// - 5xx burst: a fill of 10 starts; for 15 s the proxy answers half of all non-watch requests
//   with 500/503 (alternating) instead of forwarding them.
// - restart: two fresh replicas that reach the apiserver directly (no proxy) replace the first
//   two; the pool is scaled to 16; once the new spawns are under way the apiserver is stopped,
//   held down 10 s, and started again (same port, certificates, etcd). A poll of the pods (no
//   watch) records when Kubernetes saw each pod Ready, beside the row's state_since.
// After each: the time until every spawn completed (minIdle idle, nothing starting); checked: no
// duplicate pod (two live pods for one worker id), no orphan pod of an ended row, and the usual
// invariants.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CoreV1Api } from '@kubernetes/client-node';
import type { PoolSpecInput } from '../../src/config/pool-spec';
import { failOnExit, nextMessage, startProcess } from '../../src/embedded/child-process';
import { provisionTools, repoRoot } from '../../src/embedded/tools';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { corralLabels } from '../../src/runtime/kubernetes/pod-manifest';
import { startFaultProxy } from '../../test/harness/fault-proxy';
import { kubeConfigFor, startKube } from '../../test/harness/kube';
import { createTestNamespace } from '../../test/harness/kube-namespace';
import { kwokFateImage, writeKubeconfigFile } from '../../test/harness/kwok';
import {
  allPass,
  bounded,
  checkInvariants,
  drainAtEnd,
  hold,
  registrySampler,
  runDrill,
  say,
  since,
  startReplica,
  startWorld,
  until,
  type World,
} from './support';

export async function kubeApiserverDrill(): Promise<Record<string, unknown>> {
  const pool = 'kfault';
  const world = await startWorld({ name: 'kube' });
  const result: Record<string, unknown> = {};
  return runDrill('kube-apiserver', world, result, async () => {
    Object.assign(process.env, provisionTools(['kube']));
    say('kube-apiserver: starting etcd, kube-apiserver, kube-scheduler, KWOK');
    const kube = await startKube({ nodes: 1 });
    world.cleanups.push('kube', () => kube.stop());
    const admin = kubeConfigFor(kube);
    const core = admin.makeApiClient(CoreV1Api);
    const namespace = await createTestNamespace(admin, 'chaos');

    let burstUntil = 0;
    let n = 0;
    const proxy = await startFaultProxy(
      { server: kube.server, caFile: kube.caFile, keyFile: kube.servingKeyFile },
      ({ watch }) => {
        if (watch || performance.now() > burstUntil) return undefined;
        n++;
        return n % 2 === 0 ? (n % 4 === 0 ? 500 : 503) : undefined;
      },
    );
    world.cleanups.push('fault proxy', () => proxy.close());
    const kubeconfigFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'corral-chaos-kube-')), 'kubeconfig');
    writeKubeconfigFile(kubeconfigFile, { server: proxy.server, caFile: kube.caFile, token: kube.adminToken });
    // The restart phase's replicas talk to the apiserver directly: no proxy in the way of their watches.
    const directKubeconfigFile = path.join(path.dirname(kubeconfigFile), 'kubeconfig-direct');
    writeKubeconfigFile(directKubeconfigFile, { server: kube.server, caFile: kube.caFile, token: kube.adminToken });
    world.cleanups.push('kubeconfig', async () => fs.rmSync(path.dirname(kubeconfigFile), { recursive: true }));

    const podWorkers = startProcess(
      'chaos-kwok-workers',
      process.execPath,
      [
        '--require',
        require.resolve('tsx/cjs'),
        path.join(repoRoot, 'bench', 'fleet-kwok-workers.ts'),
        JSON.stringify({ server: kube.server, caFile: kube.caFile, adminToken: kube.adminToken, namespace }),
      ],
      { ipc: true, cwd: repoRoot },
    );
    world.cleanups.push('pod workers', () => podWorkers.stop(5_000));
    const ready = await bounded(
      Promise.race([failOnExit(podWorkers), nextMessage(podWorkers, 'ready')]),
      120_000,
      'pod workers ready',
    );

    const env = { CORRAL_RUNTIME: 'kubernetes', CORRAL_KUBE_NAMESPACE: namespace, KUBECONFIG: kubeconfigFile };
    let a = await startReplica(world, 'kube-a', env);
    const b = await startReplica(world, 'kube-b', env);
    const spec: PoolSpecInput = {
      name: pool,
      runtime: 'kubernetes',
      image: kwokFateImage('ready'),
      port: Number(ready.port),
      minIdle: 10,
      maxWorkers: 20,
      refillPerMinute: 600,
      releasePolicy: 'recycle',
      resources: { requests: { cpuMillis: 10, memoryMiB: 16 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
      deadlines: { spawn: '2m', activation: '30s', maxLifetime: '24h', drain: '1m' },
    };
    result.setup = {
      cluster: 'etcd + kube-apiserver + kube-scheduler + KWOK (1 node), replicas through the fault proxy',
      pool: spec,
      replicas: 2,
      faults: [
        '5xx burst: 15 s of 500/503 on half of all non-watch requests, from the moment the fill of 10 starts',
        'apiserver restart (replicas replaced by two that reach the apiserver directly): stopped 10 s while the pool scales 10 → 16, then started again',
      ],
    };
    const sampler = registrySampler(world.db, pool);
    const filledTo = (want: number) =>
      until(
        async () => {
          const c = (await a.corral.getPool(pool))?.counts;
          return c && c.idle === want && !c.spawning && !c.activating;
        },
        { timeoutMs: 300_000, what: `${want} idle` },
      );

    // 5xx burst during the first fill.
    const burstFrom = performance.now();
    burstUntil = burstFrom + 15_000;
    await a.corral.applyPool(spec);
    const first = await filledTo(10);
    const injected = proxy.log.filter((r) => r.injected !== undefined);
    result.burst = {
      injected: injected.length,
      injected_by_request: countBy(
        injected.map((r) => `${r.method} ${r.url.replace(/\?.*$/, '').replace(/[a-z0-9-]{20,}/g, '<name>')}`),
      ),
      fill_completed_ms: first ? since(burstFrom) : null,
      pods: await podCensus(world, core, namespace, pool),
    };
    say(`kube-apiserver: burst ${JSON.stringify(result.burst)}`);

    // Apiserver restart during the scale-up, with replicas that reach the apiserver directly.
    await Promise.all([a.proc.stop(30_000), b.proc.stop(30_000)]);
    const directEnv = { ...env, KUBECONFIG: directKubeconfigFile };
    a = await startReplica(world, 'kube-c', directEnv);
    await startReplica(world, 'kube-d', directEnv);
    await a.corral.applyPool({ ...spec, minIdle: 16 });
    await until(
      async () => {
        const c = (await a.corral.getPool(pool))?.counts;
        return c && (c.spawning ?? 0) + (c.activating ?? 0) > 0;
      },
      { timeoutMs: 60_000, intervalMs: 50, what: 'spawns under way' },
    );
    const downAt = performance.now();
    await kube.stopApiserver();
    await hold(10_000);
    await kube.startApiserver();
    const upAt = performance.now();
    say(`kube-apiserver: apiserver back after ${Math.round(upAt - downAt)} ms`);
    // Kubernetes' own view, by polling (no watch to lose): when each pod was first seen Ready, to
    // tell a slow kubelet (KWOK) from corral not noticing a Ready pod.
    const podReady = readyPoller(core, namespace, upAt);
    const second = await filledTo(16);
    const readyAt = await podReady.stop();
    const { rows: rowsNow } = await world.db.query<{ id: string; pod_name: string | null; state_since: Date }>(
      'SELECT id, pod_name, state_since FROM workers WHERE pool = $1',
      [pool],
    );
    const upWall = Date.now() - since(upAt);
    result.restart = {
      down_ms: Math.round(upAt - downAt),
      fill_completed_after_restart_ms: second ? since(upAt) : null,
      pods_ready_after_restart: Object.fromEntries(
        [...readyAt].map(([name, ms]) => {
          const row = rowsNow.find((r) => r.pod_name === name);
          return [
            name,
            { kubernetes_ready_ms: ms, row_state_since_ms: row ? row.state_since.getTime() - upWall : null },
          ];
        }),
      ),
      respawned_rows: (
        await world.db.query<{ worker_id: string; failure_reason: string | null; at: Date }>(
          `SELECT t.worker_id, t.failure_reason, t.at FROM worker_transitions t JOIN workers w ON w.id = t.worker_id
         WHERE w.pool = $1 AND t.failure_reason IS NOT NULL ORDER BY t.at`,
          [pool],
        )
      ).rows.map((r) => ({ id: r.worker_id, reason: r.failure_reason, at_ms_since_restart: r.at.getTime() - upWall })),
      pods: await podCensus(world, core, namespace, pool),
    };
    await sampler.stop();
    const invariants = await checkInvariants(world, {
      pool,
      seen: sampler.seen,
      livePods: (ids) => livePodsById(core, namespace, ids),
    });
    result.invariants = invariants;
    result.invariants_pass = allPass(invariants) && first !== null && second !== null;
    result.timeline = sampler.timeline;
    await drainAtEnd(a.corral, pool);
  });
}

function countBy(items: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[i] = (out[i] ?? 0) + 1;
  return out;
}

/** Live (not deleting) pods of the namespace by worker id. */
async function livePodsById(core: CoreV1Api, namespace: string, ids: string[]): Promise<Map<string, string[]>> {
  const wanted = new Set(ids);
  const list = await core.listNamespacedPod(
    { namespace, labelSelector: corralLabels.workerId },
    timeoutOptions(30_000),
  );
  const out = new Map<string, string[]>();
  for (const pod of list.items) {
    const id = pod.metadata?.labels?.[corralLabels.workerId];
    if (!id || !wanted.has(id) || pod.metadata?.deletionTimestamp) continue;
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
    out.set(id, [...(out.get(id) ?? []), pod.metadata?.name ?? '?']);
  }
  return out;
}

/** Pods vs rows right after a phase: pods per worker id, and pods whose row is not live. */
async function podCensus(world: World, core: CoreV1Api, namespace: string, pool: string) {
  const { rows } = await world.db.query<{ id: string; state: string }>(
    'SELECT id, state FROM workers WHERE pool = $1',
    [pool],
  );
  const pods = await livePodsById(
    core,
    namespace,
    rows.map((r) => r.id),
  );
  const state = new Map(rows.map((r) => [r.id, r.state]));
  return {
    live_pods: [...pods.values()].reduce((s, p) => s + p.length, 0),
    duplicates: [...pods].filter(([, p]) => p.length > 1).map(([id, p]) => ({ id, pods: p })),
    pods_of_ended_rows: [...pods]
      .filter(([id]) => ['retired', 'lost'].includes(state.get(id) ?? ''))
      .map(([id, p]) => ({ id, state: state.get(id), pods: p })),
  };
}

/** Polls the namespace's pods every 500 ms: when each was first seen Ready (ms since `t0`). */
function readyPoller(core: CoreV1Api, namespace: string, t0: number) {
  const readyAt = new Map<string, number>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const list = await core.listNamespacedPod({ namespace }, timeoutOptions(5_000));
        for (const pod of list.items) {
          const name = pod.metadata?.name ?? '?';
          const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
          if (ready && !readyAt.has(name)) readyAt.set(name, since(t0));
        }
      } catch {
        // the apiserver may still be coming up
      }
      await hold(500);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return readyAt;
    },
  };
}
