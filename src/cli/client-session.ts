// One CorralClient per CLI invocation, always closed, so a command's process ends by itself.
import type { Command } from 'commander';
import { CorralClient } from '../client/corral-client';
import { resolveEndpoints } from './endpoints';

export interface GlobalOptions {
  json?: boolean;
  debug?: boolean;
}

export async function withCorralClient<T>(
  command: Command,
  work: (client: CorralClient, globals: GlobalOptions) => Promise<T>,
): Promise<T> {
  const globals = command.optsWithGlobals<GlobalOptions>();
  const client = await CorralClient.connect(resolveEndpoints({}));
  try {
    return await work(client, globals);
  } finally {
    await client.close();
  }
}
