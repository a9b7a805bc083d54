// deploy/kubernetes against a real kube-apiserver: every manifest parses and is accepted by the
// apiserver as written (only the two namespaces renamed), the stored Deployment keeps the shape
// production relies on (replicas, probes, a grace period longer than the drain), the Role in the
// workers' namespace grants exactly what corral needs and corral may do nothing in its own, the
// NetworkPolicies fence the workers in (their content: no CNI runs here, so nothing enforces
// them), and the real `corral doctor`, run as the manifests' ServiceAccount with a TokenRequest
// token, passes — and names the verb once the Role loses it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AppsV1Api, CoreV1Api, PolicyV1Api, RbacAuthorizationV1Api, KubeConfig } from '@kubernetes/client-node';
import ms, { type StringValue } from 'ms';
import { parse } from 'yaml';
import { parsePoolSpec } from '../../src/config/pool-spec';
import { repoRoot } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { checkKubernetesPermissions, requiredKubernetesPermissions } from '../../src/runtime/kubernetes/doctor';
import { applyManifests, manifestsDir, type Manifest } from '../harness/deploy-manifests';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import {
  parseDoctorJson,
  plain,
  runDoctor as runDoctorAs,
  serviceAccountKubeconfigFile as serviceAccountKubeconfigFileFor,
  sortedRules,
} from '../harness/kube-doctor';
import { useKube, type Lease } from '../harness/shared';

const apiTimeoutMs = 10_000;

let kube: Lease<KubeEndpoint>;
let admin: KubeConfig;
/** corral's own namespace (the manifests' `corral`). */
let namespace: string;
/** The worker pods' namespace (the manifests' `corral-workers`). */
let workersNamespace: string;
let tempDir: string;
let manifests: Manifest[];

before(async () => {
  kube = await useKube();
  admin = kubeConfigFor(kube.value);
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-deploy-'));
  const applied = await applyManifests(kube.value, 'deploy');
  manifests = applied.manifests;
  namespace = applied.namespaces.corral;
  workersNamespace = applied.namespaces.workers;
});

after(async () => {
  if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
  await kube?.release();
});

/** `corral doctor` as whoever `kubeconfigFile` authenticates, for the workers' namespace. */
const runDoctor = (kubeconfigFile: string, opts: { json: boolean }) =>
  runDoctorAs({ kubeconfigFile, workersNamespace, stateDir: tempDir, json: opts.json });

/** A kubeconfig file that authenticates as `serviceAccount` of corral's namespace. */
const serviceAccountKubeconfigFile = (serviceAccount: string) =>
  serviceAccountKubeconfigFileFor({ endpoint: kube.value, admin, namespace, serviceAccount, dir: tempDir });

// --- the tests ----------------------------------------------------------------------------------

