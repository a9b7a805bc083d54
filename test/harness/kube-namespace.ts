// A fresh namespace per test file on the shared kube-apiserver, with the `default`
// ServiceAccount a controller-manager creates (the ServiceAccount admission plugin needs it; the
// KWOK cluster runs no controller-manager, the real node does).
import crypto from 'node:crypto';
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig, type V1PolicyRule } from '@kubernetes/client-node';
import { kubeConfigFor, type KubeEndpoint } from './kube';

export async function createTestNamespace(kubeConfig: KubeConfig, prefix: string): Promise<string> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const namespace = `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await core
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } })
    .catch((err: unknown) => {
      // The real node runs a controller-manager, whose serviceaccount controller may be first.
      if ((err as { code?: number }).code !== 409) throw err;
    });
  return namespace;
}

/**
 * A ServiceAccount bound to a Role with exactly `rules`, and a kubeconfig that authenticates as
 * it with an apiserver-minted (TokenRequest) token: how corral runs in a real cluster.
 */
export async function serviceAccountKubeConfig(
  endpoint: KubeEndpoint,
  namespace: string,
  name: string,
  rules: V1PolicyRule[],
): Promise<KubeConfig> {
  const admin = kubeConfigFor(endpoint);
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
  });
  const request = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`the apiserver issued no token for ${namespace}/${name}`);
  return kubeConfigFor(endpoint, token);
}
