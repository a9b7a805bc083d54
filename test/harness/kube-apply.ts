// Kubernetes YAML read as kubectl and Helm read it, and applied as they would: server-side apply
// of the plain object over HTTPS, with no client-node model in between (the typed clients drop or
// rename fields they model differently, e.g. NetworkPolicy's `from`).
import fs from 'node:fs';
import https from 'node:https';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeEndpoint } from './kube';

/**
 * Every non-empty document of a multi-document YAML stream, parsed as YAML 1.1 like kubectl and
 * Helm (sigs.k8s.io/yaml): `defaultMode: 0400` is octal 256 there, decimal 400 in YAML 1.2.
 */
export function parseKubeYaml(text: string, source: string): KubernetesObject[] {
  return parseAllDocuments(text, { version: '1.1' }).flatMap((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${source}, document ${i + 1}: ${doc.errors.join('; ')}`);
    const object = doc.toJS() as KubernetesObject | null;
    return object ? [object] : [];
  });
}

/** `kind namespace/name`, for listing and finding objects. */
export const objectKey = (o: KubernetesObject): string =>
  `${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** The REST path of a (core or group) object: Namespace is cluster-scoped, the rest namespaced. */
function objectPath(object: KubernetesObject): string {
  const [group, version] = object.apiVersion!.includes('/') ? object.apiVersion!.split('/') : ['', object.apiVersion!];
  const kind = object.kind!.toLowerCase();
  const plural = kind.endsWith('y') ? `${kind.slice(0, -1)}ies` : `${kind}s`;
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const name = encodeURIComponent(object.metadata!.name!);
  if (object.kind === 'Namespace') return `${base}/namespaces/${name}`;
  const namespace = object.metadata?.namespace;
  if (!namespace) throw new Error(`${objectKey(object)} has no metadata.namespace`);
  return `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}/${name}`;
}

/** Server-side apply (field manager `corral-test`, forced, strict fields); rejects with the apiserver's reason. */
export function serverSideApply(
  endpoint: KubeEndpoint,
  object: KubernetesObject,
  timeoutMs = 10_000,
): Promise<KubernetesObject> {
  const url = new URL(`${endpoint.server}${objectPath(object)}`);
  url.searchParams.set('fieldManager', 'corral-test');
  url.searchParams.set('force', 'true');
  // An unknown or duplicated field (a typo in a manifest) is an error, as with kubectl.
  url.searchParams.set('fieldValidation', 'Strict');
  const body = JSON.stringify(object);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'PATCH',
        ca: fs.readFileSync(endpoint.caFile),
        headers: {
          Authorization: `Bearer ${endpoint.adminToken}`,
          'Content-Type': 'application/apply-patch+yaml',
          Accept: 'application/json',
          'Content-Length': Buffer.byteLength(body),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200 || res.statusCode === 201) {
            resolve(JSON.parse(text) as KubernetesObject);
          } else {
            let reason = text;
            try {
              reason = (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              // not JSON: keep the text
            }
            reject(new Error(`apply ${objectKey(object)}: HTTP ${res.statusCode}: ${reason}`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`apply ${objectKey(object)}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Applies objects as `kubectl apply` orders them: Namespaces first (each with the `default`
 * ServiceAccount a controller-manager would make; the test cluster has none), then the rest.
 * Returns the objects as the apiserver stored them (JSON as on the wire, defaults filled in).
 */
export async function applyObjects(endpoint: KubeEndpoint, objects: KubernetesObject[]): Promise<KubernetesObject[]> {
  const stored: KubernetesObject[] = [];
  for (const ns of objects.filter((o) => o.kind === 'Namespace')) {
    stored.push(await serverSideApply(endpoint, ns));
    await serverSideApply(endpoint, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'default', namespace: ns.metadata!.name },
    });
  }
  for (const object of objects.filter((o) => o.kind !== 'Namespace')) {
    stored.push(await serverSideApply(endpoint, object));
  }
  return stored;
}