test('every manifest is accepted by the apiserver and stores the shape production relies on', async () => {
  const kinds = manifests.map((m) => m.object.kind).sort();
  assert.deepEqual(kinds, [
    'Deployment',
    'Namespace',
    'Namespace',
    'NetworkPolicy',
    'NetworkPolicy',
    'NetworkPolicy',
    'NetworkPolicy',
    'PodDisruptionBudget',
    'Role',
    'RoleBinding',
    'Service',
    'Service',
    'ServiceAccount',
  ]);

  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const apps = admin.makeApiClient(AppsV1Api);
  const core = admin.makeApiClient(CoreV1Api);
  const policy = admin.makeApiClient(PolicyV1Api);
  const options = timeoutOptions(apiTimeoutMs);

  // RBAC: exactly what doctor checks, in the workers' namespace, bound to the corral
  // ServiceAccount of corral's namespace; no Role or RoleBinding in corral's own namespace.
  const role = await rbac.readNamespacedRole({ namespace: workersNamespace, name: 'corral' }, options);
  assert.deepEqual(
    sortedRules(role.rules ?? []),
    sortedRules(
      requiredKubernetesPermissions.map((p) => ({ apiGroups: [''], resources: [p.resource], verbs: [...p.verbs] })),
    ),
    'the Role grants exactly requiredKubernetesPermissions',
  );
  const binding = await rbac.readNamespacedRoleBinding({ namespace: workersNamespace, name: 'corral' }, options);
  assert.deepEqual(plain(binding.roleRef), { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'corral' });
  assert.deepEqual(plain(binding.subjects), [{ kind: 'ServiceAccount', name: 'corral', namespace }]);
  await core.readNamespacedServiceAccount({ namespace, name: 'corral' }, options);
  assert.deepEqual((await rbac.listNamespacedRole({ namespace }, options)).items, [], `no Role in ${namespace}`);
  assert.deepEqual((await rbac.listNamespacedRoleBinding({ namespace }, options)).items, []);

  // The Deployment as the apiserver stored it (defaults filled in). No scheduler runs here, so
  // it never becomes ready; what matters is that it was accepted and kept what we wrote.
  const deployment = await apps.readNamespacedDeployment({ namespace, name: 'corral-worker' }, options);
  assert.equal(deployment.spec?.replicas, 2);
  const pod = deployment.spec!.template.spec!;
  const labels = deployment.spec!.template.metadata?.labels ?? {};
  assert.equal(pod.serviceAccountName, 'corral');
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, 'a numeric non-root uid (the image says USER node)');
  assert.equal(pod.containers.length, 1);
  const [worker] = pod.containers;
  assert.equal(worker.image, 'ghcr.io/corral-dev/corral:0.1.0');
  assert.deepEqual(worker.args, ['worker']);
  assert.equal(worker.command, undefined, "the image's ENTRYPOINT runs the CLI");
  assert.match(
    fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'),
    /^ENTRYPOINT \["\/usr\/bin\/tini", "--", "node", "dist\/src\/cli\/main\.js"\]$/m,
  );

  const env = new Map((worker.env ?? []).map((e) => [e.name, e]));
  assert.equal(env.get('CORRAL_RUNTIME')?.value, 'kubernetes');
  assert.ok(env.get('TEMPORAL_ADDRESS')?.value, 'TEMPORAL_ADDRESS');
  assert.ok(env.get('TEMPORAL_NAMESPACE')?.value, 'TEMPORAL_NAMESPACE');
  assert.deepEqual(plain(env.get('DATABASE_URL')?.valueFrom?.secretKeyRef), {
    name: 'corral-registry',
    key: 'database-url',
  });
  assert.equal(env.get('DATABASE_URL')?.value, undefined, 'no database URL in the manifest');
  assert.equal(env.get('CORRAL_KUBE_NAMESPACE')?.value, workersNamespace, 'worker pods go to the workers namespace');
  assert.deepEqual(plain(env.get('CORRAL_WORKER_PROTOCOL_KEY')?.valueFrom?.secretKeyRef), {
    name: 'corral-worker-protocol',
    key: 'key',
  });
  assert.equal(env.get('CORRAL_WORKER_PROTOCOL_KEY')?.value, undefined, 'no protocol key in the manifest');
  for (const e of worker.env ?? []) {
    assert.ok(
      !/PASSWORD|TOKEN|SECRET|KEY|DATABASE_URL/.test(e.name) || e.name.endsWith('_FILE') || e.value === undefined,
      `${e.name} is a reference`,
    );
  }
  assert.equal(env.get('CORRAL_METRICS_HOST')?.value, '0.0.0.0');
  assert.equal(env.get('CORRAL_METRICS_PORT')?.value, '9464');

  assert.deepEqual(
    worker.ports?.map((p) => ({ name: p.name, containerPort: p.containerPort })),
    [
      { name: 'metrics', containerPort: 9464 },
      { name: 'api', containerPort: 7070 },
    ],
  );
  // The corral API beyond loopback: only with bearer tokens, from a Secret mounted read-only.
  assert.equal(env.get('CORRAL_API_HOST')?.value, '0.0.0.0');
  const tokensFile = env.get('CORRAL_API_TOKENS_FILE')?.value ?? '';
  const tokensMount = worker.volumeMounts?.find((m) => tokensFile.startsWith(`${m.mountPath}/`));
  assert.ok(tokensMount?.readOnly, `CORRAL_API_TOKENS_FILE ${tokensFile} is on a read-only mount`);
  const tokensVolume = pod.volumes?.find((v) => v.name === tokensMount?.name);
  assert.equal(tokensVolume?.secret?.secretName, 'corral-api-tokens');
  // 0400 as kubectl reads the manifest (YAML 1.1 octal), readable by corral through fsGroup.
  assert.equal(tokensVolume?.secret?.defaultMode, 0o400);
  assert.equal(pod.securityContext?.fsGroup, 1000);
  assert.deepEqual(
    { path: worker.readinessProbe?.httpGet?.path, port: worker.readinessProbe?.httpGet?.port },
    { path: '/readyz', port: 'metrics' },
  );
  assert.deepEqual(
    { path: worker.livenessProbe?.httpGet?.path, port: worker.livenessProbe?.httpGet?.port },
    { path: '/livez', port: 'metrics' },
  );

  // The kubelet's SIGKILL must come well after the worker's own drain deadline.
  const graceMs = ms(String(env.get('CORRAL_SHUTDOWN_GRACE')?.value) as StringValue);
  assert.equal(graceMs, 20_000);
  const terminationGraceSeconds = pod.terminationGracePeriodSeconds ?? 30;
  assert.equal(terminationGraceSeconds, 45);
  assert.ok(
    terminationGraceSeconds * 1000 >= graceMs + 15_000,
    'terminationGracePeriodSeconds leaves at least 15 s beyond CORRAL_SHUTDOWN_GRACE to close and exit',
  );

  assert.ok(worker.resources?.requests?.cpu && worker.resources.requests.memory, 'requests');
  assert.ok(worker.resources?.limits?.cpu && worker.resources.limits.memory, 'limits');
  assert.deepEqual(
    {
      runAsNonRoot: worker.securityContext?.runAsNonRoot,
      readOnlyRootFilesystem: worker.securityContext?.readOnlyRootFilesystem,
      allowPrivilegeEscalation: worker.securityContext?.allowPrivilegeEscalation,
      drop: worker.securityContext?.capabilities?.drop,
      add: worker.securityContext?.capabilities?.add,
    },
    {
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      drop: ['ALL'],
      add: undefined,
    },
  );
  assert.equal(deployment.spec!.template.metadata?.annotations?.['prometheus.io/scrape'], 'true');
  assert.equal(deployment.spec!.template.metadata?.annotations?.['prometheus.io/port'], '9464');

  // The PDB and the metrics Service select exactly the Deployment's pods.
  const selects = (selector: Record<string, string> | undefined) =>
    Object.entries(selector ?? {}).length > 0 && Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
  const pdb = await policy.readNamespacedPodDisruptionBudget({ namespace, name: 'corral-worker' }, options);
  assert.equal(pdb.spec?.minAvailable, 1);
  assert.ok(selects(pdb.spec?.selector?.matchLabels), 'the PDB selects the worker pods');
  assert.deepEqual(pdb.spec?.selector?.matchLabels, deployment.spec?.selector.matchLabels);
  const service = await core.readNamespacedService({ namespace, name: 'corral-worker-metrics' }, options);
  assert.ok(selects(service.spec?.selector), 'the Service selects the worker pods');
  assert.deepEqual(
    service.spec?.ports?.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort })),
    [{ name: 'metrics', port: 9464, targetPort: 'metrics' }],
  );

  // The example pool is a valid PoolSpec for the kubernetes runtime.
  const example = parsePoolSpec(
    parse(fs.readFileSync(path.join(manifestsDir, 'examples', 'pool-demo.yaml'), 'utf8')) as unknown,
  );
  assert.equal(example.runtime, 'kubernetes');
  assert.equal(example.minIdle, 3);
});

