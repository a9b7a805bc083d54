// corral-test-needs: kube helm
// deploy/helm/corral: `helm lint --strict` passes; with default values (release `corral` in
// namespace `corral`) `helm template` renders the very objects of deploy/kubernetes (kustomize) —
// the same kinds, names and namespaces, and every field equal but Helm's own bookkeeping labels;
// other values render what they say (names, namespaces, replicas, image, Temporal TLS files and API
// key from Secrets) and bad ones fail naming the value. Then against the real kube-apiserver the
// tests share: the default render (namespaces renamed, as the kustomize test does) server-side
// applied, and a non-default release installed with `helm install --create-namespace`; `corral
// doctor`, run as each chart's ServiceAccount with a TokenRequest token, passes — and names the
// verb once the Role loses it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type KubernetesObject,
  type V1Deployment,
  type V1EnvVar,
  type V1PodDisruptionBudget,
  type V1Role,
  type V1RoleBinding,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { temporalConnectionEnv } from '../../src/config/temporal-connection';
import { repoRoot, toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { checkKubernetesPermissions, requiredKubernetesPermissions } from '../../src/runtime/kubernetes/doctor';
import {
  manifestNamespace,
  manifestsDir,
  manifestWorkersNamespace,
  renameNamespaces,
  type DeployNamespaces,
} from '../harness/deploy-manifests';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { applyObjects, objectKey, parseKubeYaml } from '../harness/kube-apply';
import { parseDoctorJson, plain, runDoctor, serviceAccountKubeconfigFile, sortedRules } from '../harness/kube-doctor';
import { useKube, type Lease } from '../harness/shared';

const chartDir = path.join(repoRoot, 'deploy', 'helm', 'corral');
const chartVersion = (parse(fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { version: string }).version;
const apiTimeoutMs = 10_000;
/** The labels Helm adds to every object; nothing else may differ from kustomize. */
const helmLabels = ['helm.sh/chart', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/instance'];

let kube: Lease<KubeEndpoint>;
let admin: KubeConfig;
let helmBin: string;
let tempDir: string;
/** A kubeconfig file for the admin identity, for helm's cluster commands. */
let adminKubeconfig: string;

before(async () => {
  helmBin = toolPath('helm');
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-helm-'));
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  adminKubeconfig = path.join(tempDir, 'admin.kubeconfig');
  fs.writeFileSync(adminKubeconfig, admin.exportConfig(), { mode: 0o600 });
});

after(async () => {
  if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
  await kube?.release();
});

// --- helm ---------------------------------------------------------------------------------------

interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

function helm(args: string[]): Promise<HelmResult> {
  // No ~/.config/helm, repositories or plugins from this machine; no cluster unless asked for.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HELM_CONFIG_HOME: path.join(tempDir, 'helm', 'config'),
    HELM_CACHE_HOME: path.join(tempDir, 'helm', 'cache'),
    HELM_DATA_HOME: path.join(tempDir, 'helm', 'data'),
    KUBECONFIG: path.join(tempDir, 'no-such.kubeconfig'),
  };
  return new Promise((resolve, reject) => {
    execFile(
      helmBin,
      args,
      { env, timeout: 120_000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          reject(new Error(`helm ${args.join(' ')}: ${err.message} (signal ${err.signal ?? '-'})\n${stderr}`));
          return;
        }
        resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
      },
    );
  });
}

async function helmOk(args: string[]): Promise<string> {
  const result = await helm(args);
  assert.equal(result.code, 0, `helm ${args.join(' ')} failed:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** `helm template` of the chart with `values` (a values file), parsed as kubectl would. */
async function render(release: string, namespace: string, values: Record<string, unknown> = {}) {
  const valuesFile = path.join(tempDir, `values-${crypto.randomBytes(4).toString('hex')}.json`);
  fs.writeFileSync(valuesFile, JSON.stringify(values));
  const stdout = await helmOk(['template', release, chartDir, '--namespace', namespace, '--values', valuesFile]);
  return parseKubeYaml(stdout, `helm template ${release}`);
}

/** `helm template` that must fail; returns helm's error text. */
async function renderFails(values: Record<string, unknown>, namespace = 'corral'): Promise<string> {
  const valuesFile = path.join(tempDir, `values-${crypto.randomBytes(4).toString('hex')}.json`);
  fs.writeFileSync(valuesFile, JSON.stringify(values));
  const result = await helm(['template', 'corral', chartDir, '--namespace', namespace, '--values', valuesFile]);
  assert.notEqual(result.code, 0, `helm template with ${JSON.stringify(values)} should fail:\n${result.stdout}`);
  return result.stderr;
}

/** deploy/kubernetes as kustomize builds it: the kustomization's resources, in its order. */
function kustomizeObjects(): KubernetesObject[] {
  const kustomization = parse(fs.readFileSync(path.join(manifestsDir, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
    namespace?: string;
  };
  assert.equal(kustomization.namespace, undefined);
  return kustomization.resources.flatMap((file) =>
    parseKubeYaml(fs.readFileSync(path.join(manifestsDir, file), 'utf8'), file),
  );
}

const find = <T extends KubernetesObject>(objects: KubernetesObject[], kind: string, name: string): T => {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  assert.equal(found.length, 1, `one ${kind} ${name} in ${objects.map(objectKey).join(', ')}`);
  return found[0] as T;
};

const envOf = (deployment: V1Deployment): Map<string, V1EnvVar> =>
  new Map((deployment.spec!.template.spec!.containers[0].env ?? []).map((e) => [e.name, e]));

/** A NetworkPolicy as YAML has it (client-node's model calls `from` `_from`). */
interface NetworkPolicyYaml extends KubernetesObject {
  spec: {
    ingress?: { from?: NetworkPolicyPeerYaml[] }[];
    egress?: { to?: NetworkPolicyPeerYaml[] }[];
  };
}
interface NetworkPolicyPeerYaml {
  namespaceSelector?: { matchLabels?: Record<string, string> };
  ipBlock?: { cidr: string; except?: string[] };
}

const withoutLabels = (o: KubernetesObject): KubernetesObject => {
  const copy = structuredClone(o);
  delete copy.metadata!.labels;
  return copy;
};

// --- lint and template --------------------------------------------------------------------------

/** Values that differ from every default they touch. */
const customValues = {
  replicaCount: 3,
  image: { repository: 'registry.example.com/platform/corral', tag: '0.2.0-rc.1', pullPolicy: 'Always' },
  workers: { namespace: 'acme-pods', podSecurityEnforce: 'restricted' },
  temporal: {
    address: 'acme.a1b2c.tmprl.cloud:7233',
    namespace: 'acme.a1b2c',
    tls: { secretName: 'acme-temporal-tls', serverName: 'temporal.acme.internal' },
    apiKey: { secretName: 'acme-temporal-api-key', key: 'token' },
  },
  registry: { secretName: 'acme-registry', key: 'url' },
  workerProtocol: { secretName: 'acme-protocol', key: 'master' },
  api: { tokensSecret: { name: 'acme-api-tokens', key: 'list' } },
  resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } },
  podDisruptionBudget: { minAvailable: 2 },
  podAnnotations: { 'example.com/team': 'platform', 'prometheus.io/path': '/custom-metrics' },
  networkPolicy: { clusterCIDRs: ['10.0.0.0/8', '203.0.113.7/32'] },
  extraEnv: [
    { name: 'KUBERNETES_SERVICE_HOST', value: '192.0.2.10' },
    { name: 'ACME_REGION', valueFrom: { configMapKeyRef: { name: 'acme-site', key: 'region' } } },
  ],
};

test('helm lint --strict passes, with the default values and with others', async () => {
  const lint = await helmOk(['lint', '--strict', chartDir, '--namespace', 'corral']);
  assert.match(lint, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  assert.doesNotMatch(lint, /\[(WARNING|ERROR)\]/);
  const valuesFile = path.join(tempDir, 'custom-lint.json');
  fs.writeFileSync(valuesFile, JSON.stringify(customValues));
  const custom = await helmOk(['lint', '--strict', chartDir, '--namespace', 'tenants', '--values', valuesFile]);
  assert.match(custom, /0 chart\(s\) failed/);
});

test('the default values render exactly the objects of deploy/kubernetes (but Helm labels)', async () => {
  const chart = await render('corral', manifestNamespace);
  const kustomize = kustomizeObjects();

  // Kinds, names and namespaces.
  assert.deepEqual(chart.map(objectKey).sort(), kustomize.map(objectKey).sort());

  for (const expected of kustomize) {
    const key = objectKey(expected);
    const actual = chart.find((o) => objectKey(o) === key)!;
    // Every field, spec, rules, subjects and the pod template's labels included…
    assert.deepEqual(withoutLabels(actual), withoutLabels(expected), `${key} equals deploy/kubernetes`);
    // …and the object's labels: kustomize's, plus Helm's bookkeeping.
    const labels = { ...actual.metadata?.labels };
    assert.deepEqual(
      helmLabels.map((l) => labels[l]),
      [`corral-${chartVersion}`, 'Helm', 'corral'],
      `${key} has Helm's labels`,
    );
    for (const l of helmLabels) delete labels[l];
    assert.deepEqual(labels, expected.metadata?.labels ?? {}, `${key} labels`);
  }

  // The fields the deploy tests rely on, named (the equality above already covers them).
  const role = find<V1Role>(chart, 'Role', 'corral');
  assert.equal(role.metadata?.namespace, manifestWorkersNamespace);
  assert.deepEqual(
    sortedRules(role.rules ?? []),
    sortedRules(
      requiredKubernetesPermissions.map((p) => ({ apiGroups: [''], resources: [p.resource], verbs: [...p.verbs] })),
    ),
  );
  const env = envOf(find<V1Deployment>(chart, 'Deployment', 'corral-worker'));
  assert.deepEqual(env.get('DATABASE_URL')?.valueFrom?.secretKeyRef, { name: 'corral-registry', key: 'database-url' });
  assert.deepEqual(env.get('CORRAL_WORKER_PROTOCOL_KEY')?.valueFrom?.secretKeyRef, {
    name: 'corral-worker-protocol',
    key: 'key',
  });
  assert.equal(env.get('CORRAL_KUBE_NAMESPACE')?.value, manifestWorkersNamespace);
  assert.ok(
    [...env.keys()].every((name) => !name.startsWith('TEMPORAL_TLS') && name !== 'TEMPORAL_API_KEY'),
    'no Temporal TLS or API key by default',
  );
});

