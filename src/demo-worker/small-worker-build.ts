// Builds the small worker (src/demo-worker/small: the worker protocol in Go, stdlib only, a few MB
// per process) into the per-user tool cache, once per source + protocol version + Go toolchain.
// The protocol version is passed from src/common/worker-protocol.ts at link time, never copied.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../embedded/tools';
import { workerProtocolV1, workerProtocolV2 } from '../common/worker-protocol';

const run = promisify(execFile);
const sourceDir = path.join(repoRoot, 'src', 'demo-worker', 'small');
const binaryName = 'corral-small-worker';
const goVersionTimeoutMs = 15_000;
/** A build with an empty Go build cache took 36-73 s on 2 busy cores; this bounds a wedged toolchain. */
const buildTimeoutMs = 300_000;

/** The per-user tool cache, resolved as scripts/provision-tools.sh resolves it. */
function toolsCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return process.env.CORRAL_TOOLS_CACHE || path.join(xdg, 'corral', 'tools');
}

/** Go's environment for the build: no VCS stamping, no cgo, no toolchain download, no workspace. */
function buildEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOWORK: 'off' };
}

function sourceFiles(): string[] {
  return fs
    .readdirSync(sourceDir)
    .filter((file) => file === 'go.mod' || (file.endsWith('.go') && !file.endsWith('_test.go')))
    .sort();
}

async function cacheKey(): Promise<string> {
  const goVersion = await run('go', ['version'], {
    env: buildEnv(),
    timeout: goVersionTimeoutMs,
    killSignal: 'SIGKILL',
  }).then(
    ({ stdout }) => stdout,
    (err: unknown) => {
      throw new Error(`the small worker is built with Go: \`go version\` failed (${(err as Error).message})`, {
        cause: err,
      });
    },
  );
  const hash = crypto.createHash('sha256');
  for (const file of sourceFiles()) {
    const content = fs.readFileSync(path.join(sourceDir, file));
    hash.update(`${file}\0${content.length}\0`).update(content);
  }
  hash.update(`protocol ${workerProtocolV1} ${workerProtocolV2}\0${goVersion.trim()}`);
  return hash.digest('hex').slice(0, 16);
}

async function build(target: string): Promise<void> {
  // The value goes through the linker's own argument splitting: keep it one plain word.
  for (const version of [workerProtocolV1, workerProtocolV2]) {
    if (!/^[\x21-\x7e]+$/.test(version) || /['"\\]/.test(version)) {
      throw new Error(`the worker protocol version ${JSON.stringify(version)} cannot be linked in`);
    }
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  try {
    const ldflags = `-s -w -X main.protocolVersion=${workerProtocolV1} -X main.protocolV2=${workerProtocolV2}`;
    await run('go', ['build', '-trimpath', '-ldflags', ldflags, '-o', tmp, '.'], {
      cwd: sourceDir,
      env: buildEnv(),
      timeout: buildTimeoutMs,
      killSignal: 'SIGKILL',
    });
    // Atomic: a concurrent caller sees no binary or a whole one (two racing builds write the same).
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`building the small worker failed: ${stderr || (err as Error).message}`, { cause: err });
  }
}

let pending: Promise<string> | undefined;

/**
 * The path of the small worker's executable (a process-runtime image: it reads PORT, HOST,
 * CORRAL_WORKER_ID and CORRAL_CREDENTIALS_FILE like bin/corral-demo-worker), built with `go build`
 * into `<tool cache>/small-worker-<key>/` if that key has no binary yet.
 */
export function smallWorkerPath(): Promise<string> {
  pending ??= (async () => {
    const target = path.join(toolsCacheDir(), `small-worker-${await cacheKey()}`, binaryName);
    if (!fs.existsSync(target)) await build(target);
    return target;
  })().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}
