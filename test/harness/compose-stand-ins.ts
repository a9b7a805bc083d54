// Local stand-ins for the upstream images docker-compose.yml pulls (Docker Hub is out of reach
// here), tagged exactly as the compose file names them and built on the engine harness's
// `debian:bookworm-slim`. Each is defined by test/fixtures/compose-stand-ins/<dir>/ plus binaries
// from the tool cache (scripts/provision-tools.sh, groups temporal and compose) copied into its
// build context. An image whose inputs are unchanged is not rebuilt: the inputs' digest is the
// image's label. What each differs in from upstream: docs/decisions/0032.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, toolPath } from '../../src/embedded/tools';
import type { DockerEngine } from './docker-engine';

const fixturesDir = path.join(repoRoot, 'test', 'fixtures', 'compose-stand-ins');
const inputsLabel = 'dev.corral.compose-stand-in.inputs';
const buildTimeoutMs = 10 * 60_000;

interface ComposeStandIn {
  /** The tag docker-compose.yml pulls. */
  image: string;
  /** Its definition under test/fixtures/compose-stand-ins/. */
  fixture: string;
  /** Build-context entries copied from the tool cache: name in the context → path. */
  toolInputs: () => Record<string, string>;
}

export const composeStandIns: readonly ComposeStandIn[] = [
  {
    image: 'postgres:16.4-bookworm',
    fixture: 'postgres',
    toolInputs: () => ({ server: toolPath('postgresServer') }),
  },
  {
    image: 'temporalio/auto-setup:1.29.1',
    fixture: 'temporal-auto-setup',
    toolInputs: () => ({ temporal: toolPath('temporal'), 'temporal-server': toolPath('temporalServer') }),
  },
  {
    image: 'temporalio/admin-tools:1.29.1',
    fixture: 'temporal-admin-tools',
    toolInputs: () => ({ temporal: toolPath('temporal') }),
  },
  {
    image: 'temporalio/ui:2.42.1',
    fixture: 'temporal-ui',
    toolInputs: () => {
      const dir = toolPath('temporalUiServer');
      return { 'ui-server': path.join(dir, 'ui-server'), config: path.join(dir, 'config') };
    },
  },
];

interface StandInBuild {
  image: string;
  /** False when an image with the same inputs was already in the engine. */
  built: boolean;
  durationMs: number;
}

/** Builds every stand-in whose inputs changed since the engine last saw it; in order, one at a time. */
export async function buildComposeStandIns(engine: DockerEngine): Promise<StandInBuild[]> {
  const results: StandInBuild[] = [];
  for (const standIn of composeStandIns) results.push(await buildStandIn(engine, standIn));
  return results;
}

async function buildStandIn(engine: DockerEngine, standIn: ComposeStandIn): Promise<StandInBuild> {
  const started = Date.now();
  const fixtureDir = path.join(fixturesDir, standIn.fixture);
  const toolInputs = standIn.toolInputs();
  const digest = inputsDigest(fixtureDir, toolInputs);
  if ((await labelOf(engine, standIn.image)) === digest) {
    return { image: standIn.image, built: false, durationMs: Date.now() - started };
  }
  const context = fs.mkdtempSync(path.join(os.tmpdir(), `corral-stand-in-${standIn.fixture}-`));
  try {
    fs.cpSync(fixtureDir, context, { recursive: true });
    for (const [name, source] of Object.entries(toolInputs)) {
      fs.cpSync(source, path.join(context, name), { recursive: true, verbatimSymlinks: true });
    }
    await engine.docker(
      ['build', '--network', 'host', '--label', `${inputsLabel}=${digest}`, '--tag', standIn.image, context],
      { timeoutMs: buildTimeoutMs },
    );
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
  return { image: standIn.image, built: true, durationMs: Date.now() - started };
}

async function labelOf(engine: DockerEngine, image: string): Promise<string | undefined> {
  try {
    const { stdout } = await engine.docker(
      ['image', 'inspect', '--format', `{{ index .Config.Labels "${inputsLabel}" }}`, image],
      { timeoutMs: 30_000 },
    );
    return stdout.trim() || undefined;
  } catch {
    return undefined; // no such image
  }
}

/**
 * The fixture's files by content, and the tool inputs by path: tool-cache paths are keyed by the
 * tool's version, so a new version is a new path.
 */
function inputsDigest(fixtureDir: string, toolInputs: Record<string, string>): string {
  const hash = createHash('sha256');
  for (const file of (fs.readdirSync(fixtureDir, { recursive: true }) as string[]).sort()) {
    const full = path.join(fixtureDir, file);
    if (!fs.statSync(full).isFile()) continue;
    hash.update(`${file}\0${(fs.statSync(full).mode & 0o111) !== 0}\0`).update(fs.readFileSync(full));
  }
  for (const [name, source] of Object.entries(toolInputs).sort()) hash.update(`${name}\0${source}\0`);
  return hash.digest('hex');
}