test('other values render what they say', async () => {
  const namespace = 'tenants';
  const chart = await render('acme', namespace, customValues);
  const workers = 'acme-pods';

  assert.deepEqual(chart.map(objectKey).sort(), [
    'Deployment tenants/acme-corral-worker',
    `Namespace /${workers}`,
    `Namespace /${namespace}`,
    'NetworkPolicy acme-pods/default-deny',
    'NetworkPolicy acme-pods/worker-egress',
    'NetworkPolicy acme-pods/worker-ingress',
    'NetworkPolicy tenants/acme-corral-egress',
    'PodDisruptionBudget tenants/acme-corral-worker',
    'Role acme-pods/acme-corral',
    'RoleBinding acme-pods/acme-corral',
    'Service tenants/acme-corral-api',
    'Service tenants/acme-corral-worker-metrics',
    'ServiceAccount tenants/acme-corral',
  ]);
  assert.equal(
    find(chart, 'Namespace', workers).metadata?.labels?.['pod-security.kubernetes.io/enforce'],
    'restricted',
  );

  const binding = find<V1RoleBinding>(chart, 'RoleBinding', 'acme-corral');
  assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'acme-corral' });
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'acme-corral', namespace }]);

  // The NetworkPolicies name the two namespaces and the CIDRs given.
  const ingress = find<NetworkPolicyYaml>(chart, 'NetworkPolicy', 'worker-ingress');
  assert.equal(
    ingress.spec?.ingress?.[0].from?.[0].namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'],
    namespace,
  );
  const egress = find<NetworkPolicyYaml>(chart, 'NetworkPolicy', 'worker-egress');
  assert.deepEqual(egress.spec?.egress?.[1].to?.[0].ipBlock, {
    cidr: '0.0.0.0/0',
    except: ['10.0.0.0/8', '203.0.113.7/32'],
  });
  const corralEgress = find<NetworkPolicyYaml>(chart, 'NetworkPolicy', 'acme-corral-egress');
  assert.equal(
    corralEgress.spec?.egress?.[1].to?.[0].namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'],
    workers,
  );

  assert.equal(find<V1PodDisruptionBudget>(chart, 'PodDisruptionBudget', 'acme-corral-worker').spec?.minAvailable, 2);

  const deployment = find<V1Deployment>(chart, 'Deployment', 'acme-corral-worker');
  assert.equal(deployment.spec?.replicas, 3);
  const pod = deployment.spec!.template.spec!;
  assert.equal(pod.serviceAccountName, 'acme-corral');
  const [worker] = pod.containers;
  assert.equal(worker.image, 'registry.example.com/platform/corral:0.2.0-rc.1');
  assert.equal(worker.imagePullPolicy, 'Always');
  // Secret volumes are root-owned: fsGroup makes the 0400 files group-readable by the non-root user.
  assert.equal(pod.securityContext?.fsGroup, pod.securityContext?.runAsGroup);
  assert.ok((pod.securityContext?.runAsUser ?? 0) > 0);
  assert.equal(deployment.spec!.template.metadata?.labels?.['app.kubernetes.io/version'], '0.2.0-rc.1');
  assert.deepEqual(worker.resources, customValues.resources);
  assert.deepEqual(deployment.spec!.template.metadata?.annotations, {
    'example.com/team': 'platform',
    'prometheus.io/path': '/custom-metrics',
    'prometheus.io/port': '9464',
    'prometheus.io/scrape': 'true',
  });

  const env = envOf(deployment);
  assert.equal(env.get('TEMPORAL_ADDRESS')?.value, 'acme.a1b2c.tmprl.cloud:7233');
  // extraEnv comes after the chart's own variables, as given.
  assert.deepEqual(worker.env?.slice(-2), customValues.extraEnv);
  assert.equal(env.get('TEMPORAL_NAMESPACE')?.value, 'acme.a1b2c');
  assert.equal(env.get('CORRAL_KUBE_NAMESPACE')?.value, workers);
  assert.deepEqual(env.get('DATABASE_URL')?.valueFrom?.secretKeyRef, { name: 'acme-registry', key: 'url' });
  assert.deepEqual(env.get('CORRAL_WORKER_PROTOCOL_KEY')?.valueFrom?.secretKeyRef, {
    name: 'acme-protocol',
    key: 'master',
  });
  // Temporal: the CLI's variable names (the ones corral reads), files from the TLS Secret, the API key by reference.
  const tlsMount = worker.volumeMounts?.find((m) => m.name === 'temporal-tls');
  assert.ok(tlsMount?.readOnly, 'the Temporal TLS Secret is mounted read-only');
  assert.equal(pod.volumes?.find((v) => v.name === 'temporal-tls')?.secret?.secretName, 'acme-temporal-tls');
  assert.deepEqual(
    {
      cert: env.get(temporalConnectionEnv.cert[0])?.value,
      key: env.get(temporalConnectionEnv.key[0])?.value,
      ca: env.get(temporalConnectionEnv.ca[0])?.value,
      serverName: env.get(temporalConnectionEnv.serverName)?.value,
      tls: env.get(temporalConnectionEnv.tls),
    },
    {
      cert: `${tlsMount.mountPath}/tls.crt`,
      key: `${tlsMount.mountPath}/tls.key`,
      ca: `${tlsMount.mountPath}/ca.crt`,
      serverName: 'temporal.acme.internal',
      tls: undefined,
    },
  );
  assert.deepEqual(env.get(temporalConnectionEnv.apiKey)?.valueFrom?.secretKeyRef, {
    name: 'acme-temporal-api-key',
    key: 'token',
  });
  // The API tokens file on a read-only mount of the named Secret.
  const tokensFile = env.get('CORRAL_API_TOKENS_FILE')?.value ?? '';
  const tokensMount = worker.volumeMounts?.find((m) => tokensFile === `${m.mountPath}/list`);
  assert.ok(tokensMount?.readOnly, `CORRAL_API_TOKENS_FILE ${tokensFile} is the Secret's key on a read-only mount`);
  assert.equal(pod.volumes?.find((v) => v.name === tokensMount.name)?.secret?.secretName, 'acme-api-tokens');
  // Secret-looking variables are references or file paths, never values.
  for (const e of worker.env ?? []) {
    const secretLooking = /PASSWORD|TOKEN|SECRET|KEY|DATABASE_URL/.test(e.name) && !e.name.endsWith('_FILE');
    const isPath = e.name.startsWith('TEMPORAL_TLS_') && e.value?.startsWith(`${tlsMount.mountPath}/`);
    assert.ok(!secretLooking || e.value === undefined || isPath, `${e.name} is a reference`);
  }
});

