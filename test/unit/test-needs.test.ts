// The runner's declared needs (test/harness/test-needs.ts, decision 0027): how a file declares
// them, what each directory defaults to, that the fast loop's files declare no shared server, and
// that a shared server a file did not declare fails it instead of starting one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../src/embedded/tools';
import { usePostgresDatabase, useTemporalDevServer, useKube } from '../harness/shared';
import {
  declaredNeeds,
  declaredNeedsEnv,
  headerNeeds,
  serverNeeds,
  toolGroupsFor,
  usesSharedServer,
} from '../harness/test-needs';

const testRoot = path.join(repoRoot, 'test');

function testFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => path.join(dir, f));
}

test('a header declares needs; "none" declares nothing; a header ends at the first line of code', () => {
  assert.deepEqual(headerNeeds('// what this tests\n// corral-test-needs: postgres kube\nimport x from "y";\n'), [
    'postgres',
    'kube',
  ]);
  assert.deepEqual(headerNeeds('// corral-test-needs: temporal, test-server\n'), ['temporal', 'test-server']);
  assert.deepEqual(headerNeeds('// corral-test-needs: none\n'), []);
  assert.equal(headerNeeds('// a comment only\nimport x from "y";\n'), null);
  assert.equal(headerNeeds('import x from "y";\n// corral-test-needs: postgres\n'), null);
  assert.throws(() => headerNeeds('// corral-test-needs: postgress\n'), /unknown need "postgress"/);
  assert.throws(() => headerNeeds('// corral-test-needs:\n'), /names no need/);
});

test('without a header a file gets its directory default; a header overrides it', () => {
  const at = (dir: string) => path.join(testRoot, dir, 'x.test.ts');
  assert.deepEqual(declaredNeeds(at('unit'), '', testRoot), []);
  assert.deepEqual(declaredNeeds(at('time-skipping'), '', testRoot), ['test-server']);
  for (const dir of ['integration', 'e2e', 'somewhere-new']) {
    assert.deepEqual(declaredNeeds(at(dir), '', testRoot).slice(0, 3), [...serverNeeds], dir);
  }
  assert.deepEqual(declaredNeeds(at('e2e'), '// corral-test-needs: postgres\n', testRoot), ['postgres']);
});

test('every test file declares known needs; the fast loop (unit, time-skipping) declares no shared server', () => {
  const files = testFiles(testRoot);
  assert.ok(files.length > 50, `found ${files.length} test files`);
  for (const file of files) {
    const needs = declaredNeeds(file, fs.readFileSync(file, 'utf8'), testRoot);
    const fast = /[/\\](unit|time-skipping)[/\\]/.test(path.relative(repoRoot, file));
    if (fast) {
      const servers = needs.filter((need) => (serverNeeds as readonly string[]).includes(need));
      assert.deepEqual(servers, [], `${path.relative(repoRoot, file)} is in the fast loop but declares ${servers}`);
    }
  }
  // Everything (no filter, `make test`): every server's tools and every tool, in the script's order.
  assert.deepEqual(toolGroupsFor([...serverNeeds, 'test-server', 'chromium', 'helm', 'prometheus']), [
    'temporal',
    'test-server',
    'kube',
    'chromium',
    'helm',
    'prometheus',
  ]);
});

test('under the runner, a shared server the file did not declare is refused; outside it, none is shared', () => {
  const file = path.join(testRoot, 'unit', 'x.test.ts');
  const env = { [declaredNeedsEnv]: JSON.stringify({ [file]: ['postgres'] }) };
  assert.equal(usesSharedServer('postgres', env, file), true);
  assert.throws(
    () => usesSharedServer('kube', env, file),
    /x\.test\.ts uses the shared kube server but does not declare it.*corral-test-needs: postgres kube/,
  );
  assert.throws(() => usesSharedServer('temporal', env, path.join(testRoot, 'unit', 'y.test.ts')), /not a file/);
  assert.equal(usesSharedServer('kube', {}, file), false);
});

test('this file declares no server: asking for one under the runner fails at once, before anything starts', async () => {
  const saved = process.env[declaredNeedsEnv];
  process.env[declaredNeedsEnv] = JSON.stringify({ [path.resolve(process.argv[1] ?? '')]: [] });
  try {
    await assert.rejects(usePostgresDatabase(), /uses the shared postgres server but does not declare it/);
    await assert.rejects(useTemporalDevServer(), /uses the shared temporal server but does not declare it/);
    await assert.rejects(useKube(), /uses the shared kube server but does not declare it/);
  } finally {
    if (saved === undefined) delete process.env[declaredNeedsEnv];
    else process.env[declaredNeedsEnv] = saved;
  }
});