test('corral doctor, run as the corral ServiceAccount, passes for the workers namespace; with watch on pods removed it names that verb', async () => {
  const kubeconfig = await serviceAccountKubeconfigFile('corral');

  // The authorizer reads RBAC from an informer cache: poll until the new binding is seen.
  const passing = await waitFor(
    async () => {
      const result = await runDoctor(kubeconfig, { json: true });
      return result.code === 0 ? result : false;
    },
    { what: 'doctor to pass as the corral ServiceAccount', timeoutMs: 60_000, intervalMs: 500 },
  );
  const report = parseDoctorJson(passing);
  assert.equal(report.ok, true);
  assert.equal(report.checks.length, 1, 'only RBAC is checked: no registry or Temporal configured');
  assert.equal(report.checks[0].name, 'kubernetes rbac');
  assert.equal(report.checks[0].ok, true, report.checks[0].detail);
  assert.match(report.checks[0].detail, new RegExp(workersNamespace));

  // In its own namespace (the registry URL, the API tokens, the protocol key) corral may do nothing.
  const asCorral = new KubeConfig();
  asCorral.loadFromFile(kubeconfig);
  const own = await checkKubernetesPermissions(asCorral, namespace);
  assert.deepEqual(
    own.missing,
    requiredKubernetesPermissions.flatMap(({ resource, verbs }) => verbs.map((verb) => `${verb} ${resource}`)),
    `corral has no pod or secret permission in its own namespace ${namespace}`,
  );

  // Take `watch` on pods away from the applied Role.
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const role = await rbac.readNamespacedRole(
    { namespace: workersNamespace, name: 'corral' },
    timeoutOptions(apiTimeoutMs),
  );
  role.rules = (role.rules ?? []).map((rule) =>
    rule.resources?.includes('pods') ? { ...rule, verbs: rule.verbs.filter((v) => v !== 'watch') } : rule,
  );
  await rbac.replaceNamespacedRole(
    { namespace: workersNamespace, name: 'corral', body: role },
    timeoutOptions(apiTimeoutMs),
  );

  const failing = await waitFor(
    async () => {
      const result = await runDoctor(kubeconfig, { json: true });
      return result.code !== 0 ? result : false;
    },
    { what: 'doctor to see the Role without watch on pods', timeoutMs: 60_000, intervalMs: 500 },
  );
  assert.equal(failing.code, 1, `exit 1 for a failed check\n${failing.stderr}`);
  const failed = parseDoctorJson(failing);
  assert.equal(failed.ok, false);
  assert.equal(failed.checks.length, 1);
  assert.equal(failed.checks[0].name, 'kubernetes rbac');
  assert.equal(failed.checks[0].ok, false);
  assert.equal(failed.checks[0].detail, `missing in namespace ${workersNamespace}: watch pods`);

  // People get the same answer as a table row.
  const table = await runDoctor(kubeconfig, { json: false });
  assert.equal(table.code, 1, table.stderr);
  const row = table.stdout.split('\n').find((line) => line.startsWith('kubernetes rbac'));
  assert.ok(row, `a "kubernetes rbac" row in:\n${table.stdout}`);
  assert.match(row, /\bFAIL\b/);
  assert.match(row, /watch pods/);
  assert.match(table.stdout, /^CHECK\s+RESULT\s+DETAIL$/m);
});
