// Child processes for the embedded stack and the test servers. Output goes to a log file
// (under .corral/logs, or CORRAL_LOGS_DIR: the test runner points it at test-results/logs and
// keeps it when a test fails), and stop() escalates from SIGTERM to SIGKILL so nothing
// outlives its owner.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stateDir } from './state-dir';

export function logsDir(): string {
  return process.env.CORRAL_LOGS_DIR ?? path.join(stateDir(), 'logs');
}

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  stop(graceMs?: number): Promise<void>;
  /** Sends SIGKILL and waits for the exit: a crash, not a shutdown. */
  kill(): Promise<void>;
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; ipc?: boolean } = {},
): ManagedProcess {
  fs.mkdirSync(logsDir(), { recursive: true });
  const logFile = path.join(logsDir(), `${name}-${Date.now()}-${process.pid}.log`);
  const log = fs.openSync(logFile, 'a');
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: options.ipc ? ['ignore', log, log, 'ipc'] : ['ignore', log, log],
  });
  fs.closeSync(log);
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal));
    child.once('error', () => resolve(null));
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    name,
    child,
    logFile,
    exited,
    async stop(graceMs = 10_000) {
      if (!alive()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => alive() && child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (!alive()) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Resolves when the child sends `{ type }` over its IPC channel (started with `ipc: true`). */
export function nextMessage(proc: ManagedProcess, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type) {
        proc.child.off('message', onMessage);
        resolve(message as Record<string, unknown>);
      }
    };
    proc.child.on('message', onMessage);
  });
}

/** Rejects as soon as the process exits; used to fail fast while waiting for readiness. */
export function failOnExit(proc: ManagedProcess): Promise<never> {
  return proc.exited.then((code) => {
    throw new Error(`${proc.name} exited (${String(code)}) before it was ready; see ${proc.logFile}`);
  });
}
