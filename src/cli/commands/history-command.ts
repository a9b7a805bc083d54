// `corral history <workerId>`: the registry's audit trail of one worker as a timeline — when,
// which move, the epoch it left behind, who made it, and why.
import type { Command } from 'commander';
import type { TransitionRecord } from '../../registry/lifecycle-store';
import { withCorralClient } from '../client-session';
import { formatTable, printJson } from '../output';

export function registerHistoryCommand(program: Command): void {
  program
    .command('history')
    .description("a worker's audit trail from the registry, oldest first")
    .argument('<workerId>', 'the worker (see corral workers list)')
    .action(async (workerId: string, _opts: unknown, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        const worker = await client.workers.getWorker(workerId);
        if (!worker) throw new Error(`no worker ${workerId} in the registry`);
        const trail = await client.workers.history(workerId);
        if (json) {
          return printJson({
            workerId,
            pool: worker.pool,
            state: worker.state,
            epoch: worker.epoch,
            transitions: trail.map((t) => ({ ...t, at: t.at.toISOString() })),
          });
        }
        console.log(`worker ${workerId} (pool ${worker.pool}): ${worker.state} at epoch ${worker.epoch}`);
        console.log(formatTimeline(trail));
      });
    });
}

export function formatTimeline(trail: TransitionRecord[]): string {
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
