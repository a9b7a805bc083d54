import type { Command } from 'commander';

export function registerClaimCommands(program: Command): void {
  void program;
}
