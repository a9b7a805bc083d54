// `corral history <workerId>`: the registry's audit trail of one worker as a timeline — when,
// which move, the epoch it left behind, who made it, and why. A worker that ended longer ago than
// the retention period has no trail left: the API answers `not_found` saying so, and the CLI
// prints that sentence (exit 1).
import type { Command } from 'commander';
import type { TransitionResponse } from '../../client/corral-client';
import { withCorralClient } from '../client-session';
import { formatTable, printJson } from '../output';

export function registerHistoryCommand(program: Command): void {
  program
    .command('history')
    .description(
      "a worker's audit trail from the registry, oldest first (kept until the retention period after it ends)",
    )
    .argument('<workerId>', 'the worker (see corral workers list)')
    .action(async (workerId: string, _opts: unknown, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        const { worker, transitions } = await client.history(workerId);
        const trail = transitions.map((t) => ({ ...t, at: new Date(t.at) }));
        if (json) {
          return printJson({ workerId, pool: worker.pool, state: worker.state, epoch: worker.epoch, transitions });
        }
        console.log(`worker ${workerId} (pool ${worker.pool}): ${worker.state} at epoch ${worker.epoch}`);
        console.log(formatTimeline(trail));
      });
    });
}

export function formatTimeline(trail: (Omit<TransitionResponse, 'at'> & { at: Date })[]): string {
  const start = trail[0]?.at.getTime() ?? 0;
  return formatTable(
    ['TIME', 'SINCE START', 'TRANSITION', 'EPOCH', 'OPERATION', 'BY', 'DETAIL'],
    trail.map((t) => [
      t.at.toISOString().replace('T', ' ').replace('Z', ''),
      `+${((t.at.getTime() - start) / 1000).toFixed(1)}s`,
      `${t.fromState ?? '(new)'} → ${t.toState}`,
      t.epochBefore === null || t.epochBefore === t.epochAfter ? t.epochAfter : `${t.epochBefore} → ${t.epochAfter}`,
      t.operation,
      t.origin.replace(/_/g, ' '),
      [t.tenant ? `tenant ${t.tenant}` : '', t.failureReason ? `reason ${t.failureReason}` : '']
        .filter(Boolean)
        .join(', ') || null,
    ]),
  );
}
