// The Kubernetes PodRuntime: one Pod and one Secret per worker spawn, in one namespace, on
// @kubernetes/client-node. Idempotent by deterministic names. Readiness waits and the health
// watch share one pod informer (one list+watch of the namespace's corral pods), started on first use.
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type ConfigurationOptions,
  type KubeConfig,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { kubernetesApiDefaults, kubernetesMethodBudgetsMs, type WorkerPodRef } from '../../common';
import { classifyPodFailure } from '../classify-pod-failure';
import {
  RuntimeInputError,
  RuntimeUnavailableError,
  StaleRuntimeWriteError,
  WorkerNameConflictError,
  WorkerPodNotFoundError,
  type CredentialStamp,
} from '../errors';
import type {
  AwaitReadyOptions,
  RuntimeCallOptions,
  CreateWorkerResult,
  ManagedWorker,
  PodHealthWatch,
  PodHealthWatchOptions,
  PodRuntime,
  ReadinessOutcome,
} from '../pod-runtime';
import {
  checkWaitTimeout,
  credentialsFileContent,
  goesBackwards,
  isValidImageReference,
  parsePoolFilter,
  parseWorkerCredentials,
  parseWorkerPodRef,
  parseWorkerPodSpec,
  refFor,
  type WorkerCredentials,
  type WorkerPodSpecInput,
} from '../worker-pod-spec';
import { apiMessage, callKubernetes, statusCodeOf, timeoutOptions, type ApiCallContext } from './api-call';
import {
  corralAnnotations,
  corralLabels,
  credentialsFileName,
  isOursFor,
  managedBySelector,
  podManifest,
  secretManifest,
  secretNameFor,
} from './pod-manifest';
import { OwnDeletions, watchPodHealth } from './pod-health-watch';
import { PodInformer } from './pod-informer';
import { awaitPodReadiness } from './readiness-wait';

export interface KubernetesRuntimeOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Bound on one API request. */
  apiTimeoutMs?: number;
  /** Attempts for a transient API failure (first included) and the first backoff. */
  retry?: { attempts: number; backoffMs: number };
  /** How long readiness waits tolerate an unreachable apiserver before answering `runtime_unreachable`. */
  unreachableAfterMs?: number;
  /** How long a pod may stay Unschedulable before it is `pod_not_scheduled`. */
  notScheduledGraceMs?: number;
  watchTimeoutSeconds?: number;
  /** The pod informer re-lists this often even when its watch is healthy (bounded: 1 min to 24 h). */
  resyncIntervalMs?: number;
  /** Each method's overall bound (every request it makes draws on it); see runtime-bounds.ts. */
  budgets?: { create: number; writeCredentials: number; delete: number; listManaged: number };
}

/** Conflicting writes (409 on the resourceVersion precondition) re-read at most this many times. */
const maxConflictRounds = 5;

export const kubernetesRuntimeDefaults = {
  apiTimeoutMs: kubernetesApiDefaults.apiTimeoutMs,
  retry: { attempts: kubernetesApiDefaults.attempts, backoffMs: kubernetesApiDefaults.backoffMs },
  budgets: kubernetesMethodBudgetsMs,
  unreachableAfterMs: 30_000,
  notScheduledGraceMs: 120_000,
  watchTimeoutSeconds: 300,
  resyncIntervalMs: 600_000,
} as const;

const minResyncIntervalMs = 60_000;
const maxResyncIntervalMs = 24 * 3_600_000;

const namespacePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export class KubernetesPodRuntime implements PodRuntime {
  readonly kind = 'kubernetes' as const;
  readonly namespace: string;
  private readonly core: CoreV1Api;
  private readonly settings: Required<Omit<KubernetesRuntimeOptions, 'kubeConfig' | 'namespace'>>;
  private informer: PodInformer | undefined;
  /** Pods this runtime deleted: their deletion is not a health verdict. */
  private readonly ownDeletions = new OwnDeletions();

  constructor(private readonly options: KubernetesRuntimeOptions) {
    if (!namespacePattern.test(options.namespace) || options.namespace.length > 63) {
      throw new RuntimeInputError('namespace', `"${options.namespace}" is not a valid namespace name`);
    }
    this.namespace = options.namespace;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.settings = { ...kubernetesRuntimeDefaults, ...stripUndefined(options) } as typeof this.settings;
    const { resyncIntervalMs } = this.settings;
    if (!(resyncIntervalMs >= minResyncIntervalMs && resyncIntervalMs <= maxResyncIntervalMs)) {
      throw new RuntimeInputError(
        'resyncIntervalMs',
        `must be between ${minResyncIntervalMs} and ${maxResyncIntervalMs} milliseconds`,
      );
    }
  }

  /** The namespace's one pod informer (created on first use, started by its first user). */
  podInformer(): PodInformer {
    if (!this.informer) {
      const informer = new PodInformer({
        kubeConfig: this.options.kubeConfig,
        core: this.core,
        namespace: this.namespace,
        labelSelector: managedBySelector,
        apiTimeoutMs: this.settings.apiTimeoutMs,
        watchTimeoutSeconds: this.settings.watchTimeoutSeconds,
        resyncIntervalMs: this.settings.resyncIntervalMs,
      });
      informer.onChange((change) => {
        if (change.kind === 'deleted') this.ownDeletions.forgetSoon(change.pod.name);
      });
      this.informer = informer;
    }
    return this.informer;
  }

  /**
   * One API request with the runtime's retry: every attempt gets the per-request timeout and
   * `signal` (the method's budget and the caller's cancellation, see `bounded`).
   */
  private call<T>(
    verb: string,
    resource: string,
    signal: AbortSignal,
    request: (options: ConfigurationOptions) => Promise<T>,
  ): Promise<T> {
    const context: ApiCallContext = { verb, resource, namespace: this.namespace, ...this.settings.retry, signal };
    return callKubernetes(context, () =>
      request(timeoutOptions(AbortSignal.any([signal, AbortSignal.timeout(this.settings.apiTimeoutMs)]))),
    );
  }

  /**
   * Runs one runtime method under its budget (its worst case, src/common/runtime-bounds.ts)
   * and the caller's signal. The caller's abort rejects with the caller's reason; the budget's end
   * with a RuntimeUnavailableError (retryable).
   */
  private async bounded<T>(
    what: string,
    budgetMs: number,
    callerSignal: AbortSignal | undefined,
    body: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    callerSignal?.throwIfAborted();
    const budget = AbortSignal.timeout(budgetMs);
    const signal = callerSignal ? AbortSignal.any([callerSignal, budget]) : budget;
    try {
      return await body(signal);
    } catch (err) {
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (budget.aborted && !(err instanceof RuntimeUnavailableError)) {
        throw new RuntimeUnavailableError(
          `kubernetes: ${what} in "${this.namespace}" did not finish within ${Math.round(budgetMs / 1000)}s (${apiMessage(err)})`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async create(
    specInput: WorkerPodSpecInput,
    credentialsInput: WorkerCredentials,
    options: RuntimeCallOptions = {},
  ): Promise<CreateWorkerResult> {
    const spec = parseWorkerPodSpec(specInput);
    if (!isValidImageReference(spec.image)) {
      throw new RuntimeInputError(
        'image',
        `"${spec.image}" is not a valid image reference (e.g. registry.example/team/worker:1.2)`,
      );
    }
    const credentials = parseWorkerCredentials(credentialsInput);
    const ref = refFor(spec);
    const { namespace } = this;
    const caller = options.signal;
    /** A write request has been sent: from here on, an abort may leave something behind. */
    let wrote = false;
    try {
      return await this.bounded('create', this.settings.budgets.create, caller, async (signal) => {
        // The Secret first: the pod mounts it, and a pod without it would sit in ContainerCreating.
        try {
          signal.throwIfAborted();
          wrote = true;
          await this.call('create', 'secrets', signal, (o) =>
            this.core.createNamespacedSecret({ namespace, body: secretManifest(ref, credentials) }, o),
          );
        } catch (err) {
          if (statusCodeOf(err) !== 409) throw err;
          // Adopted: the caller's credentials are the ones it will record, so they win — unless
          // the secret already holds newer ones (this create is a late attempt), then it refuses.
          await this.writeSecret(ref, credentials, signal);
        }

        let result: CreateWorkerResult;
        try {
          await this.call('create', 'pods', signal, (o) =>
            this.core.createNamespacedPod({ namespace, body: podManifest(ref, spec) }, o),
          );
          this.ownDeletions.forget(ref.name);
          result = { ref, created: true };
        } catch (err) {
          if (statusCodeOf(err) !== 409) throw err;
          const existing = await this.call('get', 'pods', signal, (o) =>
            this.core.readNamespacedPod({ namespace, name: ref.name }, o),
          );
          if (!isOursFor(ref, existing.metadata?.labels)) throw new WorkerNameConflictError('Pod', ref.name);
          result = { ref, created: false };
        }
        // The caller gave up while the write was on its way: it must not outlive the give-up.
        caller?.throwIfAborted();
        return result;
      });
    } catch (err) {
      if (wrote && caller?.aborted) await this.removeAbortedCreate(ref);
      throw err;
    }
  }

  /**
   * The caller of a create gave up after a write was sent: delete whatever that write made (pod
   * and secret), under the delete budget and without the caller's (aborted) signal. A failure here
   * is left to the janitor, which deletes pods no live worker owns.
   */
  private async removeAbortedCreate(ref: WorkerPodRef): Promise<void> {
    await this.delete(ref).catch(() => undefined);
  }

  async awaitReady(refInput: WorkerPodRef, options: AwaitReadyOptions): Promise<ReadinessOutcome> {
    const ref = parseWorkerPodRef(refInput);
    checkWaitTimeout(options.timeoutMs);
    return awaitPodReadiness({
      informer: this.podInformer(),
      core: this.core,
      namespace: this.namespace,
      ref,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      onWaiting: options.onWaiting,
      unreachableAfterMs: this.settings.unreachableAfterMs,
      notScheduledGraceMs: this.settings.notScheduledGraceMs,
      apiTimeoutMs: this.settings.apiTimeoutMs,
    });
  }

  /**
   * Writes the worker's credentials into its Secret, never backwards: read it, compare the epoch
   * and credential version it carries (annotations) with the write's, then patch with the read's
   * resourceVersion as a precondition; a 409 (someone wrote in between) reads again, at most
   * `maxConflictRounds` times. Older than what is stored: StaleRuntimeWriteError, nothing written.
   * The same epoch and version again (a retried write) is written again: its token is as good.
   */
  private async writeSecret(ref: WorkerPodRef, credentials: WorkerCredentials, signal: AbortSignal): Promise<void> {
    const { namespace } = this;
    const name = secretNameFor(ref);
    const attempted: CredentialStamp = { epoch: credentials.epoch, version: credentials.version };
    for (let round = 1; ; round++) {
      let secret: V1Secret;
      try {
        secret = await this.call('get', 'secrets', signal, (o) =>
          this.core.readNamespacedSecret({ namespace, name }, o),
        );
      } catch (err) {
        if (statusCodeOf(err) === 404) throw new WorkerPodNotFoundError(ref.name);
        throw err;
      }
      if (!isOursFor(ref, secret.metadata?.labels)) throw new WorkerNameConflictError('Secret', name);
      const stored = storedStamp(secret.metadata?.annotations);
      if (stored && goesBackwards(stored, attempted)) throw new StaleRuntimeWriteError(name, stored, attempted);
      const body = {
        metadata: {
          // A precondition: the apiserver answers 409 if the secret changed since the read.
          resourceVersion: secret.metadata?.resourceVersion,
          annotations: {
            [corralAnnotations.epoch]: String(credentials.epoch),
            [corralAnnotations.credentialVersion]: String(credentials.version),
          },
        },
        stringData: { [credentialsFileName]: credentialsFileContent(credentials, ref.workerId) },
      };
      try {
        await this.call('patch', 'secrets', signal, (o) =>
          this.core.patchNamespacedSecret(
            { namespace, name, body },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch, o),
          ),
        );
        return;
      } catch (err) {
        if (statusCodeOf(err) === 404) throw new WorkerPodNotFoundError(ref.name);
        if (statusCodeOf(err) !== 409) throw err;
        if (round >= maxConflictRounds) {
          throw new RuntimeUnavailableError(`secret ${name} kept changing under the write (${round} conflicts)`, {
            cause: err,
          });
        }
      }
    }
  }

  /**
   * Raises the pod's epoch annotation (what an operator and the janitor see with kubectl) to
   * `epoch`, never lowers it: read, compare, patch with the read's resourceVersion; a 409 reads
   * again (bounded). A pod that already carries this epoch or a higher one is left as it is.
   */
  private async raisePodEpoch(ref: WorkerPodRef, epoch: number, signal: AbortSignal): Promise<void> {
    const { namespace } = this;
    for (let round = 1; ; round++) {
      let pod: V1Pod;
      try {
        pod = await this.call('get', 'pods', signal, (o) =>
          this.core.readNamespacedPod({ namespace, name: ref.name }, o),
        );
      } catch (err) {
        if (statusCodeOf(err) === 404) throw new WorkerPodNotFoundError(ref.name);
        throw err;
      }
      if (!isOursFor(ref, pod.metadata?.labels)) throw new WorkerNameConflictError('Pod', ref.name);
      const stored = Number(pod.metadata?.annotations?.[corralAnnotations.epoch]);
      if (Number.isSafeInteger(stored) && stored >= epoch) return;
      const body = {
        metadata: {
          resourceVersion: pod.metadata?.resourceVersion,
          annotations: { [corralAnnotations.epoch]: String(epoch) },
        },
      };
      try {
        await this.call('patch', 'pods', signal, (o) =>
          this.core.patchNamespacedPod(
            { namespace, name: ref.name, body },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch, o),
          ),
        );
        return;
      } catch (err) {
        if (statusCodeOf(err) === 404) throw new WorkerPodNotFoundError(ref.name);
        if (statusCodeOf(err) !== 409) throw err;
        if (round >= maxConflictRounds) {
          throw new RuntimeUnavailableError(`pod ${ref.name} kept changing under the write (${round} conflicts)`, {
            cause: err,
          });
        }
      }
    }
  }

  /** Reads a pod or secret and refuses to act on it unless it carries this worker's labels. */
  private async readOwned(
    kind: 'Pod' | 'Secret',
    ref: WorkerPodRef,
    signal: AbortSignal,
  ): Promise<{ uid: string } | undefined> {
    const { namespace } = this;
    try {
      const object =
        kind === 'Pod'
          ? await this.call('get', 'pods', signal, (o) => this.core.readNamespacedPod({ namespace, name: ref.name }, o))
          : await this.call('get', 'secrets', signal, (o) =>
              this.core.readNamespacedSecret({ namespace, name: secretNameFor(ref) }, o),
            );
      const name = kind === 'Pod' ? ref.name : secretNameFor(ref);
      if (!isOursFor(ref, object.metadata?.labels)) throw new WorkerNameConflictError(kind, name);
      return { uid: object.metadata?.uid ?? '' };
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw err;
    }
  }

  async writeCredentials(
    refInput: WorkerPodRef,
    credentialsInput: WorkerCredentials,
    options: RuntimeCallOptions = {},
  ): Promise<void> {
    const ref = parseWorkerPodRef(refInput);
    const credentials = parseWorkerCredentials(credentialsInput);
    await this.bounded('write credentials', this.settings.budgets.writeCredentials, options.signal, async (signal) => {
      await this.writeSecret(ref, credentials, signal);
      await this.raisePodEpoch(ref, credentials.epoch, signal);
    });
  }

  async delete(refInput: WorkerPodRef, options: RuntimeCallOptions = {}): Promise<void> {
    const ref = parseWorkerPodRef(refInput);
    const { namespace } = this;
    // 404 and 409 (the uid precondition: it was replaced meanwhile) both mean "not ours to delete now".
    const ignoreGone = (err: unknown) => {
      if (statusCodeOf(err) !== 404 && statusCodeOf(err) !== 409) throw err;
    };
    await this.bounded('delete', this.settings.budgets.delete, options.signal, async (signal) => {
      const pod = await this.readOwned('Pod', ref, signal);
      if (pod) {
        // Before the call: the informer may see the deletion before the answer arrives.
        this.ownDeletions.add(ref.name);
        await this.call('delete', 'pods', signal, (o) =>
          this.core.deleteNamespacedPod({ namespace, name: ref.name, body: { preconditions: { uid: pod.uid } } }, o),
        ).catch((err: unknown) => {
          // 409: a different pod of that name now (replaced meanwhile); its fate is not ours to hide.
          if (statusCodeOf(err) === 409) this.ownDeletions.forget(ref.name);
          ignoreGone(err);
        });
      }
      const secret = await this.readOwned('Secret', ref, signal);
      if (secret) {
        await this.call('delete', 'secrets', signal, (o) =>
          this.core.deleteNamespacedSecret(
            { namespace, name: secretNameFor(ref), body: { preconditions: { uid: secret.uid } } },
            o,
          ),
        ).catch(ignoreGone);
      }
    });
  }

  async listManaged(filter: { pool?: string } = {}, options: RuntimeCallOptions = {}): Promise<ManagedWorker[]> {
    const { namespace } = this;
    const pool = parsePoolFilter(filter.pool);
    const labelSelector = pool ? `${managedBySelector},${corralLabels.pool}=${pool}` : managedBySelector;
    const [pods, secrets] = await this.bounded(
      'list managed pods and secrets',
      this.settings.budgets.listManaged,
      options.signal,
      (signal) =>
        Promise.all([
          this.call('list', 'pods', signal, (o) => this.core.listNamespacedPod({ namespace, labelSelector }, o)),
          this.call('list', 'secrets', signal, (o) => this.core.listNamespacedSecret({ namespace, labelSelector }, o)),
        ]),
    );
    const workers = new Map<string, ManagedWorker>();
    const entry = (name: string, labels: Record<string, string>, epoch: string | undefined): ManagedWorker => {
      const known = workers.get(name);
      if (known) return known;
      const worker: ManagedWorker = {
        name,
        workerId: labels[corralLabels.workerId] ?? '',
        pool: labels[corralLabels.pool] ?? '',
        spawnAttempt: Number(labels[corralLabels.spawnAttempt] ?? 0),
        epoch: epoch === undefined ? undefined : Number(epoch),
        hasPod: false,
        hasSecret: false,
        verdict: undefined,
      };
      workers.set(name, worker);
      return worker;
    };
    for (const pod of pods.items as V1Pod[]) {
      const name = pod.metadata?.name ?? '';
      const worker = entry(name, pod.metadata?.labels ?? {}, pod.metadata?.annotations?.[corralAnnotations.epoch]);
      worker.hasPod = true;
      const verdict = classifyPodFailure(pod, {
        now: new Date(),
        notScheduledGraceMs: this.settings.notScheduledGraceMs,
      });
      worker.verdict =
        verdict.status === 'failed' ? { status: 'failed', reason: verdict.reason } : { status: verdict.status };
    }
    for (const secret of secrets.items) {
      const name = (secret.metadata?.name ?? '').replace(/-credentials$/, '');
      const worker = entry(
        name,
        secret.metadata?.labels ?? {},
        secret.metadata?.annotations?.[corralAnnotations.epoch],
      );
      worker.hasSecret = true;
    }
    return [...workers.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  watchHealth(options: PodHealthWatchOptions): PodHealthWatch {
    return watchPodHealth(this.podInformer(), this.ownDeletions, options);
  }

  async close(): Promise<void> {
    // Readiness waits still pending reject ("closed"); client-node keeps no pooled state corral owns.
    await this.informer?.close();
  }
}

/** The epoch and credential version a secret's annotations say it holds; undefined if it says none. */
function storedStamp(annotations: Record<string, string> | undefined): CredentialStamp | undefined {
  const epoch = Number(annotations?.[corralAnnotations.epoch]);
  const version = Number(annotations?.[corralAnnotations.credentialVersion]);
  if (!Number.isSafeInteger(epoch) || !Number.isSafeInteger(version)) return undefined;
  return { epoch, version };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
