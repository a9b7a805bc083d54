// `corral claim`, `corral release`, `corral lease check`: a tenant's side of a pool, by hand.
import type { Command } from 'commander';
import crypto from 'node:crypto';
import type { LeaseCheck } from '../../client/corral-client';
import { ReportedFailure } from '../cli-errors';
import { withCorralClient } from '../client-session';
import { parseNonNegativeInt } from '../option-parsers';
import { commandName, formatFields, printJson } from '../output';
import { withProgress } from '../progress';

export function registerClaimCommands(program: Command): void {
  program
    .command('claim')
    .description('claim a worker of a pool for a tenant; prints its lease (worker, epoch, endpoint)')
    .argument('<pool>', 'the pool')
    .requiredOption('--tenant <name>', 'who the worker is for')
    .option('--request-id <id>', 'idempotency key: the same id always returns the same lease (default: a new one)')
    .option('--timeout <duration>', 'how long to wait for a worker, e.g. 30s', '60s')
    .addHelpText('after', '\nExample:\n  corral claim demo --tenant acme')
    .action(async (pool: string, opts: { tenant: string; requestId?: string; timeout: string }, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        const requestId = opts.requestId ?? `cli-${crypto.randomUUID()}`;
        const lease = await withProgress(
          `claiming a ${pool} worker for ${opts.tenant}`,
          () => client.claim(pool, { tenant: opts.tenant, requestId, timeout: opts.timeout }),
          { json },
        );
        if (json) return printJson({ ...lease, requestId });
        console.log(
          `claimed ${lease.workerId} for tenant ${lease.tenant} (${lease.path} path` +
            `${lease.waitedMs > 0 ? `, after waiting ${(lease.waitedMs / 1000).toFixed(1)} s in the queue` : ''})`,
        );
        console.log(
          formatFields([
            ['  pool', lease.pool],
            ['  epoch', lease.epoch],
            ['  endpoint', lease.endpoint],
            ['  request id', requestId],
          ]),
        );
        console.log(`release it with: ${commandName()} release ${lease.workerId} --epoch ${lease.epoch}`);
      });
    });

  program
    .command('release')
    .description("give a claimed worker back; the pool's release policy decides what happens to it")
    .argument('<workerId>', 'the worker of the lease')
    .requiredOption('--epoch <n>', 'the epoch of the lease (its fencing token)', parseNonNegativeInt)
    .action(async (workerId: string, opts: { epoch: number }, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        const result = await client.release({ workerId, epoch: opts.epoch });
        if (json) return printJson(result);
        console.log(`released ${workerId}: now ${result.state} at epoch ${result.epoch}`);
      });
    });

  const lease = program.command('lease').description('inspect leases');
  lease
    .command('check')
    .description('is this lease current? exit 0 if valid, 1 if not (stale, not claimed, or no such worker)')
    .argument('<workerId>', 'the worker of the lease')
    .requiredOption('--epoch <n>', 'the epoch of the lease', parseNonNegativeInt)
    .action(async (workerId: string, opts: { epoch: number }, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        const check = await client.checkLease({ workerId, epoch: opts.epoch });
        const sentence = describeLeaseCheck(workerId, opts.epoch, check);
        if (json) {
          printJson({
            workerId,
            epoch: opts.epoch,
            status: check.status,
            ...(check.status === 'valid' ? { tenant: check.tenant, endpoint: check.endpoint } : {}),
            ...(check.status === 'stale_lease' ? { actualEpoch: check.epoch, state: check.state } : {}),
            ...(check.status === 'not_claimed' ? { state: check.state } : {}),
          });
        } else if (check.status === 'valid') console.log(sentence);
        if (check.status !== 'valid') {
          if (!json) console.error(`corral: ${sentence}`);
          throw new ReportedFailure(sentence);
        }
      });
    });
}

function describeLeaseCheck(workerId: string, epoch: number, check: LeaseCheck): string {
  switch (check.status) {
    case 'valid':
      return `valid: ${workerId} is claimed by ${check.tenant ?? '?'} at epoch ${epoch}`;
    case 'stale_lease':
      return `stale lease: ${workerId} is ${check.state} at epoch ${check.epoch}, not ${epoch}`;
    case 'not_claimed':
      return `not claimed: ${workerId} is ${check.state} at epoch ${epoch}`;
    case 'row_missing':
      return `no such worker: ${workerId}`;
  }
}
