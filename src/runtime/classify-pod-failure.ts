// classifyPodFailure: a pure function from what the kubelet wrote into a pod's status to one of
// corral's failure reasons, `ready` or `pending`. It runs on every watch event, so it must never
// throw on a partial status (fields appear one by one as the pod progresses) and never do I/O.
//
// Timestamps arrive as Date (objects read through client-node's deserialiser) or as RFC 3339
// strings (raw watch events); both are accepted.
import type { PodFailureReason, WorkerFailureReason } from '../common';

type Timestamp = Date | string;

interface ContainerStateView {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: Timestamp };
  terminated?: { reason?: string; message?: string; exitCode?: number; signal?: number };
}

export interface ContainerStatusView {
  name: string;
  ready?: boolean;
  restartCount?: number;
  state?: ContainerStateView;
  lastState?: ContainerStateView;
}

export interface PodConditionView {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: Timestamp;
}

/** The parts of a V1Pod the classifier reads. A client-node V1Pod is assignable to it. */
export interface PodView {
  metadata?: { creationTimestamp?: Timestamp; deletionTimestamp?: Timestamp | null };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    podIP?: string;
    conditions?: PodConditionView[];
    initContainerStatuses?: ContainerStatusView[];
    containerStatuses?: ContainerStatusView[];
  };
}

export type PodVerdict =
  | { status: 'ready' }
  /** `recheckAt` is when the verdict may change without any new event (a grace period ending). */
  | { status: 'pending'; detail: string; recheckAt?: Date }
  | { status: 'failed'; reason: PodFailureReason; detail: string };

export interface ClassifyOptions {
  now: Date;
  /** How long a pod may be Unschedulable before that counts as a failure (autoscalers need time). */
  notScheduledGraceMs: number;
  /** The pod had been Ready (the health watch asks): a crash happened while serving, not before. */
  served?: boolean;
}

const imagePullReasons = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'RegistryUnavailable',
  'SignatureValidationFailed',
]);
const invalidImageReasons = new Set(['InvalidImageName', 'ErrImageNeverPull']);
// CreateContainerConfigError: a referenced Secret/ConfigMap (or key) is missing. Not
// CreateContainerError: its usual causes are transient ("name is reserved", a busy containerd),
// the kubelet retries it itself, so it stays pending until the spawn deadline decides.
const configErrorReasons = new Set(['CreateContainerConfigError']);
// How a container runtime reports an entrypoint that is not in the image.
const startFailureReasons = new Set(['StartError', 'ContainerCannotRun', 'RunContainerError']);
// Set by the kubelet/scheduler/taint manager on a pod they are about to kill (k8s ≥ 1.26).
const disruptionReasons = new Set([
  'EvictionByEvictionAPI',
  'PreemptionByScheduler',
  'DeletionByTaintManager',
  'TerminationByKubelet',
]);
const missingExecutable = /executable file not found|no such file or directory/i;
/** coreutils `timeout`'s exit code when the deadline fired: the process runtime's max lifetime too. */
export const timeoutExitCode = 124;

function toMillis(ts: Timestamp | undefined): number | undefined {
  if (ts === undefined) return undefined;
  const ms = ts instanceof Date ? ts.getTime() : Date.parse(ts);
  return Number.isNaN(ms) ? undefined : ms;
}

const failed = (reason: PodFailureReason, detail: string): PodVerdict => ({ status: 'failed', reason, detail });

function describeTermination(t: NonNullable<ContainerStateView['terminated']>): string {
  const parts = [`exit code ${t.exitCode ?? 'unknown'}`];
  if (t.signal) parts.push(`signal ${t.signal}`);
  if (t.reason) parts.push(t.reason);
  if (t.message) parts.push(t.message);
  return parts.join(', ');
}

/** A terminated container's verdict: OOM is its own reason, anything else is a crash. */
function terminationVerdict(
  container: string,
  t: NonNullable<ContainerStateView['terminated']>,
  when: string,
): PodVerdict {
  // With restartPolicy Never a missing entrypoint ends as terminated/StartError (exit 128), not waiting.
  if (startFailureReasons.has(t.reason ?? '') && missingExecutable.test(t.message ?? '')) {
    return failed('invalid_image', `container ${container} cannot start: ${t.message}`);
  }
  if (t.reason === 'OOMKilled') return failed('pod_oom_killed', `container ${container} was OOM-killed`);
  if (t.reason === 'DeadlineExceeded') return failed('deadline_exceeded', `container ${container} hit its deadline`);
  // 124: coreutils `timeout` (or an image's own wrapper) ended the worker at its deadline.
  if (t.exitCode === timeoutExitCode) {
    return failed('deadline_exceeded', `container ${container} exited 124 (a timeout ended it) ${when}`);
  }
  return failed('pod_crashed', `container ${container} exited ${when} (${describeTermination(t)})`);
}

