// The isolation deploy/kubernetes promises, read back from a real kube-apiserver: worker pods live
// in their own namespace, may be reached only by corral and the tenant data path, and may reach
// only DNS and addresses outside the cluster's CIDRs — never Temporal, Postgres, the Kubernetes
// API, corral or each other — while corral reaches what it needs.
//
// No CNI runs here: the apiserver stores NetworkPolicies but nothing enforces them. So this test
// asserts their content: it evaluates the stored policies with NetworkPolicy's documented
// semantics (a pod selected by any policy of a direction is isolated in that direction; traffic is
// allowed when any rule of any selecting policy matches peer and port) against the real labels
// the apiserver gave the namespaces and the labels corral puts on worker pods.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  AppsV1Api,
  CoreV1Api,
  NetworkingV1Api,
  type KubeConfig,
  type V1LabelSelector,
  type V1NetworkPolicy,
  type V1NetworkPolicyPeer,
  type V1NetworkPolicyPort,
} from '@kubernetes/client-node';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { labelsFor } from '../../src/runtime/kubernetes/pod-manifest';
import { applyManifests, type DeployNamespaces } from '../harness/deploy-manifests';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { useKube, type Lease } from '../harness/shared';

const options = timeoutOptions(10_000);
const tenantDataPathLabel = 'corral.dev/tenant-data-path';

let kube: Lease<KubeEndpoint>;
let admin: KubeConfig;
let namespaces: DeployNamespaces;
let policies: V1NetworkPolicy[];
/** Labels the apiserver stored on the two namespaces (incl. kubernetes.io/metadata.name). */
let corralNamespaceLabels: Record<string, string>;
let workersNamespaceLabels: Record<string, string>;
/** The corral replicas' pod labels, from the stored Deployment. */
let corralPodLabels: Record<string, string>;

before(async () => {
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  namespaces = (await applyManifests(kube.value, 'isolation')).namespaces;
  const networking = admin.makeApiClient(NetworkingV1Api);
  const core = admin.makeApiClient(CoreV1Api);
  policies = [
    ...(await networking.listNamespacedNetworkPolicy({ namespace: namespaces.corral }, options)).items,
    ...(await networking.listNamespacedNetworkPolicy({ namespace: namespaces.workers }, options)).items,
  ];
  corralNamespaceLabels = (await core.readNamespace({ name: namespaces.corral }, options)).metadata?.labels ?? {};
  workersNamespaceLabels = (await core.readNamespace({ name: namespaces.workers }, options)).metadata?.labels ?? {};
  const deployment = await admin
    .makeApiClient(AppsV1Api)
    .readNamespacedDeployment({ namespace: namespaces.corral, name: 'corral-worker' }, options);
  corralPodLabels = deployment.spec?.template.metadata?.labels ?? {};
});

after(async () => {
  await kube?.release();
});

// --- NetworkPolicy semantics ------------------------------------------------------------------

/** A pod (namespace and labels known) or an address outside the cluster (namespace undefined). */
interface Endpoint {
  what: string;
  ip: string;
  namespace?: string;
  namespaceLabels?: Record<string, string>;
  podLabels?: Record<string, string>;
}

function selects(selector: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  assert.equal(selector.matchExpressions, undefined, 'these policies use matchLabels only');
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  assert.ok(net.isIPv4(base) && net.isIPv4(ip), `IPv4 only in this test: ${cidr}, ${ip}`);
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4ToInt(ip) / size) === Math.floor(ipv4ToInt(base) / size);
}

function peerMatches(peer: V1NetworkPolicyPeer, policyNamespace: string, other: Endpoint): boolean {
  if (peer.ipBlock) {
    return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c) => inCidr(other.ip, c));
  }
  if (other.namespace === undefined) return false; // selectors match pods only
  const namespaceOk = peer.namespaceSelector
    ? selects(peer.namespaceSelector, other.namespaceLabels ?? {})
    : other.namespace === policyNamespace;
  return namespaceOk && selects(peer.podSelector, other.podLabels ?? {});
}

