// `corral pool apply|list|describe|scale|drain|delete`.
import { Command } from 'commander';
import fs from 'node:fs';
import { CorralError, isCorralError } from '../../client/errors';
import type { CorralClient } from '../../client/corral-client';
import { UsageError } from '../cli-errors';
import { withCorralClient } from '../client-session';
import { loadYaml } from '../lazy-modules';
import { parseNonNegativeInt, parsePositiveInt } from '../option-parsers';
import { commandName, formatAge, formatFields, formatTable, printJson } from '../output';
import { withProgress } from '../progress';

export function registerPoolCommands(program: Command): void {
  const pool = program.command('pool').description('apply, inspect, scale, drain and delete pools');

  pool
    .command('apply')
    .description('create or update a pool from a YAML (or JSON) PoolSpec; idempotent')
    .requiredOption('-f, --file <pool.yaml>', 'the PoolSpec file ("-" reads stdin)')
    .addHelpText(
      'after',
      '\nExample:\n  corral pool apply -f pool.yaml\n\nFields, defaults and floors: README "Configuration".',
    )
    .action(async (opts: { file: string }, command: Command) => {
      const spec = readPoolFile(opts.file);
      await withCorralClient(command, async (client, { json }) => {
        let applied;
        try {
          applied = await client.applyPool(spec);
        } catch (err) {
          if (isCorralError(err) && err.code === 'invalid_request') {
            throw new UsageError(`${opts.file}: ${err.message}`);
          }
          throw err;
        }
        const { pool: record, created, changed } = applied;
        if (json) return printJson({ pool: record.name, generation: record.generation, created, changed });
        const verb = created ? 'created' : changed ? 'updated' : 'unchanged';
        console.log(`pool ${record.name} ${verb} (generation ${record.generation})`);
      });
    });

  pool
    .command('list')
    .description('every pool with its status, breaker and worker counts')
    .action(async (_opts: unknown, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        const pools = await client.listPools();
        if (json) {
          return printJson(
            pools.map((p) => ({
              name: p.name,
              status: p.status,
              generation: p.generation,
              breaker: p.breakerState,
              minIdle: p.spec.minIdle,
              maxWorkers: p.spec.maxWorkers,
              runtime: p.spec.runtime,
              workers: p.counts,
            })),
          );
        }
        if (pools.length === 0)
          return console.log(`no pools yet; create one with: ${commandName()} pool apply -f pool.yaml`);
        console.log(
          formatTable(
            [
              'NAME',
              'STATUS',
              'GEN',
              'BREAKER',
              'IDLE',
              'CLAIMED',
              'HOT-IDLE',
              'STARTING',
              'MIN-IDLE',
              'MAX',
              'RUNTIME',
            ],
            pools.map((p) => [
              p.name,
              p.status,
              p.generation,
              p.breakerState,
              p.counts.idle ?? 0,
              p.counts.claimed ?? 0,
              p.counts.hot_idle ?? 0,
              (p.counts.spawning ?? 0) + (p.counts.activating ?? 0),
              p.spec.minIdle,
              p.spec.maxWorkers,
              p.spec.runtime,
            ]),
          ),
        );
      });
    });

  pool
    .command('describe')
    .description("one pool's spec, status, breaker, workers and its workflow's view")
    .argument('<name>', 'the pool')
    .action(async (name: string, _opts: unknown, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        const { pool: p, workflow, templateGeneration, generations } = await client.describePool(name);
        if (json) return printJson({ pool: p, workers: p.counts, templateGeneration, generations, workflow });
        const s = p.spec;
        console.log(
          formatFields([
            ['Name', p.name],
            ['Status', p.status],
            ['Generation', `${p.generation} (updated ${formatAge(new Date(p.updatedAt))} ago)`],
            ['Runtime', s.runtime],
            ['Image', s.image],
            ['Min idle', s.minIdle],
            ['Max workers', s.maxWorkers],
            ['When full', s.onFull === 'reject' ? 'reject (at_capacity at once)' : 'wait in the fair queue'],
            ['Per tenant', describeTenantQuota(s.maxPerTenant, s.tenantQuotas)],
            ['Refill', `${s.refillPerMinute}/min`],
            ['Release policy', s.releasePolicy],
            ['Spawn breaker', describeBreaker(p.breakerState, workflow)],
            ['Workers', describeCounts(p.counts)],
            ['Generations', describeGenerations(templateGeneration, generations)],
            ['Pending spawns', workflow ? workflow.pendingSpawns.length : '-'],
            [
              'Totals',
              workflow
                ? `${workflow.totals.spawnsStarted} spawns started, ${workflow.totals.spawnsSucceeded} succeeded, ${workflow.totals.spawnsFailed} failed; breaker opened ${workflow.totals.breakerOpened} time(s)`
                : 'pool workflow not running',
            ],
          ]),
        );
      });
    });

  pool
    .command('scale')
    .description(
      "show a pool's warm capacity, or change its minIdle, maxWorkers or (demand mode) maxIdle; the pool refills or retires idle workers",
    )
    .argument('<name>', 'the pool')
    .option('--min-idle <n>', 'warm workers to keep idle', parseNonNegativeInt)
    .option('--max-workers <n>', 'upper bound on live workers', parsePositiveInt)
    .option('--max-idle <n>', 'demand mode: the most idle workers demand may ask for', parseNonNegativeInt)
    .addHelpText(
      'after',
      '\nExamples:\n  corral pool scale demo              (show)\n  corral pool scale demo --min-idle 5',
    )
    .action(
      async (name: string, opts: { minIdle?: number; maxWorkers?: number; maxIdle?: number }, command: Command) => {
        await withCorralClient(command, async (client, { json }) => {
          if (opts.minIdle === undefined && opts.maxWorkers === undefined && opts.maxIdle === undefined) {
            const scale = await client.poolScale(name);
            if (json) return printJson(scale);
            console.log(
              `pool ${name} (${scale.mode}): keeps ${scale.effectiveTarget} idle (minIdle ${scale.minIdle}, maxIdle ${scale.maxIdle}, ` +
                `headroom ${scale.headroom}); ${scale.claimsPerMinute} claims/min, lead ${scale.leadSeconds} s (reaction ${scale.reactionSeconds} + spawn ${scale.spawnSeconds}); ` +
                `${scale.idle} idle of ${scale.live} live (max ${scale.maxWorkers}), ${scale.waiting} waiting`,
            );
            return;
          }
          const current = await requirePool(client, name);
          const warmCapacity = current.spec.warmCapacity ?? { mode: 'static' as const };
          const spec = {
            ...current.spec,
            minIdle: opts.minIdle ?? current.spec.minIdle,
            maxWorkers: opts.maxWorkers ?? current.spec.maxWorkers,
            warmCapacity: opts.maxIdle === undefined ? warmCapacity : { ...warmCapacity, maxIdle: opts.maxIdle },
          };
          let applied;
          try {
            applied = await client.applyPool(spec);
          } catch (err) {
            if (isCorralError(err) && err.code === 'invalid_request') {
              throw new UsageError(`pool scale ${name}: ${err.message}`);
            }
            throw err;
          }
          if (json)
            return printJson({
              pool: name,
              generation: applied.pool.generation,
              minIdle: spec.minIdle,
              maxWorkers: spec.maxWorkers,
            });
          console.log(
            `pool ${name} scaled: minIdle ${current.spec.minIdle} → ${spec.minIdle}, maxWorkers ${current.spec.maxWorkers} → ${spec.maxWorkers} (generation ${applied.pool.generation})`,
          );
        });
      },
    );

  pool
    .command('drain')
    .description('stop new claims and retire every worker (claimed ones after release or their drain timeout)')
    .argument('<name>', 'the pool')
    .option('--wait', 'wait until every worker has retired')
    .action(async (name: string, opts: { wait?: boolean }, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        await client.drainPool(name);
        if (opts.wait) {
          await withProgress(`draining pool ${name}`, () => client.waitForDrained(name), { json });
        }
        const record = await requirePool(client, name);
        if (json) return printJson({ pool: name, status: record.status });
        console.log(
          record.status === 'drained'
            ? `pool ${name} drained`
            : `pool ${name} draining: new claims are refused; follow with ${commandName()} pool describe ${name}`,
        );
      });
    });

  pool
    .command('delete')
    .description('drain a pool, wait for it, then forget it (worker history is kept)')
    .argument('<name>', 'the pool')
    .action(async (name: string, _opts: unknown, command: Command) => {
      await withCorralClient(command, async (client, { json }) => {
        await requirePool(client, name);
        await withProgress(`deleting pool ${name} (drain first)`, () => client.deletePool(name), { json });
        if (json) return printJson({ pool: name, deleted: true });
        console.log(`pool ${name} deleted`);
      });
    });
}

