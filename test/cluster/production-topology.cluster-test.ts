// corral's production topology end to end on a real node (issue 19, part 3): the project's images
// built for real (test/harness/project-images.ts, a private Docker engine) and imported into the
// node's containerd; Temporal (the CLI's dev server) and Postgres on the host, listening on the
// node IP; corral deployed from deploy/helm/corral as a Deployment of 2 replicas of the corral
// image; a pool on the `kubernetes` runtime whose workers are real pods of the demo worker image
// (test/harness/real-node-topology.ts, docs/decisions/0031-the-production-topology-on-a-real-node.md).
//
// From the host, through a replica's corral API (its pod IP: the host routes to the pod bridge):
// apply the pool (bin/corral, so `npm run build` first), claim, the worker reports the tenant at the lease's epoch, release; kill a
// worker's container → its row goes `lost` (pod_crashed) and the pool refills; delete the corral
// replica in use → the other serves claims meanwhile and the Deployment replaces it; drain →
// no worker pods, no credential Secrets. Then the node's teardown leaves nothing on the machine.
//
// Not part of `make test`: it needs root, a provisioned node and the images (`make test-cluster`).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { CorralClient, type Worker } from '../../src/client/corral-client';
import { repoRoot } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { workerProtocolV2 } from '../../src/common';
import { checkAnswer, deriveWorkerKey, proofHeader, proofHeaders } from '../../src/runtime/worker-protocol-proof';
import { corralLabels, managedBySelector } from '../../src/runtime/kubernetes/pod-manifest';
import { startDockerEngine } from '../harness/docker-engine';
import { buildProjectImages, saveImage } from '../harness/project-images';
import { startRealNode, type RealNode } from '../harness/real-node';
import {
  installCorralChart,
  startHostServices,
  type CorralRelease,
  type HostServices,
} from '../harness/real-node-topology';

const run = promisify(execFile);
const pool = 'topology';
const replicas = 2;
/** corral's image migrates the registry and bundles its workflows before /readyz: slow on 2 shared cores. */
const replicasReadyMs = 300_000;
const workerWaitMs = 180_000;

let node: RealNode | undefined;
let host: HostServices | undefined;
let release: CorralRelease;
let core: CoreV1Api;
let images: { corral: string; demoWorker: string };
let scratchDir: string;
const startedAt = Date.now();

const say = (message: string) =>
  process.stderr.write(`[topology +${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${message}\n`);

before(async () => {
  scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-topology-'));
  // The images first, on a private engine that is stopped before the node starts (one heavy thing at a time).
  const archives = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-topology-images-'));
  try {
    const engine = await startDockerEngine();
    try {
      images = await buildProjectImages(engine);
      await saveImage(engine, images.corral, path.join(archives, 'corral.tar'));
      await saveImage(engine, images.demoWorker, path.join(archives, 'demo-worker.tar'));
    } finally {
      await engine.stop();
    }
    say(`images built and saved: ${images.corral}, ${images.demoWorker}`);

    node = await startRealNode();
    await node.importImage(path.join(archives, 'corral.tar'));
    await node.importImage(path.join(archives, 'demo-worker.tar'));
    say('images imported into the node');
  } finally {
    fs.rmSync(archives, { recursive: true, force: true });
  }
  core = node.kubeConfig().makeApiClient(CoreV1Api);
  host = await startHostServices(node);
  release = await installCorralChart(node, host, { image: images.corral, replicas });
  say('chart applied');
});

after(async () => {
  if (node && release) {
    // corral's replicas go first (they shut down on SIGTERM), so none is left talking to a
    // Temporal or Postgres that is gone; the node's teardown kills whatever is still there.
    const { namespace, deployment } = release;
    await node
      .kubeConfig()
      .makeApiClient(AppsV1Api)
      .deleteNamespacedDeployment({ name: deployment, namespace, propagationPolicy: 'Foreground' })
      .then(() =>
        waitFor(async () => (await core.listNamespacedPod({ namespace })).items.length === 0, {
          what: `corral's pods in ${namespace} to end`,
          timeoutMs: 90_000,
          intervalMs: 500,
        }),
      )
      .catch((err: unknown) => say(`corral's replicas not stopped before the host services: ${String(err)}`));
  }
  await host?.stop();
  if (scratchDir) fs.rmSync(scratchDir, { recursive: true, force: true });
  if (!node) return;
  await node.stop();
  assert.deepEqual(await node.leftovers(), [], 'the real node left nothing on the machine');
  say('done');
});

/** A pool spec written to a file for the CLI. */
function poolFile(spec: Record<string, unknown>): string {
  const file = path.join(scratchDir, `${String(spec.name)}.json`);
  fs.writeFileSync(file, JSON.stringify(spec));
  return file;
}

