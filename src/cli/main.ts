// The `corral` command. Sub-commands are thin: they parse and validate, then call the modules
// that do the work, so the same behaviour is reachable from tests and the TypeScript client.
// Exit codes: 0 success, 1 operational failure, 2 bad usage; one sentence per error, the stack
// trace only with --debug.
import { CommanderError } from 'commander';
import { describeCliError, exitCodeFor, ReportedFailure } from './cli-errors';
import { buildProgram } from './program';

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
  // On success the process ends by itself once the command closed its connections (dev and
  // worker keep running); on failure, exit now rather than wait on a half-closed connection.
  if (code !== 0) process.exit(code);
});
