// The Kubernetes runtime under the faults issue 16 names, on the real kube-apiserver (and KWOK):
// a ResourceQuota refusing the pod is a capacity failure (not config_error); a readiness wait that
// ends at its deadline takes its reason from the pod's last status; a create cancelled after its
// pod was made leaves no pod; credential and epoch writes never go backwards, even when a stale
// write's read is overtaken by a newer write (the resourceVersion precondition answers 409).
// Between "the apiserver did it" and "the caller knows", a holding proxy stops the answer
// (test/harness/holding-proxy.ts), so every interleaving here is chosen, not raced.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRuntimeActivities } from '../../src/activities/runtime-activities';
import { waitFor } from '../../src/embedded/wait';
import { runtimeFailureTypes, type WorkerPodRef } from '../../src/common';
import { RuntimeQuotaExceededError, StaleRuntimeWriteError } from '../../src/runtime/errors';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import { corralLabels } from '../../src/runtime/kubernetes/pod-manifest';
import { startHoldingProxy, type HoldingProxy, type ProxiedRequest } from '../harness/holding-proxy';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { createTestNamespace } from '../harness/kube-namespace';
import { kwokFateImage } from '../harness/kwok';
import { useKube, type Lease } from '../harness/shared';
import { credentials, newWorkerId } from './runtime-behaviour';

const pool = 'rpool';
let kube: Lease<KubeEndpoint>;
let admin: KubeConfig;
let core: CoreV1Api;
let namespace: string;
let runtime: KubernetesPodRuntime;
const proxies: HoldingProxy[] = [];

const spec = (workerId: string, image = kwokFateImage('unready')) => ({
  workerId,
  pool,
  spawnAttempt: 1,
  epoch: 1,
  image,
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 128 } },
  maxLifetimeSeconds: 86_400,
});

before(async () => {
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  core = admin.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace(admin, 'resilience');
  runtime = new KubernetesPodRuntime({ kubeConfig: admin, namespace });
});

after(async () => {
  await runtime?.close();
  for (const proxy of proxies) await proxy.close();
  await kube?.release();
});

/** A runtime whose requests pass through a holding proxy that holds the answers `hold` picks. */
async function runtimeBehindProxy(
  hold: (req: ProxiedRequest) => boolean,
  ns = namespace,
): Promise<{ proxied: KubernetesPodRuntime; proxy: HoldingProxy }> {
  const proxy = await startHoldingProxy(kube.value, hold);
  proxies.push(proxy);
  // Plain HTTP to the proxy on loopback (client-node insists on skipTLSVerify for http:).
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'proxy', server: proxy.server, skipTLSVerify: true }],
    users: [{ name: 'admin', token: kube.value.adminToken }],
    contexts: [{ name: 'proxy', cluster: 'proxy', user: 'admin' }],
    currentContext: 'proxy',
  });
  return { proxied: new KubernetesPodRuntime({ kubeConfig, namespace: ns }), proxy };
}

/** Holds the first request that matches, and only that one. */
function once(matches: (req: ProxiedRequest) => boolean): (req: ProxiedRequest) => boolean {
  let used = false;
  return (req) => {
    if (used || !matches(req)) return false;
    used = true;
    return true;
  };
}

async function inspect(workerId: string, ns = namespace): Promise<{ pods: number; secrets: number }> {
  const labelSelector = `${corralLabels.workerId}=${workerId}`;
  const [pods, secrets] = await Promise.all([
    core.listNamespacedPod({ namespace: ns, labelSelector }),
    core.listNamespacedSecret({ namespace: ns, labelSelector }),
  ]);
  return {
    pods: pods.items.filter((p) => !p.metadata?.deletionTimestamp).length,
    secrets: secrets.items.length,
  };
}

async function storedCredentials(ref: WorkerPodRef): Promise<{ token: string; epoch: number; version: number }> {
  const secret = await core.readNamespacedSecret({ namespace, name: `${ref.name}-credentials` });
  return JSON.parse(Buffer.from(secret.data?.['credentials.json'] ?? '', 'base64').toString('utf8')) as {
    token: string;
    epoch: number;
    version: number;
  };
}