/** `bin/corral … --json` from the host, as an operator runs it against a replica's API. */
async function operatorCli(apiUrl: string, args: string[]): Promise<string> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CORRAL_API_URL: apiUrl,
    CORRAL_API_TOKEN: release.apiToken,
    // No .corral/endpoints.json of a `make start` in this checkout.
    CORRAL_STATE_DIR: scratchDir,
  };
  const { stdout } = await run(path.join(repoRoot, 'bin', 'corral'), [...args, '--json'], { env, timeout: 60_000 });
  return stdout;
}

const clientFor = (url: string) => new CorralClient({ url, token: release.apiToken, requestTimeoutMs: 30_000 });

async function workersOf(client: CorralClient): Promise<Worker[]> {
  return client.listWorkers({ pool, limit: 100 });
}

/**
 * What the worker itself holds, asked from the host (its pod IP) as only corral can: the worker
 * speaks corral.worker/v2, so its /healthz names no one and its state is told only to a signed
 * call. A signed activation one epoch below the lease's is refused with the highest epoch it has
 * accepted, under the worker's own proof (HMAC with its key derived from the master key).
 */
async function epochHeldBy(lease: { workerId: string; epoch: number; endpoint: string }): Promise<number> {
  const health = await fetch(`${lease.endpoint}/healthz`, { signal: AbortSignal.timeout(5_000) });
  assert.deepEqual(await health.json(), { status: 'serving', protocol: workerProtocolV2 }, 'health names no one');
  const key = deriveWorkerKey(release.workerProtocolKey, lease.workerId);
  const body = JSON.stringify({ workerId: lease.workerId, epoch: lease.epoch - 1, tenant: 'probe' });
  const headers = proofHeaders(key, 'POST', '/activate', body);
  const res = await fetch(`${lease.endpoint}/activate`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(5_000),
  });
  const answer = await res.text();
  assert.equal(res.status, 409, answer);
  assert.ok(checkAnswer(key, headers[proofHeader]!, answer, res.headers.get(proofHeader)), 'answered by that worker');
  const refusal = JSON.parse(answer) as { error: string; highestEpoch: number };
  assert.equal(refusal.error, 'stale_epoch');
  return refusal.highestEpoch;
}

/** Worker pods and credential Secrets of the pool, straight from the apiserver (terminating pods included). */
async function poolObjects() {
  const labelSelector = `${managedBySelector},${corralLabels.pool}=${pool}`;
  const namespace = release.workersNamespace;
  const [pods, secrets] = await Promise.all([
    core.listNamespacedPod({ namespace, labelSelector }),
    core.listNamespacedSecret({ namespace, labelSelector }),
  ]);
  return { pods: pods.items, secrets: secrets.items };
}

async function waitForIdleWorker(client: CorralClient, notAmong: string[] = []): Promise<Worker> {
  let idle: Worker | undefined;
  let seen: Worker[] = [];
  try {
    await waitFor(
      async () => {
        seen = await workersOf(client);
        idle = seen.find((w) => w.state === 'idle' && !notAmong.includes(w.id));
        return idle !== undefined;
      },
      { what: `an idle worker in pool ${pool}`, timeoutMs: workerWaitMs, intervalMs: 500 },
    );
  } catch (err) {
    const rows = seen.map((w) => `${w.id} ${w.state} ${w.failureReason ?? ''}`).join('; ');
    throw new Error(`${(err as Error).message}; workers: ${rows}\n${release.logTails()}`);
  }
  return idle!;
}

/** Claims for `tenant` through `client`, checks the worker saw the lease, releases. */
async function claimAndRelease(client: CorralClient, tenant: string, requestId: string) {
  // Granted only once the worker answered corral's signed hand-over {workerId, epoch, tenant}
  // under its own proof (v2): the worker reported the tenant at the lease's epoch to corral.
  const lease = await client.claim(pool, { tenant, requestId });
  assert.equal(lease.tenant, tenant);
  assert.equal(await epochHeldBy(lease), lease.epoch, 'the worker holds the lease’s epoch');
  const released = await client.release(lease);
  assert.equal(released.state, 'idle', 'recycled');
  assert.equal((await client.checkLease(lease)).status, 'stale_lease');
  return lease;
}

