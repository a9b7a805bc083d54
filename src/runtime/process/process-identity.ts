// Recognising "our" process again after corral restarts. A pid alone is not an identity: pids
// are reused, and signalling a stranger's process would be a serious bug. On Linux the kernel's
// start time of the process (field 22 of /proc/<pid>/stat) pins it down.
import fs from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** Clock ticks since boot at which the process started; undefined where /proc is unavailable. */
  startTicks: number | undefined;
}

interface ProcStat {
  state: string;
  startTicks: number;
}

function readProcStat(pid: number): ProcStat | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces or ')'.
  const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  // After the name: field 3 (state) is index 0, field 22 (starttime) is index 19.
  return { state: fields[0] ?? '?', startTicks: Number(fields[19]) };
}

export function identify(pid: number): ProcessIdentity {
  return { pid, startTicks: readProcStat(pid)?.startTicks };
}

/** True when the process that `identity` names is still running (not exited, not a zombie). */
export function isRunning(identity: ProcessIdentity): boolean {
  const stat = readProcStat(identity.pid);
  if (stat) {
    if (stat.state === 'Z' || stat.state === 'X') return false;
    return identity.startTicks === undefined || stat.startTicks === identity.startTicks;
  }
  if (fs.existsSync('/proc/self/stat')) return false; // /proc works and the pid is gone.
  try {
    process.kill(identity.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True when the process was started with CORRAL_WORKER_ID=<workerId> (corral sets it on every
 * worker). Where /proc is unavailable there is no way to check, and the start time must do.
 */
export function carriesWorkerId(identity: ProcessIdentity, workerId: string): boolean {
  let environ: string;
  try {
    environ = fs.readFileSync(`/proc/${identity.pid}/environ`, 'utf8');
  } catch {
    return !fs.existsSync('/proc/self/environ');
  }
  return environ.split('\0').includes(`CORRAL_WORKER_ID=${workerId}`);
}
