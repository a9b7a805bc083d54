// corral-test-needs: kube
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  ApiException,
  CoreV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  Watch,
  setHeaderOptions,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
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

test('RBAC is enforced for a ServiceAccount token minted by the apiserver: allowed verbs pass, others are 403', async () => {
  const kc = kubeConfigFor(kube.value);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'pod-reader' } } });
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: 'pod-reader' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: 'pod-reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'pod-reader', namespace }],
    },
  });
  // TokenRequest: a short-lived token signed by the apiserver's service-account issuer.
  const tokenRequest = await core.createNamespacedServiceAccountToken({
    namespace,
    name: 'pod-reader',
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const token = tokenRequest.status?.token;
  assert.ok(token, 'the apiserver issued a token');
  const asReader = kubeConfigFor(kube.value, token).makeApiClient(CoreV1Api);

  const pods = await asReader.listNamespacedPod({ namespace });
  assert.ok(Array.isArray(pods.items), 'list pods is allowed');
  await assert.rejects(
    asReader.createNamespacedSecret({ namespace, body: { metadata: { name: 'nope' } } }),
    (err: unknown) => err instanceof ApiException && err.code === 403,
  );
  await assert.rejects(
    asReader.listNamespacedPod({ namespace: 'default' }),
    (err: unknown) => err instanceof ApiException && err.code === 403,
    'the Role is namespaced: other namespaces stay closed',
  );
});
