// deploy/kubernetes applied to a real kube-apiserver as written, only its two namespaces renamed
// (`corral` and `corral-workers`, to fresh names per test file). Used by the deploy tests.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { repoRoot } from '../../src/embedded/tools';
import type { KubeEndpoint } from './kube';
import { applyObjects, parseKubeYaml } from './kube-apply';

export const manifestsDir = path.join(repoRoot, 'deploy', 'kubernetes');
/** The namespaces the manifests are written for. */
export const manifestNamespace = 'corral';
export const manifestWorkersNamespace = 'corral-workers';

/** What the manifests' `corral` and `corral-workers` became. */
export interface DeployNamespaces {
  corral: string;
  workers: string;
}

/**
 * Parses every manifest and applies it (server-side, strict field validation) in fresh namespaces,
 * Namespaces first: one rejected by the apiserver (a typo in a field, a wrong apiVersion) fails
 * here with the apiserver's reason.
 */
export async function applyManifests(
  endpoint: KubeEndpoint,
  prefix: string,
): Promise<{ manifests: Manifest[]; namespaces: DeployNamespaces }> {
  const suffix = crypto.randomBytes(4).toString('hex');
  const namespaces = { corral: `${prefix}-${suffix}`, workers: `${prefix}-${suffix}-workers` };
  const manifests = loadManifests();
  await applyObjects(
    endpoint,
    manifests.map(({ object }) => renameNamespaces(object, namespaces)),
  );
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
    parseKubeYaml(fs.readFileSync(path.join(manifestsDir, file), 'utf8'), file).map((object) => {
      assert.ok(object.apiVersion && object.kind && object.metadata?.name, `${file}: apiVersion, kind, name`);
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
