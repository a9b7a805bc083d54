// `corral workers list`: the registry's view of workers, newest state first per pool.
import type { Command } from 'commander';
import { nonTerminalStates, workerStates, type WorkerState } from '../../common/states';
import { UsageError } from '../cli-errors';
import { withCorralClient } from '../client-session';
import { parsePositiveInt } from '../option-parsers';
import { formatAge, formatTable, printJson } from '../output';

export function registerWorkersCommands(program: Command): void {
  const workers = program.command('workers').description('inspect workers');
  workers
    .command('list')
    .description('workers with their state, epoch, tenant and endpoint (live ones unless --state or --all)')
    .option('--pool <name>', 'only this pool')
    .option('--state <state>', `only this state (${workerStates.join(', ')}); repeat or comma-separate`, collectStates)
    .option('--all', 'include retired and lost workers')
    .option('--limit <n>', 'at most this many rows (up to 10000)', parsePositiveInt, 500)
    .action(async (opts: { pool?: string; state?: WorkerState[]; all?: boolean; limit: number }, command: Command) => {
      if (opts.limit > 10_000) {
        throw new UsageError('--limit: must be a whole number from 1 to 10000');
      }
      const states = opts.state ?? (opts.all ? undefined : [...nonTerminalStates]);
      await withCorralClient(command, async (client, { json }) => {
        const rows = await client.listWorkers({ pool: opts.pool, states, limit: opts.limit });
        if (json) {
          return printJson(
            rows.map((w) => ({
              workerId: w.id,
              pool: w.pool,
              state: w.state,
              epoch: w.epoch,
              tenant: w.tenant,
              endpoint: w.endpoint,
              failureReason: w.failureReason,
              stateSince: w.stateSince,
              createdAt: w.createdAt,
            })),
          );
        }
        if (rows.length === 0) return console.log('no workers match');
        const now = new Date();
        console.log(
          formatTable(
            ['WORKER', 'POOL', 'STATE', 'EPOCH', 'TENANT', 'ENDPOINT', 'IN STATE', 'REASON'],
            rows.map((w) => [
              w.id,
              w.pool,
              w.state,
              w.epoch,
              w.tenant,
              w.endpoint,
              formatAge(new Date(w.stateSince), now),
              w.failureReason,
            ]),
          ),
        );
      });
    });
}

function collectStates(value: string, previous: WorkerState[] | undefined): WorkerState[] {
  const states = value.split(',').map((s) => s.trim());
  for (const state of states) {
    if (!(workerStates as readonly string[]).includes(state)) {
      throw new UsageError(`--state: unknown state "${state}"; expected one of ${workerStates.join(', ')}`);
    }
  }
  return [...(previous ?? []), ...(states as WorkerState[])];
}
