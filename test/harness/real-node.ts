// A real single-node Kubernetes for the cluster tier (test/cluster/, `make test-cluster`): etcd,
// kube-apiserver and kube-scheduler as in test/harness/kube.ts, kube-controller-manager (the
// controllers a Deployment and service-account tokens need, and the node lifecycle), plus Debian's
// containerd + runc + CNI bridge and a real kubelet (scripts/provision-tools.sh node), so pod statuses are the ones a
// kubelet writes, not the ones KWOK's Stages play. Needs root (mounts, cgroups, a bridge, netns).
//
// Everything lives under one temporary directory; nothing leaves the machine:
// - the pod bridge is a fresh /24 with no route, masquerade or default gateway outwards; its
//   gateway address is the node IP (the kubelet refuses a loopback --node-ip), where the
//   apiserver listens so pods can reach it (there is no kube-proxy: Service IPs lead nowhere);
// - every registry host is mapped to a closed loopback port (containerd's certs.d `_default`), so a
//   pull fails at once with "connection refused", without DNS;
// - the images are built here from static binaries and imported into this containerd.
// stop() undoes it all, also after a failed start: processes by pid, the containers' shims, new
// network namespaces, the bridge, mounts under the directory, the kubepods cgroups, the host paths
// the kubelet and containerd create whatever their configuration says, the kernel tunables the
// kubelet sets, and the FORWARD rule if one was needed (docs/decisions/0029-a-real-node-in-the-harness.md).
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { failOnExit, startProcess, type ManagedProcess } from '../../src/embedded/child-process';
import { freePort } from '../../src/embedded/ports';
import { toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { smallWorkerPath } from '../../src/demo-worker/small-worker-build';
import { kubeConfigFor, type KubeEndpoint } from './kube';
import { commandLine, isAlive, mountsUnder } from './host-processes';
import { writeKubeconfigFile } from './kwok';
import {
  httpsOk,
  kubeApiserverArgs,
  kubeControllerManagerArgs,
  kubeSchedulerArgs,
  writeServiceAccountKeys,
} from './kube-control-plane';

const run = promisify(execFile);

/** The images every real node holds (imported, never pulled). */
export const realNodeImages = {
  /** The pod sandbox image containerd is configured with. */
  pause: 'registry.k8s.io/pause:3.10',
  /**
   * corral's small worker (src/demo-worker/small) behind a busybox shell: without arguments it
   * runs the worker; with arguments it runs them (`/bin/sh -c 'exit 1'`, `/bin/memhog 512`, …).
   */
  worker: 'corral.test/worker:1',
  /** The same files, its entrypoint a path that does not exist: the runtime's StartError. */
  noEntrypoint: 'corral.test/no-entrypoint:1',
} as const;

export interface RealNode extends KubeEndpoint {
  nodeName: string;
  /** The pod bridge's gateway address: the node's InternalIP, reachable from this host only. */
  nodeIP: string;
  podCidr: string;
  dir: string;
  /** Each process's log file (the kubelet's and containerd's are where a failure is explained). */
  logs: Record<string, string>;
  kubeConfig(): KubeConfig;
  /** Imports a docker-archive (`docker save`) into the node's containerd: pods use it, never pulling. */
  importImage(archive: string): Promise<void>;
  /** Runs `ctr` against the node's containerd, namespace k8s.io (the kubelet's containers). */
  ctr(args: string[], timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
  /** After stop(): what of the run is still on the host, checked afresh (empty when clean). */
  leftovers(): Promise<string[]>;
}

export interface StartRealNodeOptions {
  /** Bound on the node turning Ready after the kubelet starts (default 120 s). */
  readyTimeoutMs?: number;
}

/** Kernel tunables the kubelet sets on start (protectKernelDefaults false); put back on stop. */
const kubeletTunables = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  // The CNI bridge plugin (isGateway) turns forwarding on.
  'net/ipv4/ip_forward',
];

/** Host paths the kubelet, containerd or libcni create whatever their configured directories are. */
// /run/mount: libmount's utab, written by the mounts the kubelet makes (and umount).
const hostPaths = [
  '/run/containerd',
  '/run/netns',
  '/run/mount',
  '/var/lib/cni',
  '/var/lib/kubelet',
  '/usr/libexec/kubernetes',
];

const say = (message: string) => process.stderr.write(`[real-node ${new Date().toISOString()}] ${message}\n`);

async function sh(command: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const { stdout } = await run(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 });
  return stdout;
}

