// `corral migrate`: the registry schema, also applied at every `corral worker` start.
import type { Command } from 'commander';
import { requiredEnv } from '../endpoints';
import { loadMigrate } from '../lazy-modules';
import { printJson } from '../output';

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply registry schema migrations to DATABASE_URL (also done at worker start)')
    .action(async (_opts: unknown, command: Command) => {
      const { json } = command.optsWithGlobals<{ json?: boolean }>();
      const { applied } = await loadMigrate().migrateRegistry(requiredEnv('DATABASE_URL'));
      if (json) printJson({ applied });
      else console.log(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'schema up to date');
    });
}
