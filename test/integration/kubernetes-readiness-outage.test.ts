// Readiness waits across kube-apiserver outages, on a private apiserver this file may stop:
// a restart is survived by resuming the watch from the last resourceVersion; history compacted
// away meanwhile (410 Gone) is survived by re-listing; an apiserver that stays down past the
// bound is answered with `runtime_unreachable` instead of waiting forever.
// KWOK plays the kubelet (test/harness/kwok.ts): each pod starts but is not ready
// (image fate `unready`) until the test gives it the fate `ready` at the moment it chooses; KWOK
// and the scheduler ride out the same outages as the runtime does.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import type { ReadinessOutcome } from '../../src/runtime/pod-runtime';
import { startFaultProxy } from '../harness/fault-proxy';
import { kubeConfigFor, startKube, type RunningKube } from '../harness/kube';
import { createTestNamespace } from '../harness/kube-namespace';
import { kwokFateImage, setPodFate } from '../harness/kwok';
import { credentials, newWorkerId } from './runtime-behaviour';
import type { WorkerPodRef } from '../../src/common';

let kube: RunningKube;
let admin: KubeConfig;
let namespace: string;
let core: CoreV1Api;

before(async () => {
  // Without the watch cache, watches are served from etcd, so compacting etcd yields a real 410.
  kube = await startKube({ extraApiserverArgs: ['--watch-cache=false'] });
  admin = kubeConfigFor(kube);
  namespace = await createTestNamespace(admin, 'outage');
  core = admin.makeApiClient(CoreV1Api);
});

after(async () => {
  await kube?.stop();
});

const runtimeWith = (unreachableAfterMs: number, kubeConfig = admin) =>
  new KubernetesPodRuntime({ kubeConfig, namespace, unreachableAfterMs, apiTimeoutMs: 5_000 });

async function startWaiting(
  runtime: KubernetesPodRuntime,
  waitUntilWatching = true,
): Promise<{ ref: WorkerPodRef; outcome: Promise<ReadinessOutcome> }> {
  const { ref } = await runtime.create(
    {
      workerId: newWorkerId(),
      pool: 'outage',
      spawnAttempt: 1,
      epoch: 1,
      image: kwokFateImage('unready'),
      resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
      maxLifetimeSeconds: 3_600,
    },
    credentials(1),
  );
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  const outcome = runtime.awaitReady(ref, { timeoutMs: 180_000, onWaiting: markWaiting });
  if (waitUntilWatching) await waiting;
  return { ref, outcome };
}

/** The worker's readiness probe starts passing: KWOK writes Running/Ready. */
const becomeReady = (ref: WorkerPodRef) => setPodFate(core, namespace, ref.name, 'ready');

async function etcd(pathname: string, body: unknown): Promise<{ header?: { revision?: string } }> {
  const res = await fetch(`${kube.etcdUrl}${pathname}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(res.status, 200, `etcd ${pathname}: ${await res.clone().text()}`);
  return (await res.json()) as { header?: { revision?: string } };
}

test('an apiserver restart during the wait: the watch resumes from its resourceVersion and sees the later Ready', async () => {
  const runtime = runtimeWith(120_000);
  const { ref, outcome } = await startWaiting(runtime);
  await kube.stopApiserver();
  await kube.startApiserver();
  await becomeReady(ref);
  const result = await outcome;
  assert.equal(result.status, 'ready', JSON.stringify(result));
  assert.ok(result.diagnostics.reconnects >= 1, `the watch reconnected: ${JSON.stringify(result.diagnostics)}`);
  assert.equal(result.diagnostics.relists, 0, 'resumed from the resourceVersion, no re-list needed');
  await runtime.delete(ref);
});

test('history compacted during an outage (410 Gone): the wait re-lists and still sees the later Ready', async () => {
  const runtime = runtimeWith(120_000);
  const { ref, outcome } = await startWaiting(runtime);
  await kube.stopApiserver();
  // Move etcd past the watch's resourceVersion and compact everything before: resuming is impossible.
  // Two writes, not one: the watch resumes from its resourceVersion + 1, and compacting at exactly that
  // revision (when nothing else wrote to etcd since the pod's last event) would keep it watchable.
  const bump = () =>
    etcd('/v3/kv/put', {
      key: Buffer.from('corral-test/bump').toString('base64'),
      value: Buffer.from('x').toString('base64'),
    });
  await bump();
  const put = await bump();
  await etcd('/v3/kv/compaction', { revision: put.header?.revision, physical: true });
  await kube.startApiserver();
  await becomeReady(ref);
  const result = await outcome;
  assert.equal(result.status, 'ready', JSON.stringify(result));
  assert.ok(result.diagnostics.relists >= 1, `the wait re-listed after 410: ${JSON.stringify(result.diagnostics)}`);
  await runtime.delete(ref);
});

test('an apiserver that stays down past the bound is answered with runtime_unreachable', async () => {
  const runtime = runtimeWith(2_000);
  const { ref, outcome } = await startWaiting(runtime);
  await kube.stopApiserver();
  try {
    const result = await outcome;
    assert.equal(result.status === 'failed' && result.reason, 'runtime_unreachable', JSON.stringify(result));
    assert.match(result.status === 'failed' ? result.detail : '', /unreachable for \d+s/);
  } finally {
    await kube.startApiserver();
  }
  await runtime.delete(ref);
});

test('429 and 5xx answers to the watch are retried with backoff, then the wait proceeds', async () => {
  const failures = [429, 503, 500];
  const proxy = await startFaultProxy(
    { server: kube.server, caFile: kube.caFile, keyFile: kube.servingKeyFile },
    ({ watch }) => (watch ? failures.shift() : undefined),
  );
  try {
    const runtime = runtimeWith(60_000, kubeConfigFor({ ...kube, server: proxy.server }));
    // onWaiting fires only once a watch is open, i.e. after the three refused attempts.
    const { ref, outcome } = await startWaiting(runtime);
    await becomeReady(ref);
    const result = await outcome;
    assert.equal(result.status, 'ready', JSON.stringify(result));
    const watches = proxy.log.filter((r) => /[?&]watch=true/.test(r.url));
    assert.deepEqual(
      watches.slice(0, 4).map((r) => r.injected),
      [429, 503, 500, undefined],
      'three refused watches, then one that was forwarded',
    );
    assert.ok(result.diagnostics.reconnects >= 3, JSON.stringify(result.diagnostics));
    await runtime.delete(ref);
  } finally {
    await proxy.close();
  }
});

test('an apiserver answering 503 to every watch: bounded attempts with backoff, then runtime_unreachable', async () => {
  const proxy = await startFaultProxy(
    { server: kube.server, caFile: kube.caFile, keyFile: kube.servingKeyFile },
    ({ watch }) => (watch ? 503 : undefined),
  );
  try {
    const runtime = runtimeWith(3_000, kubeConfigFor({ ...kube, server: proxy.server }));
    const { ref, outcome } = await startWaiting(runtime, false);
    const result = await outcome;
    assert.equal(result.status === 'failed' && result.reason, 'runtime_unreachable', JSON.stringify(result));
    const attempts = proxy.log.filter((r) => r.injected === 503).length;
    // Exponential backoff from 100 ms (capped at 2 s) allows about six attempts in 3 s; a hot loop would make hundreds.
    assert.ok(attempts >= 2 && attempts <= 10, `watch attempts before giving up: ${attempts}`);
    await runtime.delete(ref);
  } finally {
    await proxy.close();
  }
});
