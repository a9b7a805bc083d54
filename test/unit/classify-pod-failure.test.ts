import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyAtDeadline, classifyPodFailure, type PodView } from '../../src/runtime/classify-pod-failure';
import { podFailureReasons } from '../../src/common';
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
  // pod_vanished: no pod at all; runtime_unreachable, type_mismatch and quota_exceeded (a create the
  // ResourceQuota refused) are decided outside the pod status; spawn_timeout by classifyAtDeadline.
  for (const reason of ['pod_vanished', 'runtime_unreachable', 'type_mismatch', 'quota_exceeded', 'spawn_timeout']) {
    covered.add(reason);
  }
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

test('a wait that ends at its deadline takes its reason from the last status, never deadline_exceeded', () => {
  const cases: [string, PodView | undefined, string][] = [
    ['never seen', undefined, 'spawn_timeout'],
    ['no status yet', { metadata: {} }, 'spawn_timeout'],
    ['creating its container', podWith(scenarios.containerCreating.status), 'spawn_timeout'],
    [
      'CreateContainerError, which the kubelet retries',
      podWith(scenarios.createContainerError.status),
      'spawn_timeout',
    ],
    ['running, readiness probe failing', podWith(scenarios.runningNotReady.status), 'health_check_failed'],
    ['unschedulable within its grace', podWith(scenarios.unschedulableWithinGrace.status), 'pod_not_scheduled'],
  ];
  for (const [name, pod, expected] of cases) {
    const { reason, detail } = classifyAtDeadline(pod, 90_000);
    assert.equal(reason, expected, name);
    assert.match(detail, /not ready within 90s/, name);
  }
  const probe = classifyAtDeadline(podWith(scenarios.runningNotReady.status), 5_000);
  assert.match(probe.detail, /readiness probe of worker did not pass/);
});

test('exit 124 (a timeout wrapper) is deadline_exceeded; any other exit before ready is pod_crashed', () => {
  const verdict = classifyPodFailure(podWith(scenarios.timeoutExit.status), { now, notScheduledGraceMs });
  assert.equal(verdict.status === 'failed' && verdict.reason, 'deadline_exceeded');
  assert.match(verdict.status === 'failed' ? verdict.detail : '', /exited 124/);
});