test('TLS variants: a CA only, TEMPORAL_TLS forced, an image digest; features switched off', async () => {
  const caOnly = envOf(
    find<V1Deployment>(
      await render('corral', 'corral', {
        temporal: { tls: { secretName: 'ca', certKey: '', keyKey: '', caKey: 'root.pem', enabled: true } },
        image: { digest: `sha256:${'ab'.repeat(32)}` },
      }),
      'Deployment',
      'corral-worker',
    ),
  );
  assert.equal(caOnly.get('TEMPORAL_TLS')?.value, 'true');
  assert.equal(caOnly.get('TEMPORAL_TLS_CA')?.value, '/etc/corral/temporal-tls/root.pem');
  assert.equal(caOnly.has('TEMPORAL_TLS_CERT') || caOnly.has('TEMPORAL_TLS_KEY'), false);

  const digest = find<V1Deployment>(
    await render('corral', 'corral', { image: { digest: `sha256:${'ab'.repeat(32)}` } }),
    'Deployment',
    'corral-worker',
  );
  assert.equal(digest.spec!.template.spec!.containers[0].image, `ghcr.io/corral-dev/corral@sha256:${'ab'.repeat(32)}`);

  const minimal = await render('corral', 'corral', {
    namespace: { create: false },
    workers: { createNamespace: false },
    networkPolicy: { enabled: false },
    podDisruptionBudget: { enabled: false },
  });
  assert.deepEqual(minimal.map((o) => o.kind).sort(), [
    'Deployment',
    'Role',
    'RoleBinding',
    'Service',
    'Service',
    'ServiceAccount',
  ]);
});