function portMatches(ports: V1NetworkPolicyPort[] | undefined, port: number, protocol: string): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => (p.protocol ?? 'TCP') === protocol && (p.port === undefined || p.port === port));
}

/** Would a CNI implementing NetworkPolicy let `from` open `protocol/port` on `to`? */
function allowed(from: Endpoint, to: Endpoint, port: number, protocol = 'TCP'): boolean {
  const direction = (pod: Endpoint, type: 'Ingress' | 'Egress', other: Endpoint): boolean => {
    if (pod.namespace === undefined) return true; // outside the cluster: no policy applies
    const selecting = policies.filter(
      (p) =>
        p.metadata?.namespace === pod.namespace &&
        (p.spec?.policyTypes ?? ['Ingress']).includes(type) &&
        selects(p.spec?.podSelector, pod.podLabels ?? {}),
    );
    if (selecting.length === 0) return true;
    return selecting.some((p) => {
      const rules = type === 'Ingress' ? (p.spec?.ingress ?? []) : (p.spec?.egress ?? []);
      return rules.some((rule) => {
        const peers =
          type === 'Ingress'
            ? (rule as { _from?: V1NetworkPolicyPeer[] })._from
            : (rule as { to?: V1NetworkPolicyPeer[] }).to;
        const peerOk = !peers || peers.length === 0 || peers.some((peer) => peerMatches(peer, pod.namespace!, other));
        return peerOk && portMatches(rule.ports, port, protocol);
      });
    });
  };
  return direction(from, 'Egress', to) && direction(to, 'Ingress', from);
}

// --- who is who ----------------------------------------------------------------------------------

const worker = (id: string, ip: string): Endpoint => ({
  what: `worker ${id}`,
  ip,
  namespace: namespaces.workers,
  namespaceLabels: workersNamespaceLabels,
  podLabels: labelsFor({ workerId: id, pool: 'demo', spawnAttempt: 1, name: `demo-${id}-1` }),
});
const corral = (): Endpoint => ({
  what: 'a corral replica',
  ip: '10.244.3.3',
  namespace: namespaces.corral,
  namespaceLabels: corralNamespaceLabels,
  podLabels: corralPodLabels,
});
const pod = (what: string, ip: string, ns: string, podLabels: Record<string, string>, nsLabels = {}): Endpoint => ({
  what,
  ip,
  namespace: ns,
  namespaceLabels: { 'kubernetes.io/metadata.name': ns, ...nsLabels },
  podLabels,
});
const outside = (what: string, ip: string): Endpoint => ({ what, ip });

const dns = () => pod('kube-dns', '10.244.0.10', 'kube-system', { 'k8s-app': 'kube-dns' });
const temporal = () => pod('the Temporal frontend', '10.244.1.5', 'temporal', { 'app.kubernetes.io/name': 'temporal' });
const tenantProxy = () =>
  pod(
    'the tenant data path',
    '10.244.4.4',
    'tenant-proxy',
    { [tenantDataPathLabel]: 'true' },
    { [tenantDataPathLabel]: 'true' },
  );

// --- the tests -----------------------------------------------------------------------------------

test('the apiserver labels both namespaces with their names, which the policies select on', () => {
  assert.equal(corralNamespaceLabels['kubernetes.io/metadata.name'], namespaces.corral);
  assert.equal(workersNamespaceLabels['kubernetes.io/metadata.name'], namespaces.workers);
  assert.equal(workersNamespaceLabels['pod-security.kubernetes.io/enforce'], 'baseline');
  const names = policies.map(
    (p) => `${p.metadata?.namespace === namespaces.corral ? 'corral' : 'workers'}/${p.metadata?.name}`,
  );
  assert.deepEqual(names.sort(), [
    'corral/corral-egress',
    'workers/default-deny',
    'workers/worker-egress',
    'workers/worker-ingress',
  ]);
  const defaultDeny = policies.find((p) => p.metadata?.name === 'default-deny');
  assert.deepEqual(
    JSON.parse(JSON.stringify(defaultDeny?.spec?.podSelector)),
    {},
    'default-deny selects every pod in the workers namespace',
  );
  assert.deepEqual(defaultDeny?.spec?.policyTypes, ['Ingress', 'Egress']);
  assert.equal(defaultDeny?.spec?.ingress, undefined);
  assert.equal(defaultDeny?.spec?.egress, undefined);
});

