// Builds the configured PodRuntime. The runtime is chosen by configuration, so an unknown name
// is an input error naming the field, raised before anything is contacted.
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { firstIssue } from '../config/first-issue';
import { RuntimeInputError } from './errors';
import { KubernetesPodRuntime } from './kubernetes/kubernetes-runtime';
import { runtimeKinds } from '../common';
import type { PodRuntime } from './pod-runtime';
import { ProcessPodRuntime } from './process/process-runtime';

const processRuntimeConfig = z.strictObject({
  runtime: z.literal('process'),
  stateDir: z.string().min(1, 'must not be empty'),
  workDir: z.string().min(1).optional(),
});

const kubernetesRuntimeConfig = z.strictObject({
  runtime: z.literal('kubernetes'),
  namespace: z.string().min(1, 'must not be empty'),
  /** A kubeconfig file; without it, in-cluster config or $KUBECONFIG (client-node's loadFromDefault). */
  kubeconfigPath: z.string().min(1).optional(),
  context: z.string().min(1).optional(),
  unreachableAfterMs: z.number().int().min(1_000).optional(),
  notScheduledGraceMs: z.number().int().min(0).optional(),
});

export const podRuntimeConfigSchema = z.discriminatedUnion('runtime', [processRuntimeConfig, kubernetesRuntimeConfig]);
export type PodRuntimeConfig = z.input<typeof podRuntimeConfigSchema>;

export function parsePodRuntimeConfig(input: unknown): z.output<typeof podRuntimeConfigSchema> {
  const runtime = (input as { runtime?: unknown } | null)?.runtime;
  if (typeof runtime !== 'string' || !(runtimeKinds as readonly string[]).includes(runtime)) {
    throw new RuntimeInputError(
      'runtime',
      `unknown runtime ${JSON.stringify(runtime)}; expected one of ${runtimeKinds.join(', ')}`,
    );
  }
  const result = podRuntimeConfigSchema.safeParse(input);
  if (!result.success) {
    const { field, message } = firstIssue(result.error);
    throw new RuntimeInputError(field, message);
  }
  return result.data;
}

/** Printed once per process, the first time a process runtime is created. */
export const processRuntimeWarning =
  'corral: the process runtime isolates nothing between workers (same user, same network, same files); ' +
  'use the kubernetes runtime for tenants you do not trust';
let processRuntimeWarned = false;

/** `kubeConfig` overrides the file/in-cluster lookup (tests, embedding). */
export function createPodRuntime(input: unknown, overrides: { kubeConfig?: KubeConfig } = {}): PodRuntime {
  const config = parsePodRuntimeConfig(input);
  if (config.runtime === 'process') {
    if (!processRuntimeWarned) {
      processRuntimeWarned = true;
      console.warn(processRuntimeWarning);
    }
    return new ProcessPodRuntime(config);
  }
  let kubeConfig = overrides.kubeConfig;
  if (!kubeConfig) {
    kubeConfig = new KubeConfig();
    if (config.kubeconfigPath) kubeConfig.loadFromFile(config.kubeconfigPath);
    else kubeConfig.loadFromDefault();
    if (config.context) kubeConfig.setCurrentContext(config.context);
  }
  return new KubernetesPodRuntime({
    kubeConfig,
    namespace: config.namespace,
    unreachableAfterMs: config.unreachableAfterMs,
    notScheduledGraceMs: config.notScheduledGraceMs,
  });
}
