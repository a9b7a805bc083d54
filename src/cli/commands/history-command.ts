import type { Command } from 'commander';

export function registerHistoryCommand(program: Command): void {
  void program;
}