function containerVerdict(c: ContainerStatusView, when: string): PodVerdict | undefined {
  const waiting = c.state?.waiting;
  const reason = waiting?.reason ?? '';
  const message = waiting?.message ? `: ${waiting.message}` : '';
  if (invalidImageReasons.has(reason)) return failed('invalid_image', `container ${c.name} ${reason}${message}`);
  if (imagePullReasons.has(reason)) return failed('image_pull_backoff', `container ${c.name} ${reason}${message}`);
  if (configErrorReasons.has(reason)) return failed('config_error', `container ${c.name} ${reason}${message}`);
  if (reason === 'RunContainerError' || reason === 'StartError') {
    // The image exists but its entrypoint does not: as unfixable by a respawn as a bad image name.
    if (missingExecutable.test(waiting?.message ?? '')) {
      return failed('invalid_image', `container ${c.name} ${reason}${message}`);
    }
    return failed('pod_crashed', `container ${c.name} ${reason}${message}`);
  }
  if (reason === 'CrashLoopBackOff') {
    const last = c.lastState?.terminated;
    if (last?.reason === 'OOMKilled') return failed('pod_oom_killed', `container ${c.name} is OOM-killed in a loop`);
    if (last && startFailureReasons.has(last.reason ?? '') && missingExecutable.test(last.message ?? '')) {
      return failed('invalid_image', `container ${c.name} cannot start: ${last.message}`);
    }
    return failed(
      'pod_crashed',
      `container ${c.name} is in CrashLoopBackOff${last ? ` (last: ${describeTermination(last)})` : ''}`,
    );
  }
  const terminated = c.state?.terminated;
  if (terminated) return terminationVerdict(c.name, terminated, when);
  // Restarted in place (restartPolicy Always/OnFailure on an adopted pod): whatever it held is gone.
  const previous = c.lastState?.terminated;
  if ((c.restartCount ?? 0) > 0 && previous) return terminationVerdict(c.name, previous, when);
  return undefined;
}

export function classifyPodFailure(pod: PodView | undefined, options: ClassifyOptions): PodVerdict {
  if (!pod) return failed('pod_vanished', 'the pod no longer exists');
  const status = pod.status ?? {};
  const conditions = status.conditions ?? [];
  const phase = status.phase ?? 'Pending';

  // Before the disruption check: the kubelet also marks a pod it kills for its deadline as a disruption target.
  if (status.reason === 'DeadlineExceeded') {
    return failed('deadline_exceeded', status.message ?? 'the pod ran past activeDeadlineSeconds');
  }
  const disruption = conditions.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  if (status.reason === 'Evicted' || (disruption && disruptionReasons.has(disruption.reason ?? ''))) {
    const why = status.message ?? disruption?.message ?? disruption?.reason ?? 'evicted';
    return failed('pod_evicted', `the pod was evicted: ${why}`);
  }

  // A pod someone is deleting is going away, whatever its containers did on the way out.
  if (pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null) {
    return failed('pod_vanished', 'the pod is being deleted');
  }

  const initContainers = status.initContainerStatuses ?? [];
  const containers = [...initContainers, ...(status.containerStatuses ?? [])];
  for (const c of containers) {
    // An init container that finished successfully did its job.
    if (initContainers.includes(c) && c.state?.terminated?.exitCode === 0) continue;
    const verdict = containerVerdict(c, options.served ? 'while serving' : 'before it was ready');
    if (verdict) return verdict;
  }
  if (phase === 'Failed') {
    return failed(
      'pod_crashed',
      `the pod failed${status.reason ? ` (${status.reason})` : ''}${status.message ? `: ${status.message}` : ''}`,
    );
  }
  if (phase === 'Succeeded') return failed('pod_crashed', 'the worker exited (code 0) although it should keep serving');

  const ready = conditions.find((c) => c.type === 'Ready');
  if (phase === 'Running' && ready?.status === 'True') return { status: 'ready' };

  const scheduled = conditions.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    const since = toMillis(scheduled.lastTransitionTime) ?? toMillis(pod.metadata?.creationTimestamp);
    const now = options.now.getTime();
    const graceEnds = (since ?? now) + options.notScheduledGraceMs;
    const detail = `unschedulable: ${scheduled.message ?? 'no node fits'}`;
    if (now >= graceEnds) return failed('pod_not_scheduled', detail);
    return { status: 'pending', detail, recheckAt: new Date(graceEnds) };
  }
  if (phase === 'Running') return { status: 'pending', detail: 'running, not ready yet' };
  const waitingOn = containers.find((c) => c.state?.waiting)?.state?.waiting?.reason;
  return { status: 'pending', detail: waitingOn ? `pending (${waitingOn})` : 'pending' };
}

/**
 * Why a spawn's readiness wait ended at its deadline without a verdict, read from the last status
 * seen (undefined: the pod was never seen). A pod that runs but whose readiness probe does not pass
 * is `health_check_failed` (the worker started and its own health hook says no); one no node takes
 * is `pod_not_scheduled` even within the grace period (the spawn's time is up); anything else —
 * still creating, pulling, starting — is `spawn_timeout`. Never `deadline_exceeded`: that is the
 * pod's own activeDeadlineSeconds (or a timeout exit), which the classifier reports as it happens.
 */
export function classifyAtDeadline(
  pod: PodView | undefined,
  waitedMs: number,
): { reason: WorkerFailureReason; detail: string } {
  const within = `not ready within ${Math.round(waitedMs / 1000)}s`;
  if (!pod) return { reason: 'spawn_timeout', detail: `${within}: the pod was never seen` };
  const status = pod.status ?? {};
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return { reason: 'pod_not_scheduled', detail: `${within}: unschedulable: ${scheduled.message ?? 'no node fits'}` };
  }
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  const running = (status.containerStatuses ?? []).filter((c) => c.state?.running);
  if (status.phase === 'Running' && running.length > 0 && ready?.status !== 'True') {
    const names = running.filter((c) => c.ready !== true).map((c) => c.name);
    return {
      reason: 'health_check_failed',
      detail: `${within}: running, but the readiness probe of ${names.join(', ') || 'the worker'} did not pass${ready?.message ? ` (${ready.message})` : ''}`,
    };
  }
  const waitingOn = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])].find(
    (c) => c.state?.waiting,
  )?.state?.waiting?.reason;
  return {
    reason: 'spawn_timeout',
    detail: `${within} (last seen: ${status.phase ?? 'Pending'}${waitingOn ? `, ${waitingOn}` : ''})`,
  };
}