test('a ResourceQuota that refuses the pod is RuntimeQuotaExceeded (retryable), not forbidden or config_error', async () => {
  const quotaNamespace = await createTestNamespace(admin, 'quota');
  const quotaRuntime = new KubernetesPodRuntime({ kubeConfig: admin, namespace: quotaNamespace });
  const name = 'pods';
  await core.createNamespacedResourceQuota({
    namespace: quotaNamespace,
    body: { metadata: { name }, spec: { hard: { pods: '1' } } },
  });
  // No controller-manager runs here, so the test writes the quota's status as the quota
  // controller would. The admission plugin enforces what status.hard lists (an empty status
  // enforces nothing); with the limit known but its usage not calculated yet, it refuses every
  // pod ("status unknown for quota") — as a real cluster does while its controller catches up.
  const setStatus = async (status: { hard: Record<string, string>; used?: Record<string, string> }) =>
    core.replaceNamespacedResourceQuotaStatus({
      namespace: quotaNamespace,
      name,
      body: { ...(await core.readNamespacedResourceQuota({ namespace: quotaNamespace, name })), status },
    });
  await setStatus({ hard: { pods: '1' } });
  const unknown = newWorkerId();
  await assert.rejects(
    quotaRuntime.create({ ...spec(unknown), image: kwokFateImage('ready') }, credentials(1)),
    (err: unknown) =>
      err instanceof RuntimeQuotaExceededError &&
      err.resource === 'pods' &&
      err.namespace === quotaNamespace &&
      /status unknown for quota/.test(err.message),
  );
  assert.deepEqual(await inspect(unknown, quotaNamespace), { pods: 0, secrets: 1 }, 'the secret came first');

  // Usage calculated: the one pod allowed is in use.
  await setStatus({ hard: { pods: '1' }, used: { pods: '1' } });
  const full = newWorkerId();
  await assert.rejects(
    quotaRuntime.create(spec(full), credentials(1)),
    (err: unknown) => err instanceof RuntimeQuotaExceededError && /exceeded quota: pods/.test(err.message),
  );

  // What the workflow sees: a retryable failure of its own type (it records `quota_exceeded`).
  const activities = createRuntimeActivities(quotaRuntime);
  await assert.rejects(
    new MockActivityEnvironment().run(activities.spawnWorkerPod, {
      spec: spec(newWorkerId()),
      credentialVersion: 1,
      credentialExpiresAt: new Date(Date.now() + 600_000).toISOString(),
    }),
    (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.type === runtimeFailureTypes.quotaExceeded &&
      !err.nonRetryable &&
      (err.details?.[0] as { resource: string }).resource === 'pods',
  );

  // Room again (a pod went): the same create now passes, adopting the secret it left.
  await setStatus({ hard: { pods: '1' }, used: { pods: '0' } });
  const { ref, created } = await quotaRuntime.create(spec(full), credentials(1));
  assert.equal(created, true);
  await quotaRuntime.delete(ref);
  await quotaRuntime.close();
});

test('a pod still being created when the wait ends is spawn_timeout', async () => {
  // A fate no stage plays: KWOK's create stage leaves the container ContainerCreating for ever.
  const { ref } = await runtime.create(spec(newWorkerId(), 'corral.test/fate:creating'), credentials(1));
  const outcome = await runtime.awaitReady(ref, { timeoutMs: 1_000 });
  assert.equal(outcome.status === 'failed' && outcome.reason, 'spawn_timeout', JSON.stringify(outcome));
  assert.match(outcome.status === 'failed' ? outcome.detail : '', /not ready within 1s/);
  await runtime.delete(ref);
});

test('a pod that is unschedulable when the wait ends is pod_not_scheduled, even within its grace period', async () => {
  const patient = new KubernetesPodRuntime({ kubeConfig: admin, namespace, notScheduledGraceMs: 3_600_000 });
  const tooBig = { requests: { cpuMillis: 512_000, memoryMiB: 64 }, limits: { cpuMillis: 512_000, memoryMiB: 64 } };
  const { ref } = await patient.create({ ...spec(newWorkerId()), resources: tooBig }, credentials(1));
  await waitFor(
    async () =>
      (await core.readNamespacedPod({ namespace, name: ref.name })).status?.conditions?.some(
        (c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable',
      ),
    { what: 'the scheduler to find no node for the pod', timeoutMs: 30_000 },
  );
  const outcome = await patient.awaitReady(ref, { timeoutMs: 1_000 });
  assert.equal(outcome.status === 'failed' && outcome.reason, 'pod_not_scheduled', JSON.stringify(outcome));
  assert.match(outcome.status === 'failed' ? outcome.detail : '', /Insufficient cpu/);
  await patient.delete(ref);
  await patient.close();
});

test('an activity cancelled after its pod was created (the answer not back yet) leaves no pod and no secret', async () => {
  const isPodCreate = ({ method, url }: ProxiedRequest) =>
    method === 'POST' && url.startsWith(`/api/v1/namespaces/${namespace}/pods`);
  const { proxied, proxy } = await runtimeBehindProxy(once(isPodCreate));
  const activities = createRuntimeActivities(proxied);
  const env = new MockActivityEnvironment();
  const workerId = newWorkerId();
  const spawning = env.run(activities.spawnWorkerPod, {
    spec: spec(workerId),
    credentialVersion: 1,
    credentialExpiresAt: new Date(Date.now() + 600_000).toISOString(),
  });
  const held = await proxy.nextHeld();
  assert.equal(held.status, 201, 'the apiserver created the pod');
  assert.deepEqual(await inspect(workerId), { pods: 1, secrets: 1 });

  env.cancel();
  await assert.rejects(spawning);
  held.release();
  assert.deepEqual(await inspect(workerId), { pods: 0, secrets: 0 }, 'what the cancelled create made is gone');
  await proxied.close();
});

test('a stale credential write whose read is overtaken by a newer write is refused by the precondition', async () => {
  const { ref } = await runtime.create(spec(newWorkerId()), credentials(1));
  const secretPath = `/api/v1/namespaces/${namespace}/secrets/${ref.name}-credentials`;
  const { proxied, proxy } = await runtimeBehindProxy(
    once(({ method, url }) => method === 'GET' && url.startsWith(secretPath)),
  );

  // The late writer (version 2) reads the secret at version 1 — and its answer is held...
  const late = proxied.writeCredentials(ref, credentials(2, 2));
  const read = await proxy.nextHeld();
  // ...while the newer rotation (version 3) lands.
  const newer = credentials(3, 3);
  await runtime.writeCredentials(ref, newer);
  read.release();

  await assert.rejects(
    late,
    (err: unknown) => err instanceof StaleRuntimeWriteError && err.stored.version === 3 && err.attempted.version === 2,
  );
  const patches = proxy.log.filter((r) => r.method === 'PATCH' && r.url.startsWith(secretPath));
  assert.deepEqual(
    patches.map((p) => p.status),
    [409],
    'its conditional patch met the newer resourceVersion; the re-read found version 3 and wrote nothing',
  );
  const stored = await storedCredentials(ref);
  assert.deepEqual({ token: stored.token, version: stored.version }, { token: newer.token, version: 3 });
  await runtime.delete(ref);
  await proxied.close();
});

test('a credential write whose read was overtaken by an unrelated change re-reads and writes', async () => {
  const { ref } = await runtime.create(spec(newWorkerId()), credentials(1));
  const secretPath = `/api/v1/namespaces/${namespace}/secrets/${ref.name}-credentials`;
  const { proxied, proxy } = await runtimeBehindProxy(
    once(({ method, url }) => method === 'GET' && url.startsWith(secretPath)),
  );
  const rotated = credentials(2, 2);
  const writing = proxied.writeCredentials(ref, rotated);
  const read = await proxy.nextHeld();
  await core.patchNamespacedSecret(
    {
      namespace,
      name: `${ref.name}-credentials`,
      body: { metadata: { annotations: { 'example.com/touched': 'yes' } } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  read.release();
  await writing;

  const secretPatches = proxy.log.filter((r) => r.method === 'PATCH' && r.url.startsWith(secretPath));
  assert.deepEqual(
    secretPatches.map((p) => p.status),
    [409, 200],
    'a conflict, a re-read, a write',
  );
  const stored = await storedCredentials(ref);
  assert.deepEqual({ token: stored.token, version: stored.version }, { token: rotated.token, version: 2 });
  await runtime.delete(ref);
  await proxied.close();
});

test("the pod's epoch annotation is raised by a credential write, never lowered", async () => {
  const { ref } = await runtime.create(spec(newWorkerId()), credentials(1));
  const epochOf = async () =>
    (await core.readNamespacedPod({ namespace, name: ref.name })).metadata?.annotations?.['corral.dev/epoch'];
  await runtime.writeCredentials(ref, credentials(5, 2));
  assert.equal(await epochOf(), '5');
  // Someone (a newer corral, an operator) told the pod a higher epoch than this rotation carries.
  await core.patchNamespacedPod(
    { namespace, name: ref.name, body: { metadata: { annotations: { 'corral.dev/epoch': '9' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  await runtime.writeCredentials(ref, credentials(6, 3));
  assert.equal(await epochOf(), '9', 'the annotation did not go down');
  assert.equal((await storedCredentials(ref)).version, 3, 'the secret itself was rotated');
  await runtime.delete(ref);
});
