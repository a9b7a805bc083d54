// The README's reference sections must not drift from the code: every PoolSpec field (with its
// default), every CLI command and every environment variable corral reads is documented.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Command } from 'commander';
import ms from 'ms';
import { parsePoolSpec } from '../../src/config/pool-spec';
import { repoRoot } from '../../src/embedded/tools';
import { buildProgram } from '../../src/cli/program';

const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

function leafPaths(value: unknown, prefix = ''): [string, unknown][] {
  if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    return Object.entries(value).flatMap(([key, child]) => leafPaths(child, prefix ? `${prefix}.${key}` : key));
  }
  return [[prefix, value]];
}

test('every PoolSpec field is in the configuration table with its default', () => {
  const config = section('Configuration');
  const parsed = parsePoolSpec({ name: 'p', runtime: 'process', image: '/bin/x', minIdle: 0, maxWorkers: 1 });
  const required = new Set(['name', 'runtime', 'image', 'minIdle', 'maxWorkers']);
  for (const [field, value] of leafPaths(parsed)) {
    const row = config
      .split('\n')
      .find((line) => new RegExp(`^\\|\\s*\`${field.replace(/\./g, '\\.')}\`\\s*\\|`).test(line));
    assert.ok(row, `README configuration table has a row for ${field}`);
    const documentedDefault = row.split('|')[2]!.trim();
    if (required.has(field)) {
      assert.equal(documentedDefault, '(required)', field);
      continue;
    }
    const isDuration =
      field.startsWith('deadlines.') ||
      ['health.interval', 'credentials.ttl', 'credentials.refreshLead', 'breaker.cooldown'].includes(field);
    const expected =
      value === null
        ? 'null'
        : typeof value === 'object'
          ? JSON.stringify(value)
          : isDuration
            ? ms(value as number)
            : String(value);
    assert.equal(documentedDefault.replace(/`/g, ''), expected, `default of ${field}`);
  }
});

test('every CLI command is in the CLI reference', () => {
  const reference = section('CLI reference');
  const commands: string[] = [];
  const walk = (command: Command, prefix: string) => {
    for (const sub of command.commands) {
      const name = `${prefix} ${sub.name()}`.trim();
      if (sub.commands.length > 0) walk(sub, name);
      else commands.push(name);
    }
  };
  walk(buildProgram(), '');
  assert.ok(commands.length >= 15, `found ${commands.join(', ')}`);
  for (const name of commands) assert.ok(reference.includes(`\`corral ${name}`), `README documents corral ${name}`);
});

test('every environment variable corral reads is in the environment table', () => {
  const environment = section('Configuration');
  const sources = ['src/cli', 'src/workers', 'src/embedded'].flatMap((dir) =>
    fs
      .readdirSync(path.join(repoRoot, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.readFileSync(path.join(repoRoot, dir, f), 'utf8')),
  );
  // process.env.X anywhere, and names passed as strings to env helpers (requiredEnv('X'), envPort('X')).
  const pattern = /process\.env\.([A-Z_]+)|(?:requiredEnv|envPort)\('([A-Z_]+)'\)/g;
  const names = new Set(sources.flatMap((text) => [...text.matchAll(pattern)].map((m) => (m[1] ?? m[2])!)));
  for (const name of ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'CORRAL_METRICS_PORT']) assert.ok(names.has(name), name);
  for (const name of names) {
    assert.match(environment, new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, 'm'), `README documents ${name}`);
  }
});