test('bad values fail at render time, naming what to fix', async () => {
  assert.match(
    await renderFails({ workers: { namespace: 'corral' } }),
    /workers\.namespace must differ from the release namespace corral/,
  );
  assert.match(
    await renderFails({ temporal: { tls: { secretName: 't', keyKey: '' } } }),
    /temporal\.tls\.certKey and temporal\.tls\.keyKey go together/,
  );
  assert.match(
    await renderFails({ temporal: { tls: { secretName: 't', enabled: false } } }),
    /temporal\.tls\.enabled=false contradicts/,
  );
  // A typo is an error (values.schema.json), not a silently ignored key.
  assert.match(await renderFails({ replicas: 3 }), /replicas/);
  assert.match(await renderFails({ image: { pullPolicy: 'Sometimes' } }), /pullPolicy/);
  assert.match(await renderFails({ extraEnv: [{ name: 'NO_VALUE' }] }), /extraEnv/);
});

// --- on the apiserver ---------------------------------------------------------------------------

interface Deployed {
  namespaces: DeployNamespaces;
  serviceAccount: string;
  role: string;
}

/** Doctor passes as the chart's ServiceAccount; with `verb resource` gone from the Role it names it. */
async function doctorPassesThenNamesTheGap(deployed: Deployed, gap: { verb: string; resource: string }) {
  const { namespaces, serviceAccount, role: roleName } = deployed;
  const kubeconfig = await serviceAccountKubeconfigFile({
    endpoint: kube.value,
    admin,
    namespace: namespaces.corral,
    serviceAccount,
    dir: tempDir,
  });
  const doctor = (json: boolean) =>
    runDoctor({ kubeconfigFile: kubeconfig, workersNamespace: namespaces.workers, stateDir: tempDir, json });

  // The authorizer reads RBAC from an informer cache: poll until the new binding is seen.
  const passing = await waitFor(
    async () => {
      const result = await doctor(true);
      return result.code === 0 ? result : false;
    },
    { what: `doctor to pass as ${namespaces.corral}/${serviceAccount}`, timeoutMs: 60_000, intervalMs: 500 },
  );
  const report = parseDoctorJson(passing);
  assert.equal(report.ok, true);
  assert.deepEqual(
    report.checks.map((c) => [c.name, c.ok]),
    [['kubernetes rbac', true]],
  );
  assert.match(report.checks[0].detail, new RegExp(namespaces.workers));

  // In its own namespace corral may do nothing.
  const asCorral = new KubeConfig();
  asCorral.loadFromFile(kubeconfig);
  const own = await checkKubernetesPermissions(asCorral, namespaces.corral);
  assert.deepEqual(
    own.missing,
    requiredKubernetesPermissions.flatMap(({ resource, verbs }) => verbs.map((verb) => `${verb} ${resource}`)),
    `no pod or secret permission in ${namespaces.corral}`,
  );

  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const role = await rbac.readNamespacedRole(
    { namespace: namespaces.workers, name: roleName },
    timeoutOptions(apiTimeoutMs),
  );
  role.rules = (role.rules ?? []).map((rule) =>
    rule.resources?.includes(gap.resource) ? { ...rule, verbs: rule.verbs.filter((v) => v !== gap.verb) } : rule,
  );
  await rbac.replaceNamespacedRole(
    { namespace: namespaces.workers, name: roleName, body: role },
    timeoutOptions(apiTimeoutMs),
  );

  const failing = await waitFor(
    async () => {
      const result = await doctor(true);
      return result.code !== 0 ? result : false;
    },
    { what: `doctor to see the Role without ${gap.verb} ${gap.resource}`, timeoutMs: 60_000, intervalMs: 500 },
  );
  assert.equal(failing.code, 1, `exit 1 for a failed check\n${failing.stderr}`);
  const failed = parseDoctorJson(failing);
  assert.equal(failed.ok, false);
  assert.deepEqual(
    failed.checks.map((c) => [c.name, c.ok, c.detail]),
    [['kubernetes rbac', false, `missing in namespace ${namespaces.workers}: ${gap.verb} ${gap.resource}`]],
  );
  const table = await doctor(false);
  assert.equal(table.code, 1, table.stderr);
  const row = table.stdout.split('\n').find((line) => line.startsWith('kubernetes rbac'));
  assert.ok(row, `a "kubernetes rbac" row in:\n${table.stdout}`);
  assert.match(row, /\bFAIL\b/);
  assert.ok(row.includes(`${gap.verb} ${gap.resource}`), row);
}

