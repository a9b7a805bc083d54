// One CorralClient per CLI invocation: a client of the corral API (no registry credentials).
import type { Command } from 'commander';
import { CorralClient } from '../client/corral-client';
import { resolveApiEndpoint } from './endpoints';

export interface GlobalOptions {
  json?: boolean;
  debug?: boolean;
}

export async function withCorralClient<T>(
  command: Command,
  work: (client: CorralClient, globals: GlobalOptions) => Promise<T>,
): Promise<T> {
  const globals = command.optsWithGlobals<GlobalOptions>();
  const client = new CorralClient(resolveApiEndpoint());
  return work(client, globals);
}