function readSysctl(name: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/sys/${name}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A /24 in 10.0.0.0/8 that no local address or route touches. */
async function freePodSubnet(): Promise<{ cidr: string; gateway: string }> {
  const used = `${await sh('ip', ['-4', '-o', 'addr'])}\n${await sh('ip', ['-4', 'route'])}`;
  for (let attempt = 0; attempt < 200; attempt++) {
    const b = 200 + crypto.randomInt(50);
    const c = crypto.randomInt(256);
    const prefix = `10.${b}.${c}.`;
    if (!used.includes(prefix) && !used.includes(`10.${b}.0.0/16`) && !/\b10\.0\.0\.0\/8\b/.test(used)) {
      return { cidr: `${prefix}0/24`, gateway: `${prefix}1` };
    }
  }
  throw new Error('no free /24 in 10.200.0.0/13 for the pod bridge');
}

/** HTTPS GET that resolves true on 200 (the apiserver's /readyz, the scheduler's /healthz). */
/**
 * A one-layer image in docker-archive form (what `docker save` writes and `ctr images import`
 * reads), from a root directory: no registry, no docker.
 */
async function writeImageArchive(
  out: string,
  name: string,
  rootDir: string,
  config: { Entrypoint: string[]; Cmd?: string[] },
): Promise<void> {
  const stage = fs.mkdtempSync(`${out}.stage-`);
  try {
    const layerTmp = path.join(stage, 'layer.tar');
    await sh('tar', [
      '--numeric-owner',
      '--owner=0',
      '--group=0',
      '--mtime=@0',
      '--sort=name',
      '-C',
      rootDir,
      '-cf',
      layerTmp,
      ...fs.readdirSync(rootDir).sort(),
    ]);
    const diffId = crypto.createHash('sha256').update(fs.readFileSync(layerTmp)).digest('hex');
    fs.mkdirSync(path.join(stage, diffId));
    fs.renameSync(layerTmp, path.join(stage, diffId, 'layer.tar'));
    const imageConfig = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: { Env: ['PATH=/bin'], WorkingDir: '/', ...config },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [{ created_by: 'test/harness/real-node.ts' }],
    });
    const configName = `${crypto.createHash('sha256').update(imageConfig).digest('hex')}.json`;
    fs.writeFileSync(path.join(stage, configName), imageConfig);
    fs.writeFileSync(
      path.join(stage, 'manifest.json'),
      JSON.stringify([{ Config: configName, RepoTags: [name], Layers: [`${diffId}/layer.tar`] }]),
    );
    await sh('tar', ['--mtime=@0', '-C', stage, '-cf', out, `${diffId}/layer.tar`, configName, 'manifest.json']);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

/** The images' root directories and archives, under `dir`. */
async function buildImages(dir: string): Promise<string[]> {
  const rootfs = toolPath('nodeRootfs');
  const busybox = toolPath('busyboxStatic');
  const worker = await smallWorkerPath();

  const pauseRoot = path.join(dir, 'rootfs-pause');
  fs.mkdirSync(pauseRoot, { recursive: true });
  fs.copyFileSync(path.join(rootfs, 'pause'), path.join(pauseRoot, 'pause'));
  fs.chmodSync(path.join(pauseRoot, 'pause'), 0o755);

  const workerRoot = path.join(dir, 'rootfs-worker');
  for (const sub of ['bin', 'etc', 'tmp']) fs.mkdirSync(path.join(workerRoot, sub), { recursive: true });
  fs.chmodSync(path.join(workerRoot, 'tmp'), 0o1777);
  const bin = (name: string) => path.join(workerRoot, 'bin', name);
  fs.copyFileSync(busybox, bin('busybox'));
  fs.copyFileSync(path.join(rootfs, 'memhog'), bin('memhog'));
  fs.copyFileSync(worker, bin('corral-small-worker'));
  for (const tool of ['sh', 'nc', 'httpd', 'sleep', 'kill', 'cat', 'echo', 'true', 'false', 'ls', 'id']) {
    fs.symlinkSync('busybox', bin(tool));
  }
  // No arguments: the worker (corral passes none unless the pool has args). Else: what was asked.
  fs.writeFileSync(bin('entry'), '#!/bin/sh\n[ "$#" -eq 0 ] && exec /bin/corral-small-worker\nexec "$@"\n');
  for (const file of ['busybox', 'memhog', 'corral-small-worker', 'entry']) fs.chmodSync(bin(file), 0o755);
  fs.writeFileSync(
    path.join(workerRoot, 'etc', 'passwd'),
    'root:x:0:0:root:/:/bin/sh\nnonroot:x:65532:65532::/:/bin/sh\n',
  );
  fs.writeFileSync(path.join(workerRoot, 'etc', 'group'), 'root:x:0:\nnonroot:x:65532:\n');
  fs.writeFileSync(path.join(workerRoot, 'healthz'), 'ok\n');

  const archives = [path.join(dir, 'pause.tar'), path.join(dir, 'worker.tar'), path.join(dir, 'no-entrypoint.tar')];
  await writeImageArchive(archives[0]!, realNodeImages.pause, pauseRoot, { Entrypoint: ['/pause'] });
  await writeImageArchive(archives[1]!, realNodeImages.worker, workerRoot, { Entrypoint: ['/bin/entry'] });
  await writeImageArchive(archives[2]!, realNodeImages.noEntrypoint, workerRoot, { Entrypoint: ['/app/worker'] });
  return archives;
}

/**
 * What a run changed on the host, kept in `<dir>/owner.json` as it happens: stop() undoes it from
 * this record, and so does the next start when the run that wrote it died without stopping
 * (SIGKILL, a crash): its processes are found by pid, and only if their command line names `dir`.
 */
interface NodeRecord {
  ownerPid: number;
  dir: string;
  socket: string;
  /** Process name → pid, in start order. */
  pids: Record<string, number>;
  bridge?: string;
  forwardRule?: string[];
  /** cni-* network namespaces that existed before (not ours). */
  netnsBefore: string[];
  /** Host paths that did not exist before the run. */
  newHostPaths: string[];
  /** Kernel tunables' values before the run. */
  tunables: Record<string, string>;
  /** Set once the kubepods cgroups were checked absent: then any found at the end are this run's. */
  ownsKubepods: boolean;
}

const recordFile = (dir: string) => path.join(dir, 'owner.json');
const saveRecord = (record: NodeRecord) => fs.writeFileSync(recordFile(record.dir), JSON.stringify(record, null, 2));

/** SIGTERM, then SIGKILL after `graceMs`; only a process whose command line names `marker`. */
async function stopPid(pid: number, marker: string, graceMs = 15_000): Promise<void> {
  if (!isAlive(pid) || !commandLine(pid).includes(marker)) return;
  process.kill(pid, 'SIGTERM');
  const gone = await waitFor(() => !isAlive(pid), { what: `pid ${pid} to exit`, timeoutMs: graceMs }).catch(
    () => false,
  );
  if (gone) return;
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !isAlive(pid), { what: `pid ${pid} to die`, timeoutMs: 10_000 });
}

