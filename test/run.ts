// `make test`: provisions every server, starts one Temporal dev server, one Postgres and one
// Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, and KWOK with its fake nodes
// playing the kubelet) for the whole run, and runs every *.test.ts file with node's test runner
// against them. Server logs land in test-results/logs and are kept only if something failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { provisionTools, repoRoot } from '../src/embedded/tools';
import { startEmbeddedPostgres } from '../src/embedded/postgres';
import { startTemporalDevServer } from '../src/embedded/temporal-dev-server';
import { startKube } from './harness/kube';
import { sharedEnvNames } from './harness/shared';

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

  say('provisioning tools (a no-op on a warm cache)');
  Object.assign(process.env, provisionTools(['temporal', 'test-server', 'kube', 'chromium', 'helm', 'prometheus']));

  say('starting shared servers: Temporal dev server, Postgres, kube-apiserver + etcd + kube-scheduler + KWOK');
  const [temporal, postgres, kube] = await Promise.all([
    startTemporalDevServer(),
    startEmbeddedPostgres(),
    startKube(),
  ]);
  say(`Temporal ${temporal.address} (UI ${temporal.uiUrl}), Postgres :${postgres.port}, kube ${kube.server}`);

  const files = findTestFiles(path.join(repoRoot, 'test')).filter(
    (f) => filters.length === 0 || filters.some((filter) => f.includes(filter)),
  );
  const env = {
    ...process.env,
    [sharedEnvNames.temporalAddress]: temporal.address,
    [sharedEnvNames.temporalUiUrl]: temporal.uiUrl,
    [sharedEnvNames.postgresUrl]: postgres.connectionString,
    [sharedEnvNames.kubeServer]: kube.server,
    [sharedEnvNames.kubeToken]: kube.adminToken,
    [sharedEnvNames.kubeCaFile]: kube.caFile,
  };
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
        '--test-reporter=spec',
        ...files,
      ],
      { env, stdio: 'inherit' },
    );
    code = await new Promise<number>((resolve) => runner.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
  } finally {
    await Promise.allSettled([temporal.stop(), postgres.stop(), kube.stop()]);
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