test(
  'corral from its chart and image on a real node: claims, a killed worker, a lost replica, a drain',
  { timeout: 1_200_000 },
  async (t) => {
    // What corral's replicas said, when something failed.
    t.after(() => {
      if (failed) say(`corral's replicas' logs:\n${release.logTails()}`);
    });
    let failed = true;
    const t0 = Date.now();
    const first = await release.waitForReadyReplicas(replicas, replicasReadyMs);
    say(`${replicas} corral replicas Ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const [[replicaA, urlA], [, urlB]] = [...first.entries()];
    const viaA = clientFor(urlA!);
    const viaB = clientFor(urlB!);

    // The pool, applied from the host with the corral CLI through replica A's API: workers are pods
    // of the demo worker image.
    const applied = await operatorCli(urlA!, [
      'pool',
      'apply',
      '-f',
      poolFile({
        name: pool,
        runtime: 'kubernetes',
        image: images.demoWorker,
        port: 8080,
        minIdle: 1,
        maxWorkers: 3,
        refillPerMinute: 600,
        releasePolicy: 'recycle',
        maxSpawnAttempts: 3,
        resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 256 } },
        deadlines: { spawn: '120s', activation: '30s', hotIdleTtl: '10m', maxLifetime: '1h', drain: '2m' },
        // Slow enough that a dead container is seen by the pod watch (its typed reason) before the probes.
        health: { interval: '2s', failureThreshold: 5 },
        breaker: { failureThreshold: 3, cooldown: '5s', successThreshold: 1 },
      }),
    ]);
    assert.deepEqual(JSON.parse(applied), { pool, generation: 1, created: true, changed: true });
    const warm = await waitForIdleWorker(viaA);
    const [workerPod] = (await poolObjects()).pods.filter((p) => p.metadata?.name === warm.podName);
    assert.ok(workerPod, `worker ${warm.id}'s pod ${warm.podName} is in ${release.workersNamespace}`);
    assert.equal(workerPod.spec?.containers[0]?.image, images.demoWorker);
    assert.equal(workerPod.spec?.nodeName, node!.nodeName);
    assert.equal(warm.endpoint, `http://${workerPod.status?.podIP}:8080`, 'the endpoint is the pod IP');
    say(`pool ${pool} warm: ${warm.id} on ${warm.endpoint}`);

    // Claim → the worker holds the tenant at the lease's epoch → release.
    const lease = await claimAndRelease(viaA, 'acme', 'topology-1');
    assert.equal(lease.workerId, warm.id);
    assert.equal(lease.path, 'warm');

    // A worker's container killed under it (as an OOM killer or a crash would): lost, typed; refilled.
    const containerId = workerPod.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '');
    assert.ok(containerId, 'the worker pod has a container');
    await node!.ctr(['tasks', 'kill', '--signal', 'SIGKILL', containerId]);
    let killed: Worker | null = null;
    await waitFor(
      async () => {
        killed = await viaA.getWorker(warm.id);
        return killed?.state === 'lost';
      },
      { what: `worker ${warm.id} to be lost`, timeoutMs: workerWaitMs, intervalMs: 500 },
    );
    assert.equal(killed!.failureReason, 'pod_crashed');
    const refilled = await waitForIdleWorker(viaA, [warm.id]);
    say(`${warm.id} lost (pod_crashed); refilled with ${refilled.id}`);

    // The replica in use deleted: the other serves claims while the Deployment replaces it.
    await core.deleteNamespacedPod({ name: replicaA!, namespace: release.namespace });
    const duringFailover = await claimAndRelease(viaB, 'globex', 'topology-2');
    assert.equal(duringFailover.workerId, refilled.id);
    const second = await release.waitForReadyReplicas(replicas, replicasReadyMs);
    assert.ok(!second.has(replicaA!), `${replicaA} is gone`);
    const replacement = [...second.entries()].find(([name]) => !first.has(name));
    assert.ok(replacement, 'the Deployment made a new replica');
    say(`replica ${replicaA} replaced by ${replacement[0]}`);
    const viaReplacement = clientFor(replacement[1]);
    await claimAndRelease(viaReplacement, 'initech', 'topology-3');

    // Drain: nothing of the pool left in the workers namespace.
    await viaReplacement.drainPool(pool);
    assert.equal((await viaReplacement.waitForDrained(pool, { timeoutMs: workerWaitMs })).status, 'drained');
    await waitFor(
      async () => {
        const left = await poolObjects();
        return left.pods.length === 0 && left.secrets.length === 0;
      },
      { what: 'no worker pods or credential Secrets left', timeoutMs: workerWaitMs, intervalMs: 500 },
    );
    const rows = await workersOf(viaReplacement);
    assert.deepEqual(
      rows.filter((w) => w.state !== 'retired' && w.state !== 'lost').map((w) => `${w.id} ${w.state}`),
      [],
      'every worker row ended',
    );
    say(`drained; test body ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    failed = false;
  },
);