test('worker ingress: only corral and the tenant data path (namespace and pod both labelled)', () => {
  const target = worker('w1', '10.244.2.2');
  assert.ok(allowed(corral(), target, 8080), 'corral activates and drains the worker');
  assert.ok(allowed(tenantProxy(), target, 8080), 'the tenant data path reaches the worker');

  const refused: [Endpoint, string][] = [
    [worker('w2', '10.244.2.3'), 'another worker'],
    [temporal(), 'Temporal'],
    [
      pod('unlabelled pod, labelled ns', '10.244.4.5', 'tenant-proxy', {}, { [tenantDataPathLabel]: 'true' }),
      'a pod without the label',
    ],
    [
      pod('labelled pod, unlabelled ns', '10.244.5.5', 'tenant-x', { [tenantDataPathLabel]: 'true' }),
      'a namespace without the label',
    ],
    [
      pod('a pod in corral ns that is not corral', '10.244.3.9', namespaces.corral, {}),
      'a non-corral pod in corral ns',
    ],
    [outside('the internet', '93.184.216.34'), 'the internet'],
  ];
  for (const [from, why] of refused) assert.equal(allowed(from, target, 8080), false, `${why} must not reach a worker`);
});

test('worker egress: DNS and the internet only — never Temporal, Postgres, the kube API, corral or another worker', () => {
  const from = worker('w1', '10.244.2.2');
  assert.ok(allowed(from, dns(), 53, 'UDP'), 'DNS over UDP');
  assert.ok(allowed(from, dns(), 53, 'TCP'), 'DNS over TCP');
  assert.ok(allowed(from, outside('a public API', '93.184.216.34'), 443), 'the public internet');

  const refused: [Endpoint, number][] = [
    [temporal(), 7233],
    [outside('Temporal by ClusterIP', '10.96.12.34'), 7233],
    [outside('Postgres in the VPC', '172.31.4.5'), 5432],
    [pod('Postgres in-cluster', '10.244.6.6', 'databases', { app: 'postgres' }), 5432],
    [outside('the kubernetes Service', '10.96.0.1'), 443],
    [outside('the apiserver endpoint', '192.168.1.10'), 6443],
    [outside('cloud metadata', '169.254.169.254'), 80],
    [corral(), 7070],
    [worker('w2', '10.244.2.3'), 8080],
    [dns(), 443],
  ];
  for (const [to, port] of refused)
    assert.equal(allowed(from, to, port), false, `a worker must not reach ${to.what}:${port}`);
});

test('corral egress: DNS, workers, Temporal, Postgres and the kube API; nothing else', () => {
  const from = corral();
  assert.ok(allowed(from, dns(), 53, 'UDP'));
  assert.ok(allowed(from, worker('w1', '10.244.2.2'), 8080), 'the worker protocol');
  assert.ok(allowed(from, temporal(), 7233), 'Temporal');
  assert.ok(allowed(from, outside('Temporal Cloud', '34.120.1.2'), 7233), 'Temporal Cloud');
  assert.ok(allowed(from, outside('Postgres', '172.31.4.5'), 5432), 'Postgres');
  assert.ok(allowed(from, outside('the kubernetes Service', '10.96.0.1'), 443), 'the kube API');
  assert.ok(allowed(from, outside('the apiserver endpoint', '192.168.1.10'), 6443), 'the kube API endpoint');
  assert.equal(allowed(from, outside('anything else', '10.244.9.9'), 22), false);
  assert.equal(allowed(from, outside('the internet', '93.184.216.34'), 80), false);
});
