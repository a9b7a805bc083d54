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
      [
        'health.interval',
        'credentials.ttl',
        'credentials.refreshLead',
        'breaker.cooldown',
        'warmCapacity.coolDown',
      ].includes(field);
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

test('every folder under src/ is in the layout table, and every path the table names exists', () => {
  const layout = section('Layout');
  const rows = layout.split('\n').filter((line) => line.startsWith('| `'));
  const named = new Set(rows.flatMap((row) => [...row.split('|')[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)));
  const hasFiles = (dir: string): boolean =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .some((e) => e.isFile() || (e.isDirectory() && hasFiles(path.join(dir, e.name))));
  const folders = fs
    .readdirSync(path.join(repoRoot, 'src'), { withFileTypes: true })
    .filter((e) => e.isDirectory() && hasFiles(path.join(repoRoot, 'src', e.name)))
    .map((e) => `src/${e.name}/`);
  assert.ok(folders.length >= 10, `found ${folders.join(', ')}`);
  const missing = folders.filter((folder) => !named.has(folder));
  assert.deepEqual(missing, [], 'src/ folders missing from the README layout table');
  const stale = [...named].filter((p) => !fs.existsSync(path.join(repoRoot, p)));
  assert.deepEqual(stale, [], 'paths in the README layout table that do not exist');
});

/** GitHub's anchor for each heading of a Markdown text (lower case, punctuation dropped, spaces as hyphens). */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const [, title] of withoutCode(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = title!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    let anchor = base;
    for (let n = 1; anchors.has(anchor); n++) anchor = `${base}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
}

/** The text with fenced code blocks and inline code blanked out (links there are not links). */
function withoutCode(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

function markdownFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md'))
    .map((f) => path.join(dir, f));
}

/** The relative links of a Markdown file (`file`, its text) that do not resolve to a file, or to a heading. */
function brokenLinks(file: string, text: string): string[] {
  const broken: string[] = [];
  for (const [, target] of withoutCode(text).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue; // http:, https:, mailto:
    const [rawPath, anchor] = target!.split('#', 2) as [string, string | undefined];
    const resolved = rawPath === '' ? file : path.resolve(path.dirname(file), decodeURIComponent(rawPath));
    const where = `${path.relative(repoRoot, file)}: ${target}`;
    if (resolved !== file && !fs.existsSync(resolved)) broken.push(`${where} (no such file)`);
    else if (anchor && resolved.endsWith('.md')) {
      const headings = anchorsOf(resolved === file ? text : fs.readFileSync(resolved, 'utf8'));
      if (!headings.has(anchor)) broken.push(`${where} (no heading #${anchor})`);
    }
  }
  return broken;
}

test('every relative link in README.md and docs/**/*.md resolves, anchors included', () => {
  const files = [path.join(repoRoot, 'README.md'), ...markdownFiles(path.join(repoRoot, 'docs'))];
  assert.ok(files.length >= 25, `found ${files.length} Markdown files`);
  const links = files.flatMap((file) => [...withoutCode(fs.readFileSync(file, 'utf8')).matchAll(/\]\(/g)]);
  assert.ok(links.length >= 20, `found ${links.length} links`);
  assert.deepEqual(
    files.flatMap((file) => brokenLinks(file, fs.readFileSync(file, 'utf8'))),
    [],
  );
});

test('the link checker catches a missing file and a missing heading, and ignores code and URLs', () => {
  const file = path.join(repoRoot, 'docs', 'probe.md');
  const text = [
    '# Probe',
    '## The fence',
    'Good: [a](architecture.md#the-fence), [b](decisions/0003-registry-fence.md), [c](#the-fence), [d](https://x.y/z).',
    'Bad: [e](decisions/0000-nothing.md), [f](architecture.md#no-such-heading), [g](#nowhere).',
    '`[h](not-a-link.md)`',
    '```',
    '[i](also-not-a-link.md)',
    '```',
  ].join('\n');
  assert.deepEqual(brokenLinks(file, text), [
    'docs/probe.md: decisions/0000-nothing.md (no such file)',
    'docs/probe.md: architecture.md#no-such-heading (no heading #no-such-heading)',
    'docs/probe.md: #nowhere (no heading #nowhere)',
  ]);
  assert.ok(
    anchorsOf('## Running on Temporal Cloud / a TLS cluster\n').has('running-on-temporal-cloud--a-tls-cluster'),
  );
  assert.ok(anchorsOf('## The fence\n## The fence\n').has('the-fence-1'));
});