test('the default chart, applied to the apiserver: doctor passes as its ServiceAccount and names a removed verb', async () => {
  const suffix = crypto.randomBytes(4).toString('hex');
  const namespaces = { corral: `helm-${suffix}`, workers: `helm-${suffix}-workers` };
  // The default render, namespaces renamed exactly as deploy-kubernetes.test.ts renames kustomize's.
  const objects = (await render('corral', manifestNamespace)).map((o) => renameNamespaces(o, namespaces));
  const stored = await applyObjects(kube.value, objects);

  // What the apiserver stored is what was rendered: the NetworkPolicies (no peer lost), the Role,
  // the binding; no Role in corral's own namespace.
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  assert.equal(policies.length, 4);
  for (const policy of policies) {
    const key = objectKey(policy);
    assert.deepEqual(
      (stored.find((o) => objectKey(o) === key) as NetworkPolicyYaml | undefined)?.spec,
      (policy as NetworkPolicyYaml).spec,
      `${key} stored as rendered`,
    );
  }
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const role = await rbac.readNamespacedRole(
    { namespace: namespaces.workers, name: 'corral' },
    timeoutOptions(apiTimeoutMs),
  );
  assert.deepEqual(sortedRules(role.rules ?? []), sortedRules(find<V1Role>(objects, 'Role', 'corral').rules ?? []));
  const binding = await rbac.readNamespacedRoleBinding(
    { namespace: namespaces.workers, name: 'corral' },
    timeoutOptions(apiTimeoutMs),
  );
  assert.deepEqual(plain(binding.subjects), [{ kind: 'ServiceAccount', name: 'corral', namespace: namespaces.corral }]);
  assert.deepEqual(
    (await rbac.listNamespacedRole({ namespace: namespaces.corral }, timeoutOptions(apiTimeoutMs))).items,
    [],
  );

  await doctorPassesThenNamesTheGap(
    { namespaces, serviceAccount: 'corral', role: 'corral' },
    { verb: 'watch', resource: 'pods' },
  );
});

