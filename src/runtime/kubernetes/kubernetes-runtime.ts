// The Kubernetes PodRuntime: one Pod and one Secret per worker spawn, in one namespace, on
// @kubernetes/client-node. Idempotent by deterministic names. Readiness waits and the health
// watch share one pod informer (one list+watch of the namespace's corral pods), started on first use.
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { classifyPodFailure } from '../classify-pod-failure';
import { RuntimeInputError, WorkerNameConflictError, WorkerPodNotFoundError } from '../errors';
import type {
  AwaitReadyOptions,
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
  isValidImageReference,
  parsePoolFilter,
  parseWorkerCredentials,
  parseWorkerPodRef,
  parseWorkerPodSpec,
  refFor,
  type WorkerCredentials,
  type WorkerPodRef,
  type WorkerPodSpecInput,
} from '../worker-pod-spec';
import { callKubernetes, statusCodeOf, timeoutOptions, type ApiCallContext } from './api-call';
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
}

export const kubernetesRuntimeDefaults = {
  apiTimeoutMs: 10_000,
  retry: { attempts: 3, backoffMs: 200 },
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

  private call<T>(verb: string, resource: string, request: () => Promise<T>): Promise<T> {
    const context: ApiCallContext = { verb, resource, namespace: this.namespace, ...this.settings.retry };
    return callKubernetes(context, request);
  }

  private get requestOptions() {
    return timeoutOptions(this.settings.apiTimeoutMs);
  }

  async create(specInput: WorkerPodSpecInput, credentialsInput: WorkerCredentials): Promise<CreateWorkerResult> {
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

    // The Secret first: the pod mounts it, and a pod without it would sit in ContainerCreating.
    try {
      await this.call('create', 'secrets', () =>
        this.core.createNamespacedSecret({ namespace, body: secretManifest(ref, credentials) }, this.requestOptions),
      );
    } catch (err) {
      if (statusCodeOf(err) !== 409) throw err;
      const existing = await this.call('get', 'secrets', () =>
        this.core.readNamespacedSecret({ namespace, name: secretNameFor(ref) }, this.requestOptions),
      );
      if (!isOursFor(ref, existing.metadata?.labels)) throw new WorkerNameConflictError('Secret', secretNameFor(ref));
      // Adopted: the caller's credentials are the ones it will record, so they win.
      await this.patchSecret(ref, credentials);
    }

    try {
      await this.call('create', 'pods', () =>
        this.core.createNamespacedPod({ namespace, body: podManifest(ref, spec) }, this.requestOptions),
      );
      this.ownDeletions.forget(ref.name);
      return { ref, created: true };
    } catch (err) {
      if (statusCodeOf(err) !== 409) throw err;
      const existing = await this.call('get', 'pods', () =>
        this.core.readNamespacedPod({ namespace, name: ref.name }, this.requestOptions),
      );
      if (!isOursFor(ref, existing.metadata?.labels)) throw new WorkerNameConflictError('Pod', ref.name);
      return { ref, created: false };
    }
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

  private async patchSecret(ref: WorkerPodRef, credentials: WorkerCredentials): Promise<V1Secret> {
    const body = {
      metadata: {
        annotations: {
          [corralAnnotations.epoch]: String(credentials.epoch),
          [corralAnnotations.credentialVersion]: String(credentials.version),
        },
      },
      stringData: { [credentialsFileName]: credentialsFileContent(credentials, ref.workerId) },
    };
    return this.call('patch', 'secrets', () =>
      this.core.patchNamespacedSecret(
        { namespace: this.namespace, name: secretNameFor(ref), body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch, this.requestOptions),
      ),
    );
  }

  /** Reads a pod or secret and refuses to act on it unless it carries this worker's labels. */
  private async readOwned(kind: 'Pod' | 'Secret', ref: WorkerPodRef): Promise<{ uid: string } | undefined> {
    const { namespace } = this;
    try {
      const object =
        kind === 'Pod'
          ? await this.call('get', 'pods', () =>
              this.core.readNamespacedPod({ namespace, name: ref.name }, this.requestOptions),
            )
          : await this.call('get', 'secrets', () =>
              this.core.readNamespacedSecret({ namespace, name: secretNameFor(ref) }, this.requestOptions),
            );
      const name = kind === 'Pod' ? ref.name : secretNameFor(ref);
      if (!isOursFor(ref, object.metadata?.labels)) throw new WorkerNameConflictError(kind, name);
      return { uid: object.metadata?.uid ?? '' };
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw err;
    }
  }

  async writeCredentials(refInput: WorkerPodRef, credentialsInput: WorkerCredentials): Promise<void> {
    const ref = parseWorkerPodRef(refInput);
    const credentials = parseWorkerCredentials(credentialsInput);
    if (!(await this.readOwned('Secret', ref))) throw new WorkerPodNotFoundError(ref.name);
    try {
      await this.patchSecret(ref, credentials);
      // The pod's epoch annotation is what an operator (and the janitor) sees with kubectl.
      await this.call('patch', 'pods', () =>
        this.core.patchNamespacedPod(
          {
            namespace: this.namespace,
            name: ref.name,
            body: { metadata: { annotations: { [corralAnnotations.epoch]: String(credentials.epoch) } } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch, this.requestOptions),
        ),
      );
    } catch (err) {
      if (statusCodeOf(err) === 404) throw new WorkerPodNotFoundError(ref.name);
      throw err;
    }
  }

  async delete(refInput: WorkerPodRef): Promise<void> {
    const ref = parseWorkerPodRef(refInput);
    const { namespace } = this;
    // 404 and 409 (the uid precondition: it was replaced meanwhile) both mean "not ours to delete now".
    const ignoreGone = (err: unknown) => {
      if (statusCodeOf(err) !== 404 && statusCodeOf(err) !== 409) throw err;
    };
    const pod = await this.readOwned('Pod', ref);
    if (pod) {
      // Before the call: the informer may see the deletion before the answer arrives.
      this.ownDeletions.add(ref.name);
      await this.call('delete', 'pods', () =>
        this.core.deleteNamespacedPod(
          { namespace, name: ref.name, body: { preconditions: { uid: pod.uid } } },
          this.requestOptions,
        ),
      ).catch((err: unknown) => {
        // 409: a different pod of that name now (replaced meanwhile); its fate is not ours to hide.
        if (statusCodeOf(err) === 409) this.ownDeletions.forget(ref.name);
        ignoreGone(err);
      });
    }
    const secret = await this.readOwned('Secret', ref);
    if (secret) {
      await this.call('delete', 'secrets', () =>
        this.core.deleteNamespacedSecret(
          { namespace, name: secretNameFor(ref), body: { preconditions: { uid: secret.uid } } },
          this.requestOptions,
        ),
      ).catch(ignoreGone);
    }
  }

  async listManaged(filter: { pool?: string } = {}): Promise<ManagedWorker[]> {
    const { namespace } = this;
    const pool = parsePoolFilter(filter.pool);
    const labelSelector = pool ? `${managedBySelector},${corralLabels.pool}=${pool}` : managedBySelector;
    const [pods, secrets] = await Promise.all([
      this.call('list', 'pods', () => this.core.listNamespacedPod({ namespace, labelSelector }, this.requestOptions)),
      this.call('list', 'secrets', () =>
        this.core.listNamespacedSecret({ namespace, labelSelector }, this.requestOptions),
      ),
    ]);
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

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
