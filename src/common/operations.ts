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

/**
 * `api`: a claim, release or failed hand-over decided by the corral API for its caller;
 * `reclaimer`: an unacknowledged claim taken back (both in decision 0012).
 */
export const transitionOrigins = [
  'lifecycle_workflow',
  'pool_workflow',
  'janitor',
  'client',
  'operator',
  'api',
  'reclaimer',
] as const;
export type TransitionOrigin = (typeof transitionOrigins)[number];

/**
 * The epoch moves on every change of holder (claim, release, credential refresh of a worker
 * corral holds) and on any terminal decision taken by someone other than the worker's own
 * workflow, so whoever held the old epoch fails closed from then on.
 *
 * A refresh during a claim rotates the material in place at the tenant's epoch: the holder has
 * not changed, and moving the epoch under it would make the tenant's lease stale without the
 * tenant doing anything (docs/decisions/0005-worker-lifecycle-workflow.md).
 */
export function bumpsEpoch(operation: LifecycleOperation, origin: TransitionOrigin, to: WorkerState): boolean {
  if (operation === 'claim' || operation === 'release') return true;
  if (operation === 'refresh_credentials') return to !== 'claimed';
  return origin !== 'lifecycle_workflow' && (to === 'retired' || to === 'lost');
}
