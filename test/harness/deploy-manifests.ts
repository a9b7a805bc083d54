// deploy/kubernetes applied to a real kube-apiserver as written, only its two namespaces renamed
// (`corral` and `corral-workers`, to fresh names per test file). Used by the deploy tests.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  NetworkingV1Api,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  loadYaml,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
  type V1Namespace,
  type V1NetworkPolicy,
  type V1PodDisruptionBudget,
  type V1Role,
  type V1RoleBinding,
  type V1Service,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { repoRoot } from '../../src/embedded/tools';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';

export const manifestsDir = path.join(repoRoot, 'deploy', 'kubernetes');
/** The namespaces the manifests are written for. */
export const manifestNamespace = 'corral';
export const manifestWorkersNamespace = 'corral-workers';
const apiTimeoutMs = 10_000;

/** What the manifests' `corral` and `corral-workers` became. */
export interface DeployNamespaces {
  corral: string;
  workers: string;
}

/**
 * Parses every manifest and creates it in fresh namespaces (Namespaces first): one rejected by the
 * apiserver (a typo in a field, a wrong apiVersion) fails here with the apiserver's reason.
 */
export async function applyManifests(
  admin: KubeConfig,
  prefix: string,
): Promise<{ manifests: Manifest[]; namespaces: DeployNamespaces }> {
  const suffix = crypto.randomBytes(4).toString('hex');
  const namespaces = { corral: `${prefix}-${suffix}`, workers: `${prefix}-${suffix}-workers` };
  const manifests = loadManifests();
  const renamed = manifests.map(({ object }) => renameNamespaces(object, namespaces));
  for (const object of renamed.filter((o) => o.kind === 'Namespace')) await create(admin, object);
  // The ServiceAccount admission plugin wants the `default` account a controller-manager would make.
  for (const ns of [namespaces.corral, namespaces.workers]) {
    await admin
      .makeApiClient(CoreV1Api)
      .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
  }
  for (const object of renamed.filter((o) => o.kind !== 'Namespace')) await create(admin, object);
  return { manifests, namespaces };
}

export interface Manifest {
  file: string;
  object: KubernetesObject;
}

/** Every file of deploy/kubernetes (except the kustomization), checked against the kustomization. */
export function loadManifests(): Manifest[] {
  const kustomization = parse(fs.readFileSync(path.join(manifestsDir, 'kustomization.yaml'), 'utf8')) as {
    namespace?: string;
    resources: string[];
  };
  const files = fs
    .readdirSync(manifestsDir)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .sort();
  assert.deepEqual([...kustomization.resources].sort(), files, 'kustomization.yaml lists every manifest');
  assert.equal(kustomization.namespace, undefined, 'no kustomize namespace: it would pull the Role into corral');
  return files.flatMap((file) =>
    // YAML 1.1 as kubectl reads it: `defaultMode: 0400` is octal (256), not decimal 400.
    parseAllDocuments(fs.readFileSync(path.join(manifestsDir, file), 'utf8'), { version: '1.1' }).map((doc) => {
      assert.deepEqual(doc.errors, [], `${file} is valid YAML`);
      const object = doc.toJS() as Manifest['object'];
      assert.ok(object?.apiVersion && object.kind && object.metadata?.name, `${file}: apiVersion, kind, name`);
      if (object.kind === 'Namespace') {
        assert.ok(
          [manifestNamespace, manifestWorkersNamespace].includes(object.metadata!.name!),
          `${file}: a Namespace`,
        );
      } else {
        assert.ok(
          [manifestNamespace, manifestWorkersNamespace].includes(object.metadata?.namespace ?? ''),
          `${file}: metadata.namespace is corral or corral-workers`,
        );
      }
      return { file, object };
    }),
  );
}

/**
 * The manifest with `corral` and `corral-workers` renamed to the test's namespaces wherever a
 * namespace is named: metadata (a Namespace's name, every object's namespace), the RoleBinding's
 * subjects, NetworkPolicy namespace selectors and CORRAL_KUBE_NAMESPACE.
 */
export function renameNamespaces(object: Manifest['object'], into: DeployNamespaces): Manifest['object'] {
  const names = new Map([
    [manifestNamespace, into.corral],
    [manifestWorkersNamespace, into.workers],
  ]);
  const rename = (value: string) => names.get(value) ?? value;
  const copy = structuredClone(object);
  if (copy.kind === 'Namespace') copy.metadata = { ...copy.metadata, name: rename(copy.metadata!.name!) };
  else copy.metadata = { ...copy.metadata, namespace: rename(copy.metadata!.namespace!) };
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(walk);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    for (const [key, value] of Object.entries(record)) {
      if (typeof value === 'string' && (key === 'namespace' || key === 'kubernetes.io/metadata.name')) {
        record[key] = rename(value);
      } else walk(value);
    }
    if (record.name === 'CORRAL_KUBE_NAMESPACE' && typeof record.value === 'string')
      record.value = rename(record.value);
  };
  walk(copy.kind === 'Namespace' ? undefined : (copy as unknown as Record<string, unknown>).spec);
  walk((copy as unknown as Record<string, unknown>).subjects);
  return copy;
}

/** Server-side create with the typed API for each kind the manifests use. */
async function create(admin: KubeConfig, raw: Manifest['object']): Promise<void> {
  // The typed clients serialize their models, which rename some fields (NetworkPolicy's `from` is
  // `_from`) and drop keys they do not know: a plain YAML object would lose its `from` rules and be
  // stored as allow-all. Deserialize into the models first, as client-node's loadYaml does.
  const object = loadYaml<Manifest['object']>(JSON.stringify(raw));
  const ns = object.metadata?.namespace ?? '';
  const networking = admin.makeApiClient(NetworkingV1Api);
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const apps = admin.makeApiClient(AppsV1Api);
  const policy = admin.makeApiClient(PolicyV1Api);
  const options = timeoutOptions(apiTimeoutMs);
  const kind = `${object.apiVersion}/${object.kind}`;
  switch (kind) {
    case 'v1/Namespace':
      await core.createNamespace({ body: object as V1Namespace }, options);
      return;
    case 'networking.k8s.io/v1/NetworkPolicy':
      await networking.createNamespacedNetworkPolicy({ namespace: ns, body: object as V1NetworkPolicy }, options);
      return;
    case 'v1/ServiceAccount':
      await core.createNamespacedServiceAccount({ namespace: ns, body: object as V1ServiceAccount }, options);
      return;
    case 'v1/Service':
      await core.createNamespacedService({ namespace: ns, body: object as V1Service }, options);
      return;
    case 'rbac.authorization.k8s.io/v1/Role':
      await rbac.createNamespacedRole({ namespace: ns, body: object as V1Role }, options);
      return;
    case 'rbac.authorization.k8s.io/v1/RoleBinding':
      await rbac.createNamespacedRoleBinding({ namespace: ns, body: object as unknown as V1RoleBinding }, options);
      return;
    case 'apps/v1/Deployment':
      await apps.createNamespacedDeployment({ namespace: ns, body: object as V1Deployment }, options);
      return;
    case 'policy/v1/PodDisruptionBudget':
      await policy.createNamespacedPodDisruptionBudget(
        { namespace: ns, body: object as V1PodDisruptionBudget },
        options,
      );
      return;
    default:
      throw new Error(`this test does not know how to apply ${kind}; add it here`);
  }
}
