import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyPodFailure, type PodView } from '../../src/runtime/classify-pod-failure';
import { podFailureReasons } from '../../src/lifecycle/failure-reasons';
import { kubeletScenarios } from '../fixtures/kubelet-pod-statuses';

const now = new Date('2026-11-23T10:00:00Z');
const notScheduledGraceMs = 120_000;
const scenarios = kubeletScenarios(now, { notScheduledGraceMs });
const podWith = (status: Record<string, unknown>): PodView =>
  ({ metadata: { creationTimestamp: new Date(now.getTime() - 5_000).toISOString() }, status }) as PodView;

for (const [name, scenario] of Object.entries(scenarios)) {
  test(`kubelet status "${name}" classifies as ${scenario.expected}`, () => {
    const verdict = classifyPodFailure(podWith(scenario.status), { now, notScheduledGraceMs });
    const got = verdict.status === 'failed' ? verdict.reason : verdict.status;
    assert.equal(got, scenario.expected, JSON.stringify(verdict));
    if (verdict.status === 'failed') assert.ok(verdict.detail.length > 0, 'a failure says what happened');
  });
}

test('every pod-level failure reason has a kubelet-shaped scenario (or a dedicated test below)', () => {
  const covered = new Set<string>(Object.values(scenarios).map((s) => s.expected));
  // pod_vanished: no pod at all; runtime_unreachable and type_mismatch are decided outside the pod status.
  for (const reason of ['pod_vanished', 'runtime_unreachable', 'type_mismatch']) covered.add(reason);
  assert.deepEqual(
    podFailureReasons.filter((r) => !covered.has(r)),
    [],
  );
});

test('a missing pod is pod_vanished, and a pod being deleted before it was ready too', () => {
  const gone = classifyPodFailure(undefined, { now, notScheduledGraceMs });
  assert.equal(gone.status === 'failed' && gone.reason, 'pod_vanished');
  const pending = scenarios.containerCreating.status;
  const deleting = classifyPodFailure(
    { metadata: { deletionTimestamp: now.toISOString() }, status: pending } as PodView,
    { now, notScheduledGraceMs },
  );
  assert.equal(deleting.status === 'failed' && deleting.reason, 'pod_vanished');
});

test('unschedulable within the grace period is pending with the moment to look again', () => {
  const verdict = classifyPodFailure(podWith(scenarios.unschedulableWithinGrace.status), { now, notScheduledGraceMs });
  assert.equal(verdict.status, 'pending');
  assert.equal(
    verdict.status === 'pending' && verdict.recheckAt?.toISOString(),
    new Date(now.getTime() + notScheduledGraceMs).toISOString(),
  );
  const later = classifyPodFailure(podWith(scenarios.unschedulableWithinGrace.status), {
    now: new Date(now.getTime() + notScheduledGraceMs),
    notScheduledGraceMs,
  });
  assert.equal(later.status === 'failed' && later.reason, 'pod_not_scheduled');
});

test('CrashLoopBackOff after an OOM kill is pod_oom_killed, and a restarted container counts as crashed', () => {
  const status = structuredClone(scenarios.crashLoopBackOff.status) as {
    containerStatuses: { lastState: { terminated: { reason: string } } }[];
  };
  status.containerStatuses[0]!.lastState.terminated.reason = 'OOMKilled';
  const oom = classifyPodFailure(podWith(status), { now, notScheduledGraceMs });
  assert.equal(oom.status === 'failed' && oom.reason, 'pod_oom_killed');

  const restarted = structuredClone(scenarios.ready.status) as { containerStatuses: Record<string, unknown>[] };
  restarted.containerStatuses[0] = {
    ...restarted.containerStatuses[0],
    restartCount: 1,
    lastState: { terminated: { exitCode: 2, reason: 'Error' } },
  };
  const crashed = classifyPodFailure(podWith(restarted), { now, notScheduledGraceMs });
  assert.equal(crashed.status === 'failed' && crashed.reason, 'pod_crashed');
});

test('Date timestamps (client-node deserialised objects) classify like strings', () => {
  const status = structuredClone(scenarios.unschedulable.status) as { conditions: { lastTransitionTime: unknown }[] };
  status.conditions[0]!.lastTransitionTime = new Date(status.conditions[0]!.lastTransitionTime as string);
  const verdict = classifyPodFailure(podWith(status), { now, notScheduledGraceMs });
  assert.equal(verdict.status === 'failed' && verdict.reason, 'pod_not_scheduled');
});

test('partial or empty statuses never throw and are pending', () => {
  for (const pod of [
    {},
    { status: {} },
    { status: { phase: 'Pending', containerStatuses: [{ name: 'worker' }] } },
    { status: { phase: 'Running' } },
  ]) {
    assert.equal(
      classifyPodFailure(pod as PodView, { now, notScheduledGraceMs }).status,
      'pending',
      JSON.stringify(pod),
    );
  }
});
