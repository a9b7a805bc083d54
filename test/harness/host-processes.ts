// Reading the host's processes and mounts through /proc, for the cluster tier's harnesses
// (test/harness/real-node.ts, test/harness/docker-engine.ts), which tear down what they started
// by pid and undo the mounts under their directories.
import fs from 'node:fs';

/** Whether `pid` runs: a zombie has exited (its parent has not reaped it yet), so it does not. */
export function isAlive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A process's command line, arguments joined by spaces ('' when it is gone). */
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** Mount points at or under `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' ') ?? '')
    .filter((mount) => mount === dir || mount.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}
