// A missing permission must be loud: an identity whose Role lacks `watch` on pods gets a
// forbidden error naming the verb and resource as soon as it waits for readiness, and
// `doctor` names the same gap up front. A Role granting exactly what corral needs passes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { KubeConfig, V1PolicyRule } from '@kubernetes/client-node';
import { RuntimeForbiddenError } from '../../src/runtime/errors';
import {
  checkKubernetesPermissions,
  describeDoctorReport,
  requiredKubernetesPermissions,
} from '../../src/runtime/kubernetes/doctor';
import { KubernetesPodRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime';
import { kubeConfigFor, type KubeEndpoint } from '../harness/kube';
import { createTestNamespace, serviceAccountKubeConfig } from '../harness/kube-namespace';
import { useKube, type Lease } from '../harness/shared';
import { credentials, newWorkerId } from './runtime-behaviour';

let kube: Lease<KubeEndpoint>;
let namespace: string;

const rulesFor = (drop?: { resource: string; verb: string }): V1PolicyRule[] =>
  requiredKubernetesPermissions.map(({ resource, verbs }) => ({
    apiGroups: [''],
    resources: [resource],
    verbs: verbs.filter((verb) => !(drop && drop.resource === resource && drop.verb === verb)),
  }));

const spec = () => ({
  workerId: newWorkerId(),
  pool: 'rbac',
  spawnAttempt: 1,
  epoch: 1,
  image: 'registry.example/corral/demo-worker:0.1.0',
  resources: { requests: { cpuMillis: 100, memoryMiB: 64 }, limits: { cpuMillis: 100, memoryMiB: 64 } },
  maxLifetimeSeconds: 3_600,
});

before(async () => {
  kube = await useKube();
  namespace = await createTestNamespace(kubeConfigFor(kube.value), 'rbac');
});

after(async () => {
  await kube?.release();
});

test('a Role without watch on pods: readiness fails with forbidden naming the verb, and doctor names the same gap', async () => {
  const kubeConfig: KubeConfig = await serviceAccountKubeConfig(
    kube.value,
    namespace,
    'corral-no-watch',
    rulesFor({ resource: 'pods', verb: 'watch' }),
  );
  const runtime = new KubernetesPodRuntime({ kubeConfig, namespace });
  const { ref } = await runtime.create(spec(), credentials(1));
  await assert.rejects(
    runtime.awaitReady(ref, { timeoutMs: 30_000 }),
    (err: unknown) =>
      err instanceof RuntimeForbiddenError &&
      err.verb === 'watch' &&
      err.resource === 'pods' &&
      err.namespace === namespace &&
      /forbidden: corral may not watch pods/.test(err.message),
  );

  const report = await checkKubernetesPermissions(kubeConfig, namespace);
  assert.equal(report.ok, false);
  assert.deepEqual(report.missing, ['watch pods']);
  assert.match(describeDoctorReport(report), /watch pods/);
  await runtime.delete(ref);
});

test('each missing verb is named by doctor; a Role with exactly the required rules passes', async () => {
  const complete = await serviceAccountKubeConfig(kube.value, namespace, 'corral-complete', rulesFor());
  const report = await checkKubernetesPermissions(complete, namespace);
  assert.equal(report.ok, true, describeDoctorReport(report));
  assert.equal(report.checks.length, requiredKubernetesPermissions.flatMap((p) => p.verbs).length);

  const noSecretPatch = await serviceAccountKubeConfig(
    kube.value,
    namespace,
    'corral-no-patch',
    rulesFor({ resource: 'secrets', verb: 'patch' }),
  );
  assert.deepEqual((await checkKubernetesPermissions(noSecretPatch, namespace)).missing, ['patch secrets']);

  // Right verbs, wrong namespace: every check fails there.
  const elsewhere = await checkKubernetesPermissions(complete, 'default');
  assert.equal(elsewhere.missing.length, report.checks.length);
});

test('a forbidden create names the verb and resource too', async () => {
  const kubeConfig = await serviceAccountKubeConfig(
    kube.value,
    namespace,
    'corral-no-create',
    rulesFor({ resource: 'secrets', verb: 'create' }),
  );
  const runtime = new KubernetesPodRuntime({ kubeConfig, namespace });
  await assert.rejects(
    runtime.create(spec(), credentials(1)),
    (err: unknown) => err instanceof RuntimeForbiddenError && err.verb === 'create' && err.resource === 'secrets',
  );
});
