// Looks at real processes through /proc, independently of the runtime under test: which
// process groups carry a worker's identity, and what environment a process really got.
import fs from 'node:fs';

function readEnviron(pid: string): Map<string, string> | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
    return new Map(
      raw
        .split('\0')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
    );
  } catch {
    return undefined;
  }
}

function processGroupOf(pid: string): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined; // exited, not yet reaped
    return fields[2]; // field 5: pgrp
  } catch {
    return undefined;
  }
}

/** Distinct live process groups whose members were started with CORRAL_WORKER_ID=<workerId>. */
export function workerProcessGroups(workerId: string): string[] {
  const groups = new Set<string>();
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    if (readEnviron(pid)?.get('CORRAL_WORKER_ID') !== workerId) continue;
    const group = processGroupOf(pid);
    if (group) groups.add(group);
  }
  return [...groups];
}

export function environOf(pid: number): Map<string, string> {
  const env = readEnviron(String(pid));
  if (!env) throw new Error(`process ${pid} is not running`);
  return env;
}

export function isAlive(pid: number): boolean {
  return processGroupOf(String(pid)) !== undefined;
}
