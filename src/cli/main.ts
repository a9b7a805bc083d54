// The `corral` command. Sub-commands are thin: they parse and validate, then call the modules
// that do the work, so the same behaviour is reachable from tests and the TypeScript client.
// Exit codes: 0 success, 1 operational failure, 2 bad usage; one sentence per error, the stack
// trace only with --debug.
import { Command, CommanderError } from 'commander';
import { describeCliError, exitCodeFor, ReportedFailure } from './cli-errors';
import { registerClaimCommands } from './commands/claim-commands';
import { registerDevCommand } from './commands/dev-command';
import { registerDoctorCommand } from './commands/doctor-command';
import { registerHistoryCommand } from './commands/history-command';
import { registerMigrateCommand } from './commands/migrate-command';
import { registerPoolCommands } from './commands/pool-commands';
import { registerWorkerCommand } from './commands/worker-command';
import { registerWorkersCommands } from './commands/workers-commands';

export function buildProgram(): Command {
  const program = new Command('corral')
    .description('Warm, fenced pools of worker pods for a multi-tenant control plane, on Temporal.')
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

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    // Commander already printed its own message (usage errors, --help, --version).
    if (!(err instanceof CommanderError) && !(err instanceof ReportedFailure)) {
      console.error(`corral: ${describeCliError(err)}`);
    }
    if (debug && err instanceof Error && !(err instanceof CommanderError)) console.error(err.stack);
    return exitCodeFor(err);
  }
}

void main(process.argv).then((code) => {
  // Long-running commands (dev, worker) own their exit; the rest end here, flushing stdout first.
  if (process.exitCode === undefined || code !== 0) process.exitCode = code;
  if (code !== 0) process.exit(code);
});
