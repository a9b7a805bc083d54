// `make test`: runs the *.test.ts files under test/ (all of them, or those whose path contains one
// of the arguments) with node's test runner, against shared servers started once for the run. It
// starts and provisions only what the selected files declare (`// corral-test-needs: …` in a file's
// header, else its directory's default: test/harness/test-needs.ts, decision 0027): a Temporal dev
// server, a Postgres, a Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, and KWOK
// with its fake nodes playing the kubelet). Every file is told what it declared; asking for an
// undeclared shared server fails that file (test/harness/shared.ts). So `make test-unit` starts
// nothing and `make test` everything. Server logs land in test-results/logs and are kept only if
// something failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { provisionTools, repoRoot } from '../src/embedded/tools';
import { startEmbeddedPostgres } from '../src/embedded/postgres';
import { startTemporalDevServer } from '../src/embedded/temporal-dev-server';
import { startKube } from './harness/kube';
import { sharedEnvNames } from './harness/shared';
import {
  declaredNeedsEnv,
  declaredNeeds,
  serverNeeds,
  toolGroupsFor,
  type ServerNeed,
  type TestNeed,
} from './harness/test-needs';

const say = (line: string) => console.log(`[test] ${line}`);

function findTestFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return findTestFiles(full);
      return entry.name.endsWith('.test.ts') ? [full] : [];
    })
    .sort();
}

async function main(): Promise<number> {
  const filters = process.argv.slice(2);
  const logs = path.join(repoRoot, 'test-results', 'logs');
  fs.rmSync(logs, { recursive: true, force: true });
  process.env.CORRAL_LOGS_DIR = logs;

  // Node's default runs one file fewer than the cores at once (one, on two). More overlaps the
  // time-skipping files' waits, but each starts a JVM the SDK gives 5 s: opt in (decision 0027).
  const filesAtOnce = process.env.CORRAL_TEST_CONCURRENCY;
  if (filesAtOnce !== undefined && !/^[1-9]\d*$/.test(filesAtOnce)) {
    throw new Error(`CORRAL_TEST_CONCURRENCY must be a positive integer, not "${filesAtOnce}"`);
  }
  const concurrency = filesAtOnce ? [`--test-concurrency=${filesAtOnce}`] : [];

  const testRoot = path.join(repoRoot, 'test');
  const files = findTestFiles(testRoot).filter(
    (f) => filters.length === 0 || filters.some((filter) => f.includes(filter)),
  );
  const needsByFile: Record<string, TestNeed[]> = {};
  for (const file of files) needsByFile[file] = declaredNeeds(file, fs.readFileSync(file, 'utf8'), testRoot);
  const needed = new Set(Object.values(needsByFile).flat());

  const groups = toolGroupsFor(needed);
  if (groups.length > 0) {
    say(`provisioning tools: ${groups.join(' ')} (a no-op on a warm cache)`);
    Object.assign(process.env, provisionTools(groups));
  }

  const servers = serverNeeds.filter((server) => needed.has(server));
  const names = {
    temporal: 'Temporal dev server',
    postgres: 'Postgres',
    kube: 'kube-apiserver + etcd + kube-scheduler + KWOK',
  };
  say(
    servers.length > 0
      ? `starting shared servers: ${servers.map((server) => names[server]).join(', ')}`
      : 'no shared servers: the selected files declare none',
  );
  const startIf = <T>(server: ServerNeed, start: () => Promise<T>): Promise<T | null> =>
    needed.has(server) ? start() : Promise.resolve(null);
  const starts = await Promise.allSettled([
    startIf('temporal', startTemporalDevServer),
    startIf('postgres', startEmbeddedPostgres),
    startIf('kube', startKube),
  ]);
  const valueOf = <T>(settled: PromiseSettledResult<T | null>): T | null =>
    settled.status === 'fulfilled' ? settled.value : null;
  const temporal = valueOf(starts[0]);
  const postgres = valueOf(starts[1]);
  const kube = valueOf(starts[2]);
  const failed = starts.find((s) => s.status === 'rejected');
  if (failed) {
    // One server would not start: stop the others before giving up.
    await Promise.allSettled([temporal?.stop(), postgres?.stop(), kube?.stop()]);
    throw failed.reason;
  }
  const started = [
    temporal && `Temporal ${temporal.address} (UI ${temporal.uiUrl})`,
    postgres && `Postgres :${postgres.port}`,
    kube && `kube ${kube.server}`,
  ].filter(Boolean);
  if (started.length > 0) say(started.join(', '));

  const env: NodeJS.ProcessEnv = { ...process.env, [declaredNeedsEnv]: JSON.stringify(needsByFile) };
  if (temporal) {
    env[sharedEnvNames.temporalAddress] = temporal.address;
    env[sharedEnvNames.temporalUiUrl] = temporal.uiUrl;
  }
  if (postgres) env[sharedEnvNames.postgresUrl] = postgres.connectionString;
  if (kube) {
    env[sharedEnvNames.kubeServer] = kube.server;
    env[sharedEnvNames.kubeToken] = kube.adminToken;
    env[sharedEnvNames.kubeCaFile] = kube.caFile;
  }
  let code = 1;
  try {
    say(`running ${files.length} test files`);
    const runner = spawn(
      process.execPath,
      [
        '--require',
        require.resolve('tsx/cjs'),
        '--require',
        require.resolve('./harness/runtime-logging'),
        '--test',
        ...concurrency,
        '--test-reporter=spec',
        ...files,
      ],
      { env, stdio: 'inherit' },
    );
    code = await new Promise<number>((resolve) => runner.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
  } finally {
    await Promise.allSettled([temporal?.stop(), postgres?.stop(), kube?.stop()]);
  }
  if (code === 0) {
    fs.rmSync(logs, { recursive: true, force: true });
  } else {
    say(`tests failed; server logs kept in ${path.relative(process.cwd(), logs)}`);
  }
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