/** Undoes everything `record` says the run did, in order; returns what could not be undone. */
async function tearDown(record: NodeRecord): Promise<string[]> {
  const problems: string[] = [];
  const step = async (what: string, body: () => Promise<void> | void) => {
    try {
      await body();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
    }
  };
  const { dir, socket, pids } = record;
  // The kubelet first, so it restarts nothing the next steps kill.
  if (pids.kubelet) await step('stop the kubelet', () => stopPid(pids.kubelet!, dir));
  await step("kill and delete the pods' containers", async () => {
    if (!pids.containerd || !isAlive(pids.containerd) || !fs.existsSync(socket)) return;
    const ctr = (args: string[]) =>
      sh(toolPath('ctr'), ['--address', socket, '--namespace', 'k8s.io', ...args], 15_000).catch(() => '');
    const ids = (await ctr(['containers', 'ls', '-q'])).split('\n').filter(Boolean);
    for (const c of ids) await ctr(['tasks', 'kill', '--signal', 'SIGKILL', c]);
    for (const c of ids) {
      await ctr(['tasks', 'delete', '--force', c]);
      await ctr(['containers', 'delete', c]);
    }
  });
  if (pids.containerd) await step('stop containerd', () => stopPid(pids.containerd!, dir));
  await step('kill the shims left behind', async () => {
    for (const pid of shimsOf(socket)) process.kill(pid, 'SIGKILL');
    await waitFor(() => shimsOf(socket).every((pid) => !isAlive(pid)), {
      what: 'the shims to exit',
      timeoutMs: 10_000,
    });
  });
  if (record.ownsKubepods) {
    // A container being created when containerd stopped leaves its `runc init` behind (orphaned,
    // still in the pod's cgroup and network namespace); anything in kubepods is this run's.
    await step('kill what is left in the kubepods cgroups', async () => {
      const left = () => [...new Set(cgroupHierarchies().flatMap((h) => procsUnder(path.join(h, 'kubepods'))))];
      for (const pid of left()) process.kill(pid, 'SIGKILL');
      await waitFor(() => left().every((pid) => !isAlive(pid)), { what: 'kubepods to empty', timeoutMs: 10_000 });
    });
  }
  for (const name of ['kube-controller-manager', 'kube-scheduler', 'kube-apiserver', 'etcd']) {
    if (pids[name]) await step(`stop ${name}`, () => stopPid(pids[name]!, dir));
  }
  if (record.forwardRule) {
    const rule = record.forwardRule;
    await step('delete the FORWARD rule', () => sh('iptables', ['-D', ...rule]).then(() => undefined));
  }
  await step('delete the pod network namespaces', async () => {
    for (const ns of await netnsNames()) {
      if (ns.startsWith('cni-') && !record.netnsBefore.includes(ns)) await sh('ip', ['netns', 'delete', ns]);
    }
  });
  if (record.bridge) {
    const bridge = record.bridge;
    await step(`delete the bridge ${bridge}`, async () => {
      if ((await sh('ip', ['-o', 'link', 'show'])).includes(` ${bridge}:`)) await sh('ip', ['link', 'delete', bridge]);
    });
  }
  await step(`unmount everything under ${dir}`, async () => {
    for (const m of mountsUnder(dir)) await sh('umount', ['-l', m]);
  });
  if (record.ownsKubepods) {
    await step('remove the kubepods cgroups', () =>
      // A cgroup whose last task was just killed can stay busy for a moment.
      waitFor(
        () => {
          for (const h of cgroupHierarchies()) removeCgroupTree(path.join(h, 'kubepods'));
          return true;
        },
        { what: 'the kubepods cgroups to go', timeoutMs: 15_000, intervalMs: 250 },
      ).then(() => undefined),
    );
  }
  await step('remove the host paths this run created', async () => {
    for (const p of record.newHostPaths) {
      // Created by this run, so whatever is mounted there is this run's (containerd's netns files).
      for (const m of mountsUnder(p)) await sh('umount', ['-l', m]);
      fs.rmSync(p, { recursive: true, force: true });
    }
  });
  await step('restore the kernel tunables', () => {
    for (const [name, value] of Object.entries(record.tunables)) {
      if (readSysctl(name) !== value) fs.writeFileSync(`/proc/sys/${name}`, value);
    }
  });
  // Kept (with its record) when something could not be undone: the next start tries again.
  if (problems.length === 0) {
    await step('remove the state directory', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return problems;
}

/** What of a run is still on the host: each item names one thing tearDown should have removed. */
async function leftovers(record: NodeRecord): Promise<string[]> {
  const found: string[] = [];
  for (const [name, pid] of Object.entries(record.pids)) {
    if (isAlive(pid) && commandLine(pid).includes(record.dir)) found.push(`process ${name} (${pid})`);
  }
  for (const pid of shimsOf(record.socket)) if (isAlive(pid)) found.push(`shim ${pid}`);
  const links = await sh('ip', ['-o', 'link', 'show']);
  if (record.bridge && links.includes(` ${record.bridge}:`)) found.push(`bridge ${record.bridge}`);
  for (const ns of await netnsNames()) {
    if (ns.startsWith('cni-') && !record.netnsBefore.includes(ns)) found.push(`netns ${ns}`);
  }
  if (record.forwardRule && (await sh('iptables', ['-S', 'FORWARD'])).includes(`-i ${record.bridge} -o`)) {
    found.push('the FORWARD rule');
  }
  for (const m of mountsUnder(record.dir)) found.push(`mount ${m}`);
  for (const h of cgroupHierarchies()) {
    if (record.ownsKubepods && fs.existsSync(path.join(h, 'kubepods'))) found.push(`cgroup ${h}/kubepods`);
  }
  for (const p of [...record.newHostPaths, record.dir]) if (fs.existsSync(p)) found.push(`path ${p}`);
  for (const [name, value] of Object.entries(record.tunables)) {
    if (readSysctl(name) !== value) found.push(`sysctl ${name}=${readSysctl(name)} (was ${value})`);
  }
  return found;
}

/**
 * Tears down what runs that died without stopping left behind (their owner.json names a pid that
 * is gone). Called by startRealNode; returns the directories it cleaned.
 */
export async function reapStaleRealNodes(): Promise<string[]> {
  const reaped: string[] = [];
  for (const entry of fs.readdirSync(os.tmpdir())) {
    if (!entry.startsWith('corral-node-')) continue;
    const file = recordFile(path.join(os.tmpdir(), entry));
    let record: NodeRecord;
    try {
      record = JSON.parse(fs.readFileSync(file, 'utf8')) as NodeRecord;
    } catch {
      continue;
    }
    if (isAlive(record.ownerPid)) continue;
    say(`cleaning up after a run that died (pid ${record.ownerPid}): ${record.dir}`);
    const problems = await tearDown(record);
    if (problems.length > 0)
      throw new Error(`cleaning up ${record.dir} left something behind:\n${problems.join('\n')}`);
    reaped.push(record.dir);
  }
  return reaped;
}

/** Pids whose command line names `needle` as its last argument (the shims of one containerd). */
function shimsOf(socket: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (args[0]?.includes('containerd-shim') && args.includes(socket)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Every cgroup v1 hierarchy and the v2 one, as mounted under /sys/fs/cgroup. */
function cgroupHierarchies(): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => (f[2] === 'cgroup' || f[2] === 'cgroup2') && f[1]?.startsWith('/sys/fs/cgroup'))
    .map((f) => f[1]!);
}

function removeCgroupTree(root: string): void {
  if (!fs.existsSync(root)) return;
  const dirs: string[] = [];
  const walk = (d: string) => {
    dirs.push(d);
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  walk(root);
  for (const d of dirs.reverse()) fs.rmdirSync(d);
}

/** Pids in a cgroup tree (every cgroup.procs under `root`). */
function procsUnder(root: string): number[] {
  if (!fs.existsSync(root)) return [];
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      for (const line of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) {
        if (line) pids.push(Number(line));
      }
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {
      // removed meanwhile
    }
  };
  walk(root);
  return pids;
}

async function netnsNames(): Promise<string[]> {
  const out = await sh('ip', ['netns', 'list']).catch(() => '');
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

export async function startRealNode(options: StartRealNodeOptions = {}): Promise<RealNode> {
  if (process.getuid?.() !== 0) throw new Error('a real node needs root (mounts, cgroups, a bridge, netns)');
  await reapStaleRealNodes();
  for (const h of cgroupHierarchies()) {
    if (fs.existsSync(path.join(h, 'kubepods'))) {
      throw new Error(`${h}/kubepods exists: another kubelet runs here (one real node per machine at a time)`);
    }
  }
  const t0 = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-node-'));
  const logs: Record<string, string> = {};
  const id = path
    .basename(dir)
    .slice(-6)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');
  const nodeName = `corral-node-${id}`;
  const bridge = `crl${id}`.slice(0, 15);
  const socket = path.join(dir, 'containerd', 'containerd.sock');

  // Host state the run may change, recorded before anything starts.
  const record: NodeRecord = {
    ownerPid: process.pid,
    dir,
    socket,
    pids: {},
    netnsBefore: (await netnsNames()).filter((ns) => ns.startsWith('cni-')),
    newHostPaths: hostPaths.filter((p) => !fs.existsSync(p)),
    tunables: Object.fromEntries(
      kubeletTunables.flatMap((t) => {
        const value = readSysctl(t);
        return value === undefined ? [] : [[t, value]];
      }),
    ),
    ownsKubepods: true,
  };
  saveRecord(record);
  const started = (proc: ManagedProcess) => {
    record.pids[proc.name.replace(/^real-node-/, '')] = proc.child.pid ?? 0;
    logs[proc.name.replace(/^real-node-/, '')] = proc.logFile;
    saveRecord(record);
    return proc;
  };

  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: tearing the node down before exiting`);
    void stop().finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const problems = await tearDown(record);
      if (problems.length > 0) {
        throw new Error(`the real node's teardown left something behind:\n${problems.join('\n')}`);
      }
    })();
    return stopping;
  };

  try {
    const [etcdPort, etcdPeerPort, apiPort, schedulerPort, controllerManagerPort, kubeletPort, kubeletHealthzPort] =
      await Promise.all(Array.from({ length: 7 }, () => freePort()));
    const { cidr: podCidr, gateway: nodeIP } = await freePodSubnet();

    // ---- the pod bridge, up front: its gateway address is the node IP, where the apiserver listens ----
    record.bridge = bridge;
    saveRecord(record);
    await sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await sh('ip', ['addr', 'add', `${nodeIP}/24`, 'dev', bridge]);
    await sh('ip', ['link', 'set', bridge, 'up']);
    // Pod → pod traffic crosses FORWARD when br_netfilter is on; a DROP policy (docker's) would eat it.
    const iptables = await sh('iptables', ['-S', 'FORWARD']).catch(() => '');
    if (iptables.includes('-P FORWARD DROP')) {
      const rule = ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
      await sh('iptables', ['-I', ...rule]);
      record.forwardRule = rule;
      saveRecord(record);
    }

    // ---- etcd, kube-apiserver, kube-scheduler (as test/harness/kube.ts starts them) ----
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = started(
      startProcess('real-node-etcd', toolPath('etcd'), [
        '--name=corral-node',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=corral-node=${peerUrl}`,
        '--log-level=warn',
        '--unsafe-no-fsync',
      ]),
    );
    await Promise.race([
      failOnExit(etcd),
      waitFor(async () => (await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1_000) })).ok, {
        what: 'etcd health',
        timeoutMs: 30_000,
      }),
    ]);

    const adminToken = crypto.randomBytes(24).toString('hex');
    fs.writeFileSync(
      path.join(dir, 'tokens.csv'),
      `${adminToken},corral-node-admin,corral-node-admin,"system:masters"\n`,
      {
        mode: 0o600,
      },
    );
    writeServiceAccountKeys(dir);
    const certDir = path.join(dir, 'apiserver-certs');
    const apiserver = started(
      startProcess(
        'real-node-kube-apiserver',
        toolPath('kubeApiserver'),
        // On the node IP, not loopback: pods reach it there (decision 0031).
        kubeApiserverArgs({ etcdUrl, port: apiPort, dir, certDir, address: nodeIP }),
      ),
    );
    const server = `https://${nodeIP}:${apiPort}`;
    const caFile = path.join(certDir, 'apiserver.crt');
    await Promise.race([
      failOnExit(apiserver),
      waitFor(async () => fs.existsSync(caFile) && httpsOk(`${server}/readyz`, adminToken, fs.readFileSync(caFile)), {
        what: 'kube-apiserver /readyz',
        timeoutMs: 90_000,
        intervalMs: 200,
      }),
    ]);
    const kubeconfigFile = path.join(dir, 'admin.kubeconfig');
    writeKubeconfigFile(kubeconfigFile, { server, caFile, token: adminToken });

    const scheduler = started(
      startProcess(
        'real-node-kube-scheduler',
        toolPath('kubeScheduler'),
        kubeSchedulerArgs({ kubeconfigFile, port: schedulerPort, certDir: path.join(dir, 'scheduler-certs') }),
      ),
    );
    const controllerManager = started(
      startProcess(
        'real-node-kube-controller-manager',
        toolPath('kubeControllerManager'),
        kubeControllerManagerArgs({
          kubeconfigFile,
          port: controllerManagerPort,
          certDir: path.join(dir, 'controller-manager-certs'),
          serviceAccountKeyFile: path.join(dir, 'sa.key'),
          rootCaFile: caFile,
        }),
      ),
    );

    // ---- CNI, registry redirection, containerd ----
    const cniConfDir = path.join(dir, 'cni', 'net.d');
    fs.mkdirSync(cniConfDir, { recursive: true });
    fs.writeFileSync(
      path.join(cniConfDir, '10-corral-node.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'corral-node',
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            isDefaultGateway: false,
            ipMasq: false,
            hairpinMode: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: podCidr }]],
              routes: [],
              dataDir: path.join(dir, 'cni', 'ipam'),
            },
          },
        ],
      }),
    );
    // Every registry host → a closed loopback port: a pull fails at once, sends nothing anywhere.
    const closedPort = 9;
    fs.mkdirSync(path.join(dir, 'certs.d', '_default'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'certs.d', '_default', 'hosts.toml'),
      `server = "http://127.0.0.1:${closedPort}"\n[host."http://127.0.0.1:${closedPort}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    fs.mkdirSync(path.dirname(socket), { recursive: true });
    const containerdConfig = path.join(dir, 'containerd', 'config.toml');
    fs.writeFileSync(
      containerdConfig,
      `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${realNodeImages.pause}"
  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj below containerd's own (the kubelet
  # asks -998/-997): clamp instead of failing every sandbox. Harmless with the capability.
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "${toolPath('runc')}"
        Root = "${dir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${toolPath('cniBinDir')}"
    conf_dir = "${cniConfDir}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${dir}/certs.d"
`,
    );
    const containerd = started(
      startProcess('real-node-containerd', toolPath('containerd'), [
        '--config',
        containerdConfig,
        '--log-level',
        'info',
      ]),
    );
    const ctr = (args: string[], timeoutMs = 60_000) =>
      sh(toolPath('ctr'), ['--address', socket, '--namespace', 'k8s.io', ...args], timeoutMs);
    await Promise.race([
      failOnExit(containerd),
      waitFor(() => ctr(['version'], 5_000).then(() => true), { what: 'containerd', timeoutMs: 30_000 }),
    ]);
    const images = await buildImages(path.join(dir, 'images'));
    for (const archive of images) await ctr(['images', 'import', archive]);

    // ---- the kubelet ----
    const kubeletDir = path.join(dir, 'kubelet');
    fs.mkdirSync(kubeletDir, { recursive: true });
    const kubeletConfig = path.join(kubeletDir, 'config.yaml');
    // JSON is YAML.
    fs.writeFileSync(
      kubeletConfig,
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: nodeIP,
        port: kubeletPort,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: kubeletHealthzPort,
        authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
        authorization: { mode: 'Webhook' },
        cgroupDriver: 'cgroupfs',
        cgroupsPerQOS: true,
        failSwapOn: false,
        // See restrict_oom_score_adj above: the kubelet's own -999 would fail every minute.
        oomScoreAdj: 0,
        volumePluginDir: path.join(kubeletDir, 'volume-plugins'),
        containerRuntimeEndpoint: `unix://${socket}`,
        imageServiceEndpoint: `unix://${socket}`,
        podLogsDir: path.join(kubeletDir, 'pod-logs'),
        staticPodPath: '',
        makeIPTablesUtilChains: false,
        registerNode: true,
        resolvConf: '/etc/resolv.conf',
        clusterDomain: 'cluster.local',
        serializeImagePulls: false,
        nodeStatusUpdateFrequency: '10s',
        nodeStatusReportFrequency: '1m',
        syncFrequency: '10s',
        fileCheckFrequency: '20s',
        imageMinimumGCAge: '2m',
        // The imported images must never be collected: nothing could pull them back.
        imageGCHighThresholdPercent: 100,
        evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
        maxPods: 50,
        podCIDR: podCidr,
      }),
    );
    const kubeletKubeconfig = path.join(kubeletDir, 'kubeconfig');
    writeKubeconfigFile(kubeletKubeconfig, { server, caFile, token: adminToken });
    const kubelet = started(
      startProcess('real-node-kubelet', toolPath('kubelet'), [
        `--config=${kubeletConfig}`,
        `--kubeconfig=${kubeletKubeconfig}`,
        `--root-dir=${path.join(kubeletDir, 'root')}`,
        `--cert-dir=${path.join(kubeletDir, 'pki')}`,
        `--hostname-override=${nodeName}`,
        `--node-ip=${nodeIP}`,
        '--v=2',
      ]),
    );

    await Promise.race([
      failOnExit(scheduler),
      waitFor(() => httpsOk(`https://127.0.0.1:${schedulerPort}/healthz`), {
        what: 'kube-scheduler /healthz',
        timeoutMs: 60_000,
        intervalMs: 200,
      }),
    ]);
    await Promise.race([
      failOnExit(controllerManager),
      waitFor(() => httpsOk(`https://127.0.0.1:${controllerManagerPort}/healthz`), {
        what: 'kube-controller-manager /healthz',
        timeoutMs: 60_000,
        intervalMs: 200,
      }),
    ]);
    const endpoint: KubeEndpoint = { server, adminToken, caFile };
    const core = kubeConfigFor(endpoint).makeApiClient(CoreV1Api);
    // Ready, and schedulable: the kubelet registers its node tainted node.kubernetes.io/not-ready,
    // which the node lifecycle controller lifts once the node reports Ready.
    await Promise.race([
      failOnExit(kubelet),
      failOnExit(containerd),
      failOnExit(controllerManager),
      waitFor(
        async () => {
          const node = await core.readNode({ name: nodeName });
          const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
          const tainted = (node.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
          return ready && !tainted;
        },
        {
          what: `node ${nodeName} Ready and untainted (see ${kubelet.logFile} and ${controllerManager.logFile})`,
          timeoutMs: options.readyTimeoutMs ?? 120_000,
          intervalMs: 200,
        },
      ),
    ]);
    say(
      `node ${nodeName} Ready at ${nodeIP} (pods ${podCidr}) after ${((Date.now() - t0) / 1000).toFixed(1)} s; state in ${dir}`,
    );

    return {
      ...endpoint,
      nodeName,
      nodeIP,
      podCidr,
      dir,
      logs,
      kubeConfig: () => kubeConfigFor(endpoint),
      // A project image is hundreds of MB: unpacking it takes a while on a busy machine.
      importImage: (archive) => ctr(['images', 'import', archive], 300_000).then(() => undefined),
      ctr,
      stop,
      leftovers: () => leftovers(record),
    };
  } catch (err) {
    say(`start failed (${(err as Error).message}); tearing down`);
    await stop().catch((teardownErr: unknown) => say((teardownErr as Error).message));
    throw err;
  }
}
