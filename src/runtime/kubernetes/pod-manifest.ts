// The Pod and Secret corral creates for one worker spawn. Secure by default: non-root, no
// service-account token, RuntimeDefault seccomp, no privilege escalation, read-only root, and
// explicit requests and limits so a worker never lands BestEffort.
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { credentialsFileContent, isSecretRef, type WorkerCredentials, type WorkerPodSpec } from '../worker-pod-spec';
import type { WorkerPodRef } from '../../common';

export const corralLabels = {
  managedBy: 'app.kubernetes.io/managed-by',
  pool: 'corral.dev/pool',
  workerId: 'corral.dev/worker-id',
  spawnAttempt: 'corral.dev/spawn-attempt',
} as const;
export const corralAnnotations = {
  epoch: 'corral.dev/epoch',
  credentialVersion: 'corral.dev/credential-version',
} as const;
export const managedBySelector = `${corralLabels.managedBy}=corral`;

/** Where the worker finds its credentials (the protocol's "mounted file"). */
export const credentialsMountPath = '/var/run/corral';
export const credentialsFileName = 'credentials.json';
/** The uid/gid of distroless "nonroot"; the demo worker image runs as it too. */
export const workerUid = 65532;

export const secretNameFor = (ref: WorkerPodRef): string => `${ref.name}-credentials`;

export function labelsFor(ref: WorkerPodRef): Record<string, string> {
  return {
    [corralLabels.managedBy]: 'corral',
    [corralLabels.pool]: ref.pool,
    [corralLabels.workerId]: ref.workerId,
    [corralLabels.spawnAttempt]: String(ref.spawnAttempt),
  };
}

/** True when a pod or secret carries this worker's labels: the test for adopting on a 409. */
export function isOursFor(ref: WorkerPodRef, labels: Record<string, string> | undefined): boolean {
  const expected = labelsFor(ref);
  return Object.entries(expected).every(([key, value]) => labels?.[key] === value);
}

export function secretManifest(ref: WorkerPodRef, credentials: WorkerCredentials): V1Secret {
  return {
    metadata: {
      name: secretNameFor(ref),
      labels: labelsFor(ref),
      annotations: {
        [corralAnnotations.epoch]: String(credentials.epoch),
        [corralAnnotations.credentialVersion]: String(credentials.version),
      },
    },
    type: 'Opaque',
    stringData: { [credentialsFileName]: credentialsFileContent(credentials, ref.workerId) },
  };
}

export function podManifest(ref: WorkerPodRef, spec: WorkerPodSpec): V1Pod {
  const { requests, limits } = spec.resources;
  return {
    metadata: {
      name: ref.name,
      labels: labelsFor(ref),
      annotations: { [corralAnnotations.epoch]: String(spec.epoch) },
    },
    spec: {
      // A crashed worker is replaced by a fresh spawn with a new identity, never restarted in
      // place with a tenant's state half-gone: Never turns a crash into a Failed pod corral sees.
      restartPolicy: 'Never',
      activeDeadlineSeconds: spec.maxLifetimeSeconds,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: workerUid,
        runAsGroup: workerUid,
        fsGroup: workerUid,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: 'worker',
          image: spec.image,
          args: spec.args.length > 0 ? spec.args : undefined,
          ports: [{ name: 'http', containerPort: spec.port, protocol: 'TCP' }],
          env: [
            { name: 'PORT', value: String(spec.port) },
            { name: 'CORRAL_WORKER_ID', value: ref.workerId },
            { name: 'CORRAL_POOL', value: ref.pool },
            { name: 'CORRAL_CREDENTIALS_FILE', value: `${credentialsMountPath}/${credentialsFileName}` },
            // A Secret reference goes to the kubelet as one: corral never reads the Secret (decision 0021).
            ...Object.entries(spec.env).map(([name, value]) =>
              isSecretRef(value)
                ? {
                    name,
                    valueFrom: {
                      secretKeyRef: {
                        name: value.valueFrom.secretKeyRef.name,
                        key: value.valueFrom.secretKeyRef.key,
                        optional: false,
                      },
                    },
                  }
                : { name, value },
            ),
          ],
          // The kubelet probes; corral's pod informer reads the Ready condition it keeps.
          readinessProbe: {
            ...(spec.healthPath === null
              ? { tcpSocket: { port: 'http' } }
              : { httpGet: { path: spec.healthPath, port: 'http' } }),
            periodSeconds: Math.max(1, Math.round(spec.healthIntervalMs / 1000)),
            timeoutSeconds: 1,
            failureThreshold: spec.healthFailureThreshold,
          },
          resources: {
            requests: { cpu: `${requests.cpuMillis}m`, memory: `${requests.memoryMiB}Mi` },
            limits: { cpu: `${limits.cpuMillis}m`, memory: `${limits.memoryMiB}Mi` },
          },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: [{ name: 'credentials', mountPath: credentialsMountPath, readOnly: true }],
        },
      ],
      volumes: [
        {
          name: 'credentials',
          // 0440 + fsGroup: readable by the worker's group only, never world-readable.
          secret: { secretName: secretNameFor(ref), defaultMode: 0o440, optional: false },
        },
      ],
    },
  };
}
