// `corral doctor` run as a deploy's ServiceAccount against the test cluster, and small helpers for
// reading RBAC back: shared by the kustomize (deploy-kubernetes) and Helm (helm-chart) tests.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { repoRoot } from '../../src/embedded/tools';
import { timeoutOptions } from '../../src/runtime/kubernetes/api-call';
import { kubeConfigFor, type KubeEndpoint } from './kube';

const apiTimeoutMs = 10_000;

/** client-node returns class instances; deepEqual compares prototypes too. */
export const plain = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/** RBAC rules in a comparable order (rules by resources, verbs sorted). */
export const sortedRules = (rules: { apiGroups?: string[]; resources?: string[]; verbs: string[] }[]) =>
  rules
    .map((r) => ({ apiGroups: r.apiGroups ?? [], resources: r.resources ?? [], verbs: [...r.verbs].sort() }))
    .sort((a, b) => a.resources.join().localeCompare(b.resources.join()));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface DoctorOptions {
  /** A kubeconfig file authenticating as the identity to check. */
  kubeconfigFile: string;
  /** The namespace whose RBAC doctor checks (the deploy's workers namespace). */
  workersNamespace: string;
  /** An empty state dir: no .corral/endpoints.json from a `make start` in this checkout. */
  stateDir: string;
  json: boolean;
}

/** `bin/corral doctor` for the kubernetes runtime, as whoever `kubeconfigFile` authenticates. */
export function runDoctor(opts: DoctorOptions): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: opts.kubeconfigFile, CORRAL_STATE_DIR: opts.stateDir };
  // Without a registry or Temporal configured, doctor checks only the RBAC.
  for (const name of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'DATABASE_URL', 'CORRAL_RUNTIME']) delete env[name];
  const args = [
    'doctor',
    '--runtime',
    'kubernetes',
    '--kube-namespace',
    opts.workersNamespace,
    ...(opts.json ? ['--json'] : []),
  ];
  return new Promise((resolve, reject) => {
    execFile(
      path.join(repoRoot, 'bin', 'corral'),
      args,
      { env, timeout: 60_000, encoding: 'utf8', maxBuffer: 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          reject(new Error(`corral ${args.join(' ')}: ${err.message} (signal ${err.signal ?? '-'})\n${stderr}`));
          return;
        }
        resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
      },
    );
  });
}

export interface DoctorJson {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
}

export function parseDoctorJson(result: CliResult): DoctorJson {
  try {
    return JSON.parse(result.stdout) as DoctorJson;
  } catch {
    throw new Error(`doctor printed no JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

/** A kubeconfig file in `dir` that authenticates as `namespace/serviceAccount` (TokenRequest token). */
export async function serviceAccountKubeconfigFile(opts: {
  endpoint: KubeEndpoint;
  admin: KubeConfig;
  namespace: string;
  serviceAccount: string;
  dir: string;
}): Promise<string> {
  const { endpoint, admin, namespace, serviceAccount, dir } = opts;
  const core = admin.makeApiClient(CoreV1Api);
  const request = await core.createNamespacedServiceAccountToken(
    { namespace, name: serviceAccount, body: { spec: { audiences: [], expirationSeconds: 3600 } } },
    timeoutOptions(apiTimeoutMs),
  );
  const token = request.status?.token;
  assert.ok(token, `the apiserver issued a token for ${namespace}/${serviceAccount}`);
  const file = path.join(dir, `${namespace}.${serviceAccount}.kubeconfig`);
  fs.writeFileSync(file, kubeConfigFor(endpoint, token).exportConfig(), { mode: 0o600 });
  return file;
}
