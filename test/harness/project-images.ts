// The project's own images, built for real by a private Docker engine (./docker-engine.ts) from the
// checkout's ./Dockerfile and src/demo-worker/Dockerfile, unchanged, on the base-image stand-ins the
// engine imported (scripts/provision-tools.sh images). BuildKit (the buildx plugin) runs the build;
// the machine's extra CA (NODE_EXTRA_CA_CERTS: here, the TLS-intercepting proxy's in front of the npm
// registry) reaches npm as the BuildKit secret `registry_ca`, never a layer
// (docs/decisions/0030-the-project-images-built-for-real.md).
import path from 'node:path';
import { repoRoot } from '../../src/embedded/tools';
import type { DockerEngine } from './docker-engine';

export const corralImage = 'corral.test/corral:dev';
export const demoWorkerImage = 'corral.test/demo-worker:dev';

const buildTimeoutMs = 30 * 60_000;

const say = (message: string) => process.stderr.write(`[project-images ${new Date().toISOString()}] ${message}\n`);

/** The file passed as the build secret `registry_ca`: this machine's extra CA for Node, if it has one. */
export function registryCaFile(): string | undefined {
  return process.env.NODE_EXTRA_CA_CERTS || undefined;
}

/**
 * `docker build` of one of the project's Dockerfiles (from the repository root, as its header says),
 * tagged `tag`; `target` stops at a named stage. Builds use the host's network: the private engine
 * has no bridge.
 */
export async function buildProjectImage(
  engine: DockerEngine,
  dockerfile: string,
  tag: string,
  options: { target?: string } = {},
): Promise<string> {
  const ca = registryCaFile();
  const t0 = Date.now();
  await engine.docker(
    [
      'build',
      '--progress=plain',
      '--network=host',
      ...(ca ? ['--secret', `id=registry_ca,src=${ca}`] : []),
      ...(options.target ? ['--target', options.target] : []),
      '--file',
      path.join(repoRoot, dockerfile),
      '--tag',
      tag,
      repoRoot,
    ],
    { timeoutMs: buildTimeoutMs, env: { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' } },
  );
  say(`built ${tag} from ${dockerfile}${options.target ? ` (stage ${options.target})` : ''} in ${Date.now() - t0} ms`);
  return tag;
}

/** docker build (BuildKit, through buildx) of ./Dockerfile and src/demo-worker/Dockerfile, unchanged, on the local base-image stand-ins; passes the registry CA as a BuildKit secret. */
export async function buildProjectImages(engine: DockerEngine): Promise<{ corral: string; demoWorker: string }> {
  // One after the other: they share the build stage's first steps (npm 11, npm ci) through the cache.
  const corral = await buildProjectImage(engine, 'Dockerfile', corralImage);
  const demoWorker = await buildProjectImage(engine, 'src/demo-worker/Dockerfile', demoWorkerImage);
  return { corral, demoWorker };
}

/** docker save → a docker-archive file that `ctr -n k8s.io images import` takes. */
export async function saveImage(engine: DockerEngine, image: string, file: string): Promise<void> {
  await engine.docker(['save', '--output', file, image], { timeoutMs: 10 * 60_000 });
}
