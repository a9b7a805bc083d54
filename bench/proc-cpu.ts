// Where a machine's CPU went between two snapshots, from /proc (Linux): the busy share of all
// cores, and the part used by this process and its descendants, grouped by a classifier. What
// is left is load from processes this bench did not start.
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

interface ProcStat {
  ppid: number;
  comm: string;
  /** utime + stime, in ms. */
  cpuMs: number;
}

/** Clock ticks per second for /proc times (USER_HZ); 100 on every mainstream Linux build. */
const tickMs = 10;

function readProcs(): Map<number, ProcStat> {
  const procs = new Map<number, ProcStat>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const fields = text.slice(close + 2).split(' ');
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    procs.set(Number(entry), {
      ppid: Number(fields[1]),
      comm,
      cpuMs: (Number(fields[11]) + Number(fields[12])) * tickMs,
    });
  }
  return procs;
}

function machineBusyMs(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busy, total };
}

/** Cores used, by group; `other_top` names who else was busy when `other_load` is notable. */
export interface CpuUse {
  machine_busy: number;
  other_load: number;
  other_top?: string[];
  [group: string]: number | string[] | undefined;
}

export interface CpuSnapshot {
  at: number;
  machine: { busy: number; total: number };
  procs: Map<number, ProcStat>;
}

export function cpuSnapshot(): CpuSnapshot {
  return { at: performance.now(), machine: machineBusyMs(), procs: readProcs() };
}

/**
 * Cores used since `start`, by group. `classify` names the group of one of our processes
 * (given its pid, comm and the chain of ancestors up to this process); the rest of the
 * machine's busy time is `other_load` (processes this bench did not start).
 */
export function cpuSince(
  start: CpuSnapshot,
  classify: (pid: number, comm: string, ancestors: number[]) => string,
): CpuUse {
  const end = cpuSnapshot();
  const wallMs = end.at - start.at;
  const cores = os.cpus().length;
  const machineBusy =
    ((end.machine.busy - start.machine.busy) / Math.max(1, end.machine.total - start.machine.total)) * cores;
  const groups: Record<string, number> = {};
  const others: { name: string; ms: number }[] = [];
  for (const [pid, proc] of end.procs) {
    const used = proc.cpuMs - (start.procs.get(pid)?.cpuMs ?? 0);
    const ancestors: number[] = [];
    let at = pid;
    while (at > 1 && at !== process.pid) {
      const parent = end.procs.get(at)?.ppid ?? 0;
      ancestors.push(parent);
      at = parent;
    }
    if (at !== process.pid) {
      if (used > 0) others.push({ name: proc.comm, ms: used });
      continue;
    }
    const group = classify(pid, proc.comm, ancestors);
    groups[group] = (groups[group] ?? 0) + Math.max(0, used);
  }
  const round = (x: number) => Math.round(x * 100) / 100;
  const result: CpuUse = { machine_busy: round(machineBusy), other_load: 0 };
  let ours = 0;
  for (const [group, ms] of Object.entries(groups)) {
    result[group] = round(ms / wallMs);
    ours += ms / wallMs;
  }
  const otherLoad = Math.max(0, machineBusy - ours);
  result.other_load = round(otherLoad);
  if (otherLoad >= 0.1) {
    // Who else was busy (processes that ended meanwhile are not seen; their time is still in other_load).
    const byName = new Map<string, number>();
    for (const { name, ms } of others) byName.set(name, (byName.get(name) ?? 0) + ms);
    const top = [...byName]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .filter(([, ms]) => ms / wallMs >= 0.05)
      .map(([name, ms]) => `${name} ${round(ms / wallMs)}`);
    if (top.length > 0) result.other_top = top;
  }
  return result;
}