test('a non-default release, installed with helm install --create-namespace: doctor passes as its ServiceAccount and names a removed verb', async () => {
  const suffix = crypto.randomBytes(4).toString('hex');
  const namespaces = { corral: `helm-${suffix}-ctl`, workers: `helm-${suffix}-pods` };
  const core = admin.makeApiClient(CoreV1Api);
  const valuesFile = path.join(tempDir, 'install.json');
  fs.writeFileSync(
    valuesFile,
    JSON.stringify({
      ...customValues,
      workers: { ...customValues.workers, namespace: namespaces.workers },
    }),
  );
  const releaseArgs = ['acme', chartDir, '--namespace', namespaces.corral, '--values', valuesFile];
  const kubeArgs = ['--kubeconfig', adminKubeconfig];

  // Against a cluster the chart leaves the release namespace to Helm (it must exist before any
  // object is created: --create-namespace, or made by hand), even while it does not exist yet.
  await assert.rejects(
    core.readNamespace({ name: namespaces.corral }, timeoutOptions(apiTimeoutMs)),
    `${namespaces.corral} does not exist yet`,
  );
  const serverRender = parseKubeYaml(
    await helmOk(['template', ...releaseArgs, '--dry-run=server', ...kubeArgs]),
    'helm template --dry-run=server',
  );
  assert.deepEqual(
    serverRender.filter((o) => o.kind === 'Namespace').map((o) => o.metadata?.name),
    [namespaces.workers],
    'only the workers namespace is rendered with a cluster in view',
  );

  const install = await helmOk(['install', ...releaseArgs, '--create-namespace', ...kubeArgs, '--timeout', '60s']);
  assert.match(install, /STATUS: deployed/);
  assert.match(install, new RegExp(`worker pods in ${namespaces.workers}`), 'NOTES.txt');
  const workersNs = await core.readNamespace({ name: namespaces.workers }, timeoutOptions(apiTimeoutMs));
  assert.equal(workersNs.metadata?.labels?.['app.kubernetes.io/managed-by'], 'Helm');
  assert.equal(workersNs.metadata?.annotations?.['meta.helm.sh/release-namespace'], namespaces.corral);

  await doctorPassesThenNamesTheGap(
    { namespaces, serviceAccount: 'acme-corral', role: 'acme-corral' },
    { verb: 'delete', resource: 'secrets' },
  );
});
