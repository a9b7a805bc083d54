// What commands print: a table or key/value block for people, one JSON document for scripts
// (`--json`). Commands build plain rows; this module decides the shape.
import Table from 'cli-table3';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A borderless table, like kubectl's: header row, then one row per item. */
export function formatTable(head: string[], rows: (string | number | null | undefined)[][]): string {
  const table = new Table({
    head,
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const row of rows) table.push(row.map((cell) => (cell === null || cell === undefined ? '-' : String(cell))));
  return table.toString().replace(/[ \t]+$/gm, '');
}

/** `key: value` lines with the values aligned. */
export function formatFields(fields: [string, string | number | null | undefined][]): string {
  const width = Math.max(...fields.map(([key]) => key.length)) + 1;
  return fields.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value ?? '-'}`).join('\n');
}

/** "3m ago", "2h ago" for a past moment, from now. */
export function formatAge(at: Date, now = new Date()): string {
  const seconds = Math.max(0, Math.round((now.getTime() - at.getTime()) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** The command as the user invoked it (`./bin/corral` from a clone), for hints they can paste. */
export function commandName(): string {
  const invoked = process.env.CORRAL_COMMAND_NAME;
  // npm's .bin shims and absolute paths read badly; `corral` is what an installed CLI is called.
  if (!invoked || invoked.includes('node_modules') || invoked.startsWith('/')) return 'corral';
  return invoked;
}
