// Why a worker changed state, and who decided it: the `operation` and `origin` of every
// registry transition, its audit row and its metrics labels. Typed constants only, so metric
// label values stay a small closed set.
import type { WorkerState } from './states';

export const lifecycleOperations = [
  'create',
  'respawn',
  'activate',
  'ready',
  'claim',
  'release',
  'refresh_credentials',
  'drain',
  'retire',
  'mark_lost',
  'reap',
] as const;
export type LifecycleOperation = (typeof lifecycleOperations)[number];

export const transitionOrigins = ['lifecycle_workflow', 'pool_workflow', 'janitor', 'client', 'operator'] as const;
export type TransitionOrigin = (typeof transitionOrigins)[number];

/**
 * The epoch moves on every change of holder (claim, release, credential refresh) and on any
 * terminal decision taken by someone other than the worker's own workflow, so whoever held the
 * old epoch fails closed from then on.
 */
export function bumpsEpoch(operation: LifecycleOperation, origin: TransitionOrigin, to: WorkerState): boolean {
  if (operation === 'claim' || operation === 'release' || operation === 'refresh_credentials') return true;
  return origin !== 'lifecycle_workflow' && (to === 'retired' || to === 'lost');
}
