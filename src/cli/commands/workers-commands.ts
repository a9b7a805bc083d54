import type { Command } from 'commander';

export function registerWorkersCommands(program: Command): void {
  void program;
}
