import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import { CoreV1Api, PatchStrategy, Watch, setHeaderOptions, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import { kubeConfigFor } from '../harness/kube';
import { useKube, type Lease } from '../harness/shared';
import type { KubeEndpoint } from '../harness/kube';

let kube: Lease<KubeEndpoint>;
let core: CoreV1Api;
const namespace = `smoke-${crypto.randomBytes(4).toString('hex')}`;

before(async () => {
  kube = await useKube();
  core = kubeConfigFor(kube.value).makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  // No controller-manager runs, so the ServiceAccount admission plugin's `default` account is ours to make.
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
});
after(async () => {
  await kube?.release();
});

test('a watch sees a new Pod and Secret, a status patch to Ready, and a label selector lists only ours', async () => {
  const kc = kubeConfigFor(kube.value);
  const labels = { 'app.kubernetes.io/managed-by': 'corral', 'corral.dev/pool': 'smoke' };
  type Seen = { kind: 'Pod' | 'Secret'; type: string; name: string; ready: boolean };
  const seen: Seen[] = [];
  const waiters: (() => void)[] = [];
  const record = (kind: Seen['kind']) => (type: string, obj: V1Pod | V1Secret) => {
    const ready =
      kind === 'Pod' &&
      ((obj as V1Pod).status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    seen.push({ kind, type, name: obj.metadata?.name ?? '', ready });
    waiters.splice(0).forEach((wake) => wake());
  };
  const changed = () => new Promise<void>((resolve) => waiters.push(resolve));
  const until = async (what: string, predicate: () => boolean) => {
    const deadline = AbortSignal.timeout(15_000);
    while (!predicate()) {
      if (deadline.aborted) throw new Error(`watch never showed ${what}; saw ${JSON.stringify(seen)}`);
      await Promise.race([changed(), new Promise((r) => deadline.addEventListener('abort', r, { once: true }))]);
    }
  };

  const watch = new Watch(kc);
  const selector = { labelSelector: 'app.kubernetes.io/managed-by=corral' };
  const podWatch = await watch.watch(`/api/v1/namespaces/${namespace}/pods`, selector, record('Pod'), () => undefined);
  const secretWatch = await watch.watch(
    `/api/v1/namespaces/${namespace}/secrets`,
    selector,
    record('Secret'),
    () => undefined,
  );
  try {
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'w1-credentials', labels }, stringData: { token: 'not-a-real-secret' } },
    });
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'w1', labels },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name: 'worker', image: 'corral/demo-worker:0.1.0' }],
        },
      },
    });
    // Someone else's pod in the same namespace: the selector must leave it out.
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'not-ours', labels: { app: 'other' } },
        spec: { automountServiceAccountToken: false, containers: [{ name: 'x', image: 'busybox:1.36' }] },
      },
    });
    await until('both ADDED events', () =>
      ['Pod', 'Secret'].every((k) => seen.some((s) => s.kind === k && s.type === 'ADDED')),
    );

    // Play kubelet: mark the pod Running and Ready through the status subresource.
    const now = new Date();
    await core.patchNamespacedPodStatus(
      {
        namespace,
        name: 'w1',
        body: {
          status: {
            phase: 'Running',
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
            containerStatuses: [
              {
                name: 'worker',
                ready: true,
                restartCount: 0,
                image: 'corral/demo-worker:0.1.0',
                imageID: '',
                state: { running: { startedAt: now } },
              },
            ],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    await until('the pod turning Ready', () => seen.some((s) => s.kind === 'Pod' && s.type === 'MODIFIED' && s.ready));

    const ours = await core.listNamespacedPod({ namespace, labelSelector: 'app.kubernetes.io/managed-by=corral' });
    assert.deepEqual(
      ours.items.map((p) => p.metadata?.name),
      ['w1'],
    );
    const all = await core.listNamespacedPod({ namespace });
    assert.equal(all.items.length, 2, 'the unlabelled pod exists, so the selector really filtered');
    assert.ok(!seen.some((s) => s.name === 'not-ours'), 'the watch selector left the other pod out');
  } finally {
    podWatch.abort();
    secretWatch.abort();
  }
});