/** Reads and parses a pool file; any problem is bad usage naming the file (and line). */
export function readPoolFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new UsageError(`${file}: cannot read the file${code ? ` (${code})` : ''}`);
  }
  const doc = loadYaml().parseDocument(text);
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    // prettyErrors (the default) appends " at line L, column C:" and a code excerpt; keep line one.
    const message = first.message.split('\n')[0]!.replace(/:$/, '');
    throw new UsageError(`${file}: not valid YAML: ${message}`);
  }
  const value: unknown = doc.toJS();
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${file}: expected a PoolSpec mapping (name, runtime, image, minIdle, maxWorkers, …)`);
  }
  return value;
}

async function requirePool(client: CorralClient, name: string) {
  const record = await client.getPool(name);
  if (!record) throw new CorralError('pool_not_found', `no pool named ${name}`);
  return record;
}

function describeBreaker(state: string, workflow: { breaker: { consecutiveFailures?: number } } | null): string {
  const failures = workflow?.breaker.consecutiveFailures;
  return failures === undefined ? state : `${state} (${failures} consecutive spawn failure(s))`;
}

function describeTenantQuota(maxPerTenant: number | undefined, overrides: Record<string, number> | undefined): string {
  const base = maxPerTenant === undefined ? 'no limit' : `at most ${maxPerTenant}`;
  const count = Object.keys(overrides ?? {}).length;
  return count === 0 ? base : `${base} (${count} tenant override${count === 1 ? '' : 's'})`;
}

function describeGenerations(
  current: number,
  generations: { generation: number | null; current: boolean; counts: Record<string, number> }[],
): string {
  if (generations.length === 0) return `template ${current}: no workers`;
  return generations
    .map(
      (g) =>
        `${g.generation === null ? 'starting' : `template ${g.generation}${g.current ? ' (current)' : ''}`}: ${describeCounts(g.counts)}`,
    )
    .join('; ');
}

function describeCounts(counts: Partial<Record<string, number>>): string {
  const parts = Object.entries(counts).map(([state, n]) => `${n} ${state}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}
