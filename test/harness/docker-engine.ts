// A private Docker engine for the cluster tier (test/cluster/, `make test-cluster`): Debian's dockerd
// (scripts/provision-tools.sh images) with its own managed containerd, driven by the machine's docker
// CLI with the buildx plugin (BuildKit) and, when asked, other CLI plugins (compose). Needs root.
//
// - Run state (socket, exec-root, pidfile, the CLI's config dir) lives under one temporary directory.
// - The data-root is persistent, in the tool cache beside the engine's version: the base-image
//   stand-ins are imported once and BuildKit's layer cache survives, so a rebuild of unchanged
//   sources takes seconds. One engine at a time owns it: a lock file names the owner and its dockerd;
//   a second run waits for it; a lock whose owner is dead is taken over after that owner's dockerd,
//   containerd and shims are stopped and its mounts undone.
// - No bridge, no iptables rules: containers run with --network host, builds with --network host.
// - stop() removes every container (the engine is private: all are this run's), drops dangling
//   images, stops dockerd (its containerd with it; leftovers by pid), undoes mounts under its
//   directories and releases the lock (docs/decisions/0030-the-project-images-built-for-real.md).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { failOnExit, startProcess, type ManagedProcess } from '../../src/embedded/child-process';
import { toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { commandLine, isAlive, mountsUnder } from './host-processes';

export interface DockerEngine {
  /** DOCKER_HOST (the private engine's unix socket) and DOCKER_CONFIG (a dir whose cli-plugins/ holds buildx and, when given, compose). Spread into the env of any docker/compose child. */
  env: Record<string, string>;
  /** Runs the docker CLI against this engine; rejects with stderr on non-zero exit; bounded by timeoutMs (default 10 min). */
  docker(
    args: string[],
    options?: { input?: string | Buffer; timeoutMs?: number; cwd?: string; env?: Record<string, string> },
  ): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/**
 * Who holds the data-root: the test process (its pid, with its start time and the boot it ran in, so
 * a pid reused after a crash or a reboot is not taken for the owner), its dockerd, and its run directory.
 */
interface EngineLock {
  ownerPid: number;
  ownerStart?: string;
  bootId?: string;
  dockerdPid: number;
  runDir: string;
}

/** Host paths dockerd writes outside its own directories: removed at stop when this run made them. */
const hostPathsDockerdWrites = ['/etc/docker/key.json', '/etc/docker', '/run/containerd'];

const lockWaitMs = 30 * 60_000;
const startTimeoutMs = 60_000;
const dockerdStopGraceMs = 20_000;
/** BuildKit's cache kept across runs: a cold corral build fills about 1.5 GB of it. */
const buildCacheKeep = '4gb';

const say = (message: string) => process.stderr.write(`[docker-engine ${new Date().toISOString()}] ${message}\n`);

/** A process's start time (clock ticks since boot, /proc/<pid>/stat field 22); '' when it is gone. */
function startTimeOf(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** Whether the lock's owner still runs: the same pid, started at the same time, in this boot. */
function ownerAlive(lock: EngineLock): boolean {
  if (!isAlive(lock.ownerPid)) return false;
  if (lock.bootId !== undefined && lock.bootId !== bootId()) return false;
  return lock.ownerStart === undefined || lock.ownerStart === startTimeOf(lock.ownerPid);
}

/** Writes the lock whole (a temporary file renamed over it), so a reader never sees half of it. */
function writeLock(lockFile: string, lock: EngineLock): void {
  const tmp = `${lockFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(lock), { mode: 0o600 });
  fs.renameSync(tmp, lockFile);
}

/** Processes whose command line mentions `marker` (a run directory): containerd and its shims. */
function processesMentioning(marker: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid && commandLine(pid).includes(marker));
}

async function killAndWait(pid: number, graceMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await delay(100);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  await waitFor(() => !isAlive(pid), { what: `process ${pid} to exit after SIGKILL`, timeoutMs: 10_000 });
}

function runCommand(
  command: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs: number; cwd?: string },
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      const what = `${path.basename(command)} ${args.slice(0, 3).join(' ')}`;
      if (timedOut) reject(new Error(`${what}: timed out after ${options.timeoutMs} ms\n${err}`));
      else if (code !== 0) reject(new Error(`${what}: exit ${code ?? signal}\n${err}`));
      else resolve({ stdout: out, stderr: err });
    });
    // A child that exits without reading its input must not fail the call with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input);
  });
}

function pingSocket(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ socketPath: socket, path: '/_ping', timeout: 2_000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.once('timeout', () => request.destroy());
    request.once('error', () => resolve(false));
  });
}

/** The engine's version ("20.10.24"), which keys its data-root. */
async function dockerdVersion(dockerd: string): Promise<string> {
  const { stdout } = await runCommand(dockerd, ['--version'], { env: process.env, timeoutMs: 10_000 });
  const version = /version ([0-9][^ ,+]*)/.exec(stdout)?.[1];
  if (!version) throw new Error(`dockerd --version printed no version: ${stdout.trim()}`);
  return version;
}

/** Stops what a previous owner of the data-root left running, and undoes its mounts. */
async function reapStaleOwner(lock: EngineLock, dataRoot: string): Promise<void> {
  say(`taking over the data-root from a dead run (pid ${lock.ownerPid}); stopping what it left`);
  if (lock.dockerdPid > 0 && commandLine(lock.dockerdPid).includes(lock.runDir)) {
    await killAndWait(lock.dockerdPid, dockerdStopGraceMs);
  }
  for (const pid of processesMentioning(lock.runDir)) await killAndWait(pid, 5_000);
  for (const mount of [...mountsUnder(lock.runDir), ...mountsUnder(dataRoot)]) {
    await runCommand('umount', ['-l', mount], { env: process.env, timeoutMs: 30_000 });
  }
  fs.rmSync(lock.runDir, { recursive: true, force: true });
}

function ageMs(file: string): number {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function readLock(lockFile: string): EngineLock | undefined {
  try {
    return JSON.parse(fs.readFileSync(lockFile, 'utf8')) as EngineLock;
  } catch {
    return undefined;
  }
}

/**
 * Clears a dead owner's lock, once: two runs waiting on the same dead owner must not both reap (the
 * slower one would unmount the faster one's new engine), so a second lock file serialises the
 * take-over, and the owner's lock is re-read under it. False when another run is taking over.
 */
async function takeOver(lockFile: string, holder: EngineLock, dataRoot: string): Promise<boolean> {
  const takeoverFile = `${lockFile}.takeover`;
  try {
    const fd = fs.openSync(takeoverFile, 'wx', 0o600);
    fs.writeSync(fd, String(process.pid));
    fs.closeSync(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    let taker = 0;
    try {
      taker = Number(fs.readFileSync(takeoverFile, 'utf8'));
    } catch {
      // Gone already: that take-over ended.
    }
    // A run that died while taking over (even before writing its pid): its take-over lock goes, the
    // next attempt takes over.
    const abandoned = taker > 0 ? !isAlive(taker) : ageMs(takeoverFile) > 10_000;
    if (abandoned) fs.rmSync(takeoverFile, { force: true });
    return false;
  }
  try {
    const current = readLock(lockFile);
    if (current?.ownerPid === holder.ownerPid && current.runDir === holder.runDir) {
      await reapStaleOwner(holder, dataRoot);
      fs.rmSync(lockFile, { force: true });
    }
    return true;
  } finally {
    fs.rmSync(takeoverFile, { force: true });
  }
}

function ownLock(dockerdPid: number, runDir: string): EngineLock {
  return { ownerPid: process.pid, ownerStart: startTimeOf(process.pid), bootId: bootId(), dockerdPid, runDir };
}

/** Takes the data-root's lock (waiting for a live owner, taking over from a dead one). */
async function acquireLock(lockFile: string, dataRoot: string, runDir: string): Promise<void> {
  const deadline = Date.now() + lockWaitMs;
  let announced = false;
  for (;;) {
    try {
      const fd = fs.openSync(lockFile, 'wx', 0o600);
      fs.writeSync(fd, JSON.stringify(ownLock(0, runDir)));
      fs.closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readLock(lockFile);
    if (holder && !ownerAlive(holder)) {
      if (await takeOver(lockFile, holder, dataRoot)) continue;
    }
    if (!holder) {
      // Written between open and write by its owner: look again shortly. One that stays unreadable
      // (its owner died between the two) is removed: there is no run to reap behind it.
      if (ageMs(lockFile) > 10_000) fs.rmSync(lockFile, { force: true });
    } else if (!announced) {
      say(`the engine's data-root is in use by pid ${holder.ownerPid}; waiting (up to ${lockWaitMs / 60_000} min)`);
      announced = true;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${lockWaitMs} ms waiting for the lock ${lockFile}`);
    await delay(1_000);
  }
}

/**
 * What one run makes and no other run wants: every container and volume (the engine is private),
 * images left untagged by rebuilds; and the build cache beyond a bound (the data-root is persistent).
 */
async function removeRunLeftovers(engine: DockerEngine): Promise<void> {
  const { stdout } = await engine.docker(['ps', '--all', '--quiet'], { timeoutMs: 30_000 });
  const containers = stdout.split('\n').filter(Boolean);
  if (containers.length > 0) await engine.docker(['rm', '--force', '--volumes', ...containers], { timeoutMs: 120_000 });
  await engine.docker(['volume', 'prune', '--force'], { timeoutMs: 120_000 });
  await engine.docker(['image', 'prune', '--force'], { timeoutMs: 120_000 });
  await engine.docker(['buildx', 'prune', '--force', '--keep-storage', buildCacheKeep], { timeoutMs: 120_000 });
}

/** Imports each base-image stand-in (scripts/provision-tools.sh images) that the engine lacks. */
async function importBaseImages(engine: DockerEngine): Promise<void> {
  const dir = toolPath('baseImages');
  const rows = fs
    .readFileSync(path.join(dir, 'images.tsv'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split('\t'));
  for (const [tag, tarball, ...changes] of rows) {
    if (!tag || !tarball) throw new Error(`${dir}/images.tsv: a row without a tag or tarball`);
    const present = await engine.docker(['image', 'inspect', '--format', '{{.Id}}', tag]).then(
      () => true,
      () => false,
    );
    if (present) continue;
    const t0 = Date.now();
    const changeArgs = changes.flatMap((change) => ['--change', change]);
    await engine.docker(['import', ...changeArgs, path.join(dir, tarball), tag]);
    say(`imported ${tag} in ${Date.now() - t0} ms`);
  }
}

export async function startDockerEngine(options: { cliPlugins?: string[] } = {}): Promise<DockerEngine> {
  const dockerd = toolPath('dockerd');
  const dockerCli = toolPath('docker');
  const buildx = toolPath('dockerBuildx');
  const cacheDir = path.dirname(toolPath('baseImages'));
  const version = await dockerdVersion(dockerd);
  const engineDir = path.join(cacheDir, `docker-engine-${version}`);
  const dataRoot = path.join(engineDir, 'data');
  const lockFile = path.join(engineDir, 'owner.lock');
  fs.mkdirSync(dataRoot, { recursive: true, mode: 0o700 });

  // Short: the sockets under it must fit a unix socket path (108 bytes).
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-docker-'));
  await acquireLock(lockFile, dataRoot, runDir).catch((err: unknown) => {
    fs.rmSync(runDir, { recursive: true, force: true });
    throw err;
  });

  const socket = path.join(runDir, 'docker.sock');
  const configDir = path.join(runDir, 'config');
  const pluginsDir = path.join(configDir, 'cli-plugins');
  fs.mkdirSync(pluginsDir, { recursive: true });
  for (const plugin of [buildx, ...(options.cliPlugins ?? [])]) {
    fs.symlinkSync(plugin, path.join(pluginsDir, path.basename(plugin)));
  }
  const daemonConfig = path.join(runDir, 'daemon.json');
  fs.writeFileSync(daemonConfig, '{}\n');
  // BuildKit whatever the docker client's default (the Dockerfiles mount build secrets).
  const env: Record<string, string> = {
    DOCKER_HOST: `unix://${socket}`,
    DOCKER_CONFIG: configDir,
    DOCKER_BUILDKIT: '1',
  };
  const hostPathsBefore = hostPathsDockerdWrites.filter((p) => fs.existsSync(p));

  let proc: ManagedProcess | undefined;
  let stopped = false;
  // Every step runs whatever the one before did; what failed is reported together at the end, and
  // dockerd is always stopped and the lock always released.
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const problems: string[] = [];
    const attempt = async (what: string, step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    if (proc && (await pingSocket(socket)))
      await attempt("removing the run's containers", () => removeRunLeftovers(engine));
    await attempt('stopping dockerd', async () => proc?.stop(dockerdStopGraceMs));
    for (const pid of processesMentioning(runDir)) await attempt(`stopping pid ${pid}`, () => killAndWait(pid, 5_000));
    for (const mount of [...mountsUnder(runDir), ...mountsUnder(dataRoot)]) {
      await attempt(`unmounting ${mount}`, () =>
        runCommand('umount', ['-l', mount], { env: process.env, timeoutMs: 30_000 }),
      );
    }
    for (const hostPath of hostPathsDockerdWrites) {
      if (hostPathsBefore.includes(hostPath) || !fs.existsSync(hostPath)) continue;
      await attempt(`removing ${hostPath}`, async () => fs.rmSync(hostPath, { recursive: true, force: true }));
    }
    await attempt('removing the run directory', async () => fs.rmSync(runDir, { recursive: true, force: true }));
    if (readLock(lockFile)?.ownerPid === process.pid) fs.rmSync(lockFile, { force: true });
    if (problems.length > 0) throw new Error(`the Docker engine did not stop cleanly: ${problems.join('; ')}`);
  };

  const engine: DockerEngine = {
    env,
    docker: (args, callOptions = {}) =>
      runCommand(dockerCli, args, {
        env: { ...process.env, ...env, ...callOptions.env },
        input: callOptions.input,
        timeoutMs: callOptions.timeoutMs ?? 10 * 60_000,
        cwd: callOptions.cwd,
      }),
    stop,
  };

  try {
    const t0 = Date.now();
    proc = startProcess('dockerd', dockerd, [
      `--config-file=${daemonConfig}`,
      `--host=unix://${socket}`,
      `--data-root=${dataRoot}`,
      `--exec-root=${path.join(runDir, 'exec')}`,
      `--pidfile=${path.join(runDir, 'dockerd.pid')}`,
      '--bridge=none',
      '--iptables=false',
      '--ip-masq=false',
      '--ip-forward=false',
      '--userland-proxy=false',
      // Its own namespaces: should a system containerd be listening on /run/containerd (dockerd uses
      // it then), nothing here meets a system Docker's containers.
      '--containerd-namespace=corral-test',
      '--containerd-plugins-namespace=corral-test-plugins',
    ]);
    writeLock(lockFile, ownLock(proc.child.pid ?? 0, runDir));
    await Promise.race([
      waitFor(() => pingSocket(socket), { what: `dockerd to answer on ${socket}`, timeoutMs: startTimeoutMs }),
      failOnExit(proc),
    ]);
    say(`dockerd ${version} up in ${Date.now() - t0} ms (data-root ${dataRoot})`);
    // A run that died left its containers and volumes in the data-root: none of them is wanted now.
    await removeRunLeftovers(engine);
    await importBaseImages(engine);
    return engine;
  } catch (err) {
    await stop().catch((stopErr: unknown) => say(`stop after a failed start: ${String(stopErr)}`));
    throw err;
  }
}
