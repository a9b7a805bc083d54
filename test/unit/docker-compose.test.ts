// No Docker engine runs here, so the Compose file is checked statically: the Compose
// Specification schema (as bundled by dclint), dclint's rules, and image pinning, including the
// base images of the Dockerfile that the corral worker service builds.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { DCLinter } from 'dclint';
import { parse } from 'yaml';
import { repoRoot } from '../../src/embedded/tools';

const linter = new DCLinter({ rules: {}, quiet: false, debug: false, exclude: [] });

function lint(file: string): string[] {
  const [result] = linter.lintFiles([file], false);
  return result.messages.map((m: { rule: string; message: string }) => `${m.rule}: ${m.message}`);
}

function lintText(text: string): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-compose-'));
  const file = path.join(dir, 'docker-compose.yml');
  fs.writeFileSync(file, text);
  try {
    return lint(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `name:tag` with a concrete tag: not absent, not a moving tag like latest. */
function isPinned(image: string): boolean {
  const tag = /:([^/:]+)$/.exec(image)?.[1];
  return tag !== undefined && !['latest', 'stable', 'edge', 'main', 'nightly'].includes(tag) && /\d/.test(tag);
}

test('docker-compose.yml conforms to the Compose Specification and passes every dclint rule', () => {
  assert.deepEqual(lint(path.join(repoRoot, 'docker-compose.yml')), []);
});

test('every image in docker-compose.yml, and every base image the build uses, is pinned to a version', () => {
  const compose = parse(fs.readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { image?: string; build?: { context: string; dockerfile: string } }>;
  };
  const expected = ['corral-worker', 'postgres', 'temporal', 'temporal-search-attributes', 'temporal-ui'];
  assert.deepEqual(Object.keys(compose.services).sort(), expected);
  for (const [name, service] of Object.entries(compose.services)) {
    if (service.image) {
      assert.ok(isPinned(service.image), `${name} uses unpinned image ${service.image}`);
      continue;
    }
    assert.ok(service.build, `${name} has neither image nor build`);
    const dockerfile = fs.readFileSync(path.join(repoRoot, service.build.context, service.build.dockerfile), 'utf8');
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gim)].map((m) => m[1]);
    assert.ok(bases.length > 0, `${service.build.dockerfile} has no FROM`);
    for (const base of bases) assert.ok(isPinned(base), `${service.build.dockerfile} builds FROM unpinned ${base}`);
  }
});

test('the checks fail on an unpinned image and on a file that breaks the schema', () => {
  const unpinned = lintText('name: x\nservices:\n  db:\n    image: postgres\n');
  assert.ok(
    unpinned.some((m) => m.startsWith('service-image-require-explicit-tag')),
    unpinned.join('\n'),
  );
  assert.equal(isPinned('postgres:latest'), false);
  assert.equal(isPinned('postgres'), false);
  assert.equal(isPinned('postgres:16.4-bookworm'), true);

  const invalid = lintText('name: x\nservices:\n  db:\n    image: postgres:16.4\n    restart: [1, 2]\n');
  assert.ok(
    invalid.some((m) => m.startsWith('invalid-schema')),
    invalid.join('\n'),
  );
});
