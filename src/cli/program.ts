// The `corral` command tree: every sub-command, its options and help, and the shared error
// output. Built fresh per call so tests can inspect it without running anything.
import { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { registerClaimCommands } from './commands/claim-commands';
import { registerDevCommand } from './commands/dev-command';
import { registerDoctorCommand } from './commands/doctor-command';
import { registerHistoryCommand } from './commands/history-command';
import { registerMigrateCommand } from './commands/migrate-command';
import { registerPoolCommands } from './commands/pool-commands';
import { registerWorkerCommand } from './commands/worker-command';
import { registerWorkersCommands } from './commands/workers-commands';
import { repoRoot } from '../embedded/tools';

/** corral's version, from the package.json of the checkout or installed package this runs from. */
function corralVersion(): string {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version?: string };
    return manifest.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command('corral')
    .description('Warm, fenced pools of worker pods for a multi-tenant control plane, on Temporal.')
    .version(corralVersion(), '-V, --version', 'print the version')
    .option('--json', 'print one JSON document instead of tables (for scripts)')
    .option('--debug', 'print stack traces with errors')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      // Commander's own usage errors arrive as "error: …" plus suggestions; one line, corral's prefix.
      outputError: (message, write) => write(`corral: ${message.replace(/^error: /, '').replace(/\n(?=.)/g, ' ')}`),
    })
    .addHelpText(
      'after',
      '\nConnection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and DATABASE_URL, or the .corral/endpoints.json\n' +
        'that `make start` writes. Exit codes: 0 ok, 1 operational failure, 2 bad usage.',
    );
  registerDevCommand(program);
  registerWorkerCommand(program);
  registerMigrateCommand(program);
  registerDoctorCommand(program);
  registerPoolCommands(program);
  registerWorkersCommands(program);
  registerClaimCommands(program);
  registerHistoryCommand(program);
  // Every sub-command exits through the same handler (exitOverride is not inherited).
  const inherit = (command: Command) => {
    for (const sub of command.commands) {
      sub.exitOverride().configureOutput(program.configureOutput()).showSuggestionAfterError();
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}
