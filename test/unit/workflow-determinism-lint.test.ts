// The determinism fence is enforced by ESLint: workflow code may not import Node built-ins, I/O
// packages or activity implementations. These cases prove the rule fires (and stays quiet on
// what is allowed), so a config change cannot silently disable it.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { repoRoot } from '../../src/embedded/tools';

const eslint = new ESLint({ cwd: repoRoot });
const probePath = path.join(repoRoot, 'src', 'workflows', 'index.ts');

async function restrictedImportErrors(code: string): Promise<string[]> {
  // Lint the text as if it were a file under src/workflows (an existing path, so the
  // type-aware parser finds it in the project).
  const [result] = await eslint.lintText(code, { filePath: probePath });
  return result.messages
    .filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports' || m.ruleId === 'no-restricted-globals')
    .map((m) => m.message);
}

test('workflow code importing a Node built-in, an I/O package or an activity implementation is an error', async () => {
  for (const code of [
    "import fs from 'node:fs';\nexport const x = fs;\n",
    "import crypto from 'crypto';\nexport const x = crypto;\n",
    "import pg from 'pg';\nexport const x = pg;\n",
    "import { Client } from '@temporalio/client';\nexport const x = Client;\n",
    "import * as activities from '../activities';\nexport const x = activities;\n",
    'export const x = process.env.HOME;\n',
  ]) {
    const errors = await restrictedImportErrors(code);
    assert.ok(errors.length > 0, `expected a determinism lint error for:\n${code}`);
  }
});

test('workflow code may import @temporalio/workflow and types from activities', async () => {
  const code =
    "import { sleep } from '@temporalio/workflow';\nimport type * as activities from '../activities';\n" +
    'export type A = typeof activities;\nexport const s = sleep;\n';
  assert.deepEqual(await restrictedImportErrors(code), []);
});
