// The determinism fence is enforced by ESLint as an allow-list (decision 0028): workflow code may
// import only @temporalio/workflow, @temporalio/common, src/common and its own folder, plus types
// from activities. These cases prove the rule fires (and stays quiet on what is allowed), so a
// config change cannot silently disable it.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { repoRoot } from '../../src/embedded/tools';

// Only the fence's rules, without type information (they need none): the project's full
// type-aware program would cost tens of seconds for a handful of snippets.
const fenceRules = new Set(['@typescript-eslint/no-restricted-imports', 'no-restricted-globals']);
const eslint = new ESLint({
  cwd: repoRoot,
  ruleFilter: ({ ruleId }) => fenceRules.has(ruleId),
  overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
});
const probePath = path.join(repoRoot, 'src', 'workflows', 'index.ts');

async function restrictedImportErrors(code: string, filePath = probePath): Promise<string[]> {
  // Lint the text as if it were a file under src/workflows (an existing path, so the
  // type-aware parser finds it in the project).
  const [result] = await eslint.lintText(code, { filePath });
  const fatal = result.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], 'the snippet parses');
  return result.messages.filter((m) => m.ruleId !== null && fenceRules.has(m.ruleId)).map((m) => m.message);
}

test('workflow code importing a Node built-in, an I/O package or an activity implementation is an error', async () => {
  for (const code of [
    "import fs from 'node:fs';\nexport const x = fs;\n",
    "import crypto from 'crypto';\nexport const x = crypto;\n",
    "import pg from 'pg';\nexport const x = pg;\n",
    "import { Client } from '@temporalio/client';\nexport const x = Client;\n",
    "import * as activities from '../activities';\nexport const x = activities;\n",
    'export const x = process.env.HOME;\n',
    // Not on the allow-list, even though nothing here does I/O: lower layers and other packages.
    "import { z } from 'zod';\nexport const x = z;\n",
    "import { parsePoolSpec } from '../config/pool-spec';\nexport const x = parsePoolSpec;\n",
    "import type { PoolStore } from '../registry/pool-store';\nexport type X = PoolStore;\n",
    "import type { WorkerPodSpecInput } from '../runtime/worker-pod-spec';\nexport type X = WorkerPodSpecInput;\n",
    "import { startWorkerLifecycle } from '../client/worker-workflows';\nexport const x = startWorkerLifecycle;\n",
    "import { workerStates } from '../common/states';\nexport const x = workerStates;\n",
    "import { ms } from 'ms';\nexport const x = ms;\n",
  ]) {
    const errors = await restrictedImportErrors(code);
    assert.ok(errors.length > 0, `expected a determinism lint error for:\n${code}`);
  }
});

test('workflow code may import the allow-list: Temporal, src/common, its own folder, types from activities', async () => {
  const code =
    "import { sleep } from '@temporalio/workflow';\nimport type * as activities from '../activities';\n" +
    "import type { PoolActivities } from '../activities/pool-activities';\n" +
    "import type { SearchAttributeUpdatePair } from '@temporalio/common';\n" +
    "import { workerStates } from '../common';\nimport { poolWorkflow } from './pool/pool';\n" +
    'export type A = typeof activities | PoolActivities | SearchAttributeUpdatePair;\n' +
    'export const s = [sleep, workerStates, poolWorkflow];\n';
  assert.deepEqual(await restrictedImportErrors(code), []);
});

test('src/common, in every workflow bundle, imports only Temporal and its own files', async () => {
  const commonPath = path.join(repoRoot, 'src', 'common', 'index.ts');
  for (const code of [
    "import { z } from 'zod';\nexport const x = z;\n",
    "import type { PoolStore } from '../registry/pool-store';\nexport type X = PoolStore;\n",
    "import type { PoolActivities } from '../activities/pool-activities';\nexport type X = PoolActivities;\n",
    "import { poolWorkflow } from '../workflows/pool/pool';\nexport const x = poolWorkflow;\n",
    'export const x = process.env.HOME;\n',
  ]) {
    assert.ok((await restrictedImportErrors(code, commonPath)).length > 0, `expected a lint error for:\n${code}`);
  }
  const allowed =
    "import { defineSignal } from '@temporalio/workflow';\nimport { SearchAttributeType } from '@temporalio/common';\n" +
    "import { workerStates } from './states';\nexport const x = [defineSignal, SearchAttributeType, workerStates];\n";
  assert.deepEqual(await restrictedImportErrors(allowed, commonPath), []);
});
