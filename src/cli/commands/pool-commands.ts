import type { Command } from 'commander';

export function registerPoolCommands(program: Command): void {
  void program;
}
