// The Kubernetes health watch: pod status changes from the runtime's one pod informer become
// verdicts, so a serving worker costs corral no activity, no probe and no history while it is
// healthy. The kubelet runs the readinessProbe (pod-manifest.ts sets it from the pool's health
// settings); corral reads the Ready condition it keeps, and the containers' and pod's fate.
//
// Only pods that have served are judged: seen Ready by this informer, or — first seen in a list,
// e.g. after corral restarted — with containers that had started. Before that a pod belongs to
// its readiness wait, which reports its failures itself. One verdict per pod: it is not repeated
// for later status updates, and the pod is forgotten once deleted. Each change costs O(1).
import type { WorkerFailureReason } from '../../common';
import { classifyPodFailure } from '../classify-pod-failure';
import type { PodHealthWatch, PodHealthWatchOptions } from '../pod-runtime';
import { apiMessage } from './api-call';
import type { CachedPod, PodChange, PodInformer } from './pod-informer';

/**
 * Pods this runtime asked to delete: their deletion (and the container exits on the way) is no
 * verdict. An entry goes once every subscriber has seen the pod deleted, or after `retentionMs`
 * (a bound for deletions the informer never sees, e.g. when it was not running).
 */
export class OwnDeletions {
  /** name → when the deletion was asked; insertion order is age order, so pruning stops early. */
  private readonly names = new Map<string, number>();

  constructor(private readonly retentionMs = 3_600_000) {}

  add(name: string): void {
    const cutoff = Date.now() - this.retentionMs;
    for (const [old, at] of this.names) {
      if (at >= cutoff) break;
      this.names.delete(old);
    }
    this.names.delete(name);
    this.names.set(name, Date.now());
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /** After the deletion was seen: deferred so every subscriber of the same change still sees it as ours. */
  forgetSoon(name: string): void {
    queueMicrotask(() => this.names.delete(name));
  }

  forget(name: string): void {
    this.names.delete(name);
  }

  get size(): number {
    return this.names.size;
  }
}

const hasServed = (pod: CachedPod): boolean => pod.seenReady || pod.startedBeforeSeen;

/** The verdict for a pod that has served and still exists, if it is no longer serving. */
function verdictOf(pod: CachedPod): { reason: WorkerFailureReason; detail: string } | undefined {
  // Unschedulable does not apply to a pod that has run; no grace period to honour.
  const verdict = classifyPodFailure(pod.view, { now: new Date(), notScheduledGraceMs: Infinity, served: true });
  if (verdict.status === 'failed') {
    // The classifier's pod_vanished here means a deletionTimestamp, and this runtime did not delete it.
    if (verdict.reason === 'pod_vanished') {
      return { reason: 'pod_vanished', detail: 'the pod is being deleted, not by this corral worker' };
    }
    return { reason: verdict.reason, detail: verdict.detail };
  }
  const ready = pod.view.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready && ready.status !== 'True' && (pod.seenReady || pod.readyLostBeforeSeen)) {
    const why = [ready.reason, ready.message].filter(Boolean).join(': ');
    return {
      reason: 'health_check_failed',
      detail: `the pod stopped being Ready (its readiness probe failed)${why ? `: ${why}` : ''}`,
    };
  }
  return undefined;
}

export function watchPodHealth(
  informer: PodInformer,
  ownDeletions: OwnDeletions,
  options: PodHealthWatchOptions,
): PodHealthWatch {
  /** Pods a verdict was given for; forgotten when they are deleted. */
  const reported = new Set<string>();
  const watches = options.watches ?? (() => true);

  const report = (pod: CachedPod, reason: WorkerFailureReason, detail: string) => {
    if (!pod.ref) return;
    reported.add(pod.name);
    try {
      options.onVerdict({ ref: pod.ref, reason, detail });
    } catch (err) {
      options.log?.(`health verdict handler failed for ${pod.name}: ${apiMessage(err)}`);
    }
  };

  const judge = (change: PodChange) => {
    const { pod } = change;
    if (change.kind === 'deleted') {
      if (reported.delete(pod.name)) return;
      if (ownDeletions.has(pod.name) || !pod.ref || !hasServed(pod) || !watches(pod.ref.workerId)) return;
      report(pod, 'pod_vanished', 'the pod was deleted, not by this corral worker');
      reported.delete(pod.name);
      return;
    }
    if (reported.has(pod.name) || ownDeletions.has(pod.name) || !pod.ref || !hasServed(pod)) return;
    const verdict = verdictOf(pod);
    if (verdict && watches(pod.ref.workerId)) report(pod, verdict.reason, verdict.detail);
  };

  const unsubscribeChanges = informer.onChange(judge);
  const unsubscribeLog = options.log ? informer.onLog(options.log) : () => undefined;
  informer.start();
  // Pods the informer already holds (readiness waits started it): judge their present state once.
  for (const pod of [...informer.values()]) judge({ kind: 'upsert', pod, previous: undefined });

  return {
    async close() {
      unsubscribeChanges();
      unsubscribeLog();
    },
  };
}
