// The worker state machine (docs/architecture.md, "The life of a worker"): one table that the registry
// enforces before any SQL and the workflows consult before acting. Pure data, no I/O, so
// workflow code may import it.

export const workerStates = [
  'spawning',
  'activating',
  'idle',
  'claimed',
  'hot_idle',
  'draining',
  'retired',
  'lost',
] as const;
export type WorkerState = (typeof workerStates)[number];

export const terminalStates: readonly WorkerState[] = ['retired', 'lost'];
export const nonTerminalStates: readonly WorkerState[] = workerStates.filter((s) => !terminalStates.includes(s));

/**
 * Allowed `from → to` moves. Self-loops are real transitions: `spawning → spawning` is a
 * respawn (spawnAttempt + 1), as is `activating → spawning`; `idle/claimed/hot_idle → same` is a
 * credential refresh (epoch + 1 unless claimed).
 * Every non-terminal state may go to `draining`, to `lost` (zombie, crash, failed health) and to
 * `retired` (the janitor reaping a row whose workflow is gone).
 */
export const allowedTransitions: Readonly<Record<WorkerState, readonly WorkerState[]>> = {
  spawning: ['spawning', 'activating', 'draining', 'retired', 'lost'],
  // activating → claimed: a cold-path worker spawned already bound to a claim.
  // activating → spawning: activation failed for a retryable reason; respawn (spawnAttempt + 1).
  activating: ['spawning', 'idle', 'claimed', 'draining', 'retired', 'lost'],
  idle: ['idle', 'claimed', 'draining', 'retired', 'lost'],
  // claimed → idle | hot_idle | draining: the pool's release policy (recycle, hot_idle, retire).
  claimed: ['claimed', 'idle', 'hot_idle', 'draining', 'retired', 'lost'],
  // hot_idle → claimed: same-tenant reuse; → idle: tenant binding dropped at TTL in recycle pools.
  hot_idle: ['hot_idle', 'claimed', 'idle', 'draining', 'retired', 'lost'],
  draining: ['retired', 'lost'],
  retired: [],
  lost: [],
};

export function canTransition(from: WorkerState, to: WorkerState): boolean {
  return allowedTransitions[from].includes(to);
}
