// `corral doctor` for Kubernetes: asks the apiserver, with SelfSubjectAccessReview, whether the
// identity corral runs as may do every verb corral needs in its namespace, and names each gap.
// A missing `watch` would otherwise only show up in production as zombies nobody notices.
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { callKubernetes, timeoutOptions } from './api-call';

/** What corral needs, and why; deploy/ RBAC manifests must grant exactly this. */
export const requiredKubernetesPermissions = [
  { resource: 'pods', verbs: ['create', 'get', 'list', 'watch', 'patch', 'delete'] },
  { resource: 'secrets', verbs: ['create', 'get', 'list', 'patch', 'delete'] },
] as const;

export interface PermissionCheck {
  verb: string;
  resource: string;
  allowed: boolean;
  /** The authorizer's explanation when denied, if it gave one. */
  reason?: string;
}

export interface DoctorReport {
  namespace: string;
  ok: boolean;
  checks: PermissionCheck[];
  /** Each gap as "<verb> <resource>", e.g. "watch pods". */
  missing: string[];
}

export async function checkKubernetesPermissions(
  kubeConfig: KubeConfig,
  namespace: string,
  options: { apiTimeoutMs?: number } = {},
): Promise<DoctorReport> {
  const authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
  const wanted = requiredKubernetesPermissions.flatMap(({ resource, verbs }) =>
    verbs.map((verb) => ({ verb, resource })),
  );
  const checks = await Promise.all(
    wanted.map(async ({ verb, resource }): Promise<PermissionCheck> => {
      const review = await callKubernetes(
        { verb: 'create', resource: 'selfsubjectaccessreviews', namespace, attempts: 3, backoffMs: 200 },
        () =>
          authorization.createSelfSubjectAccessReview(
            { body: { spec: { resourceAttributes: { namespace, verb, resource, group: '' } } } },
            timeoutOptions(options.apiTimeoutMs ?? 10_000),
          ),
      );
      const allowed = review.status?.allowed === true && review.status?.denied !== true;
      const reason = review.status?.reason || review.status?.evaluationError || undefined;
      return allowed ? { verb, resource, allowed } : { verb, resource, allowed, reason };
    }),
  );
  const missing = checks.filter((c) => !c.allowed).map((c) => `${c.verb} ${c.resource}`);
  return { namespace, ok: missing.length === 0, checks, missing };
}

/** One line per gap, for people: what is missing and where. */
export function describeDoctorReport(report: DoctorReport): string {
  if (report.ok) return `ok: corral has every permission it needs in namespace "${report.namespace}"`;
  return [
    `missing ${report.missing.length} permission(s) in namespace "${report.namespace}":`,
    ...report.missing.map((gap) => `  - ${gap}`),
  ].join('\n');
}
