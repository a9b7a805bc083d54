// docs/architecture.md names code as `file`:`symbol` hops; every one must still be true: the file
// exists and defines the symbol (a function, const, class, method of that class, object-literal
// method, HTTP route, or, in a migration, the SQL function whose current definition it holds).
// Every repository path the page names in backticks must exist too. Code moves: this test says
// which line of the map to fix.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../src/embedded/tools';

const architecturePath = path.join(repoRoot, 'docs', 'architecture.md');

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const modifiers = '(?:(?:export|default|public|private|protected|static|async|readonly|override|get|set)\\s+)*';

/** A method or property function defined at the start of a line (class bodies, object literals). */
function memberPattern(name: string): RegExp {
  const n = escape(name);
  return new RegExp(
    `^\\s*${modifiers}\\*?${n}\\s*(?:<[^>\\n]*>)?\\((?:.|\\n)*?\\)[^;{=]*\\{|^\\s*${modifiers}${n}\\s*[:=]`,
    'm',
  );
}

function upSection(sql: string): string {
  const down = sql.indexOf('-- Down Migration');
  return down < 0 ? sql : sql.slice(0, down);
}

/** Why `symbol` is not defined in `file` (repository-relative), or null if it is. */
export function hopProblem(file: string, symbol: string, root = repoRoot): string | null {
  const full = path.join(root, file);
  if (!fs.existsSync(full) || !fs.statSync(full).isFile()) return `${file} does not exist`;
  const source = fs.readFileSync(full, 'utf8');

  if (file.endsWith('.sql')) {
    const definition = new RegExp(`CREATE\\s+(?:OR\\s+REPLACE\\s+)?FUNCTION\\s+${escape(symbol)}\\s*\\(`, 'i');
    if (!definition.test(upSection(source))) return `${file} does not define SQL function ${symbol}`;
    // The named migration must hold the current definition: no later one replaces or drops it.
    const dir = path.dirname(full);
    const later = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.sql') && f > path.basename(full))
      .filter((f) =>
        new RegExp(`FUNCTION\\s+${escape(symbol)}\\s*\\(`, 'i').test(
          upSection(fs.readFileSync(path.join(dir, f), 'utf8')),
        ),
      );
    return later.length > 0 ? `${symbol} is redefined or dropped by a later migration: ${later.join(', ')}` : null;
  }

  const route = /^(GET|POST|PUT|PATCH|DELETE) (\/\S*)$/.exec(symbol);
  if (route) {
    const call = new RegExp(`\\.${route[1]!.toLowerCase()}\\(\\s*['"\`]${escape(route[2]!)}['"\`]`);
    return call.test(source) ? null : `${file} registers no route ${symbol}`;
  }

  const [owner, member] = symbol.includes('.') ? symbol.split('.', 2) : [null, symbol];
  if (!member || !/^[A-Za-z_$][\w$]*$/.test(member) || (owner !== null && !/^[A-Za-z_$][\w$]*$/.test(owner))) {
    return `"${symbol}" is not a name, Class.method, route or SQL function`;
  }
  if (owner !== null) {
    // The class body: from its declaration to the next closing brace at the start of a line.
    const start = new RegExp(`^(?:export\\s+)?(?:default\\s+)?(?:abstract\\s+)?class\\s+${escape(owner)}\\b`, 'm').exec(
      source,
    );
    if (!start) return `${file} defines no class ${owner}`;
    const rest = source.slice(start.index);
    const end = rest.search(/^\}/m);
    const body = end < 0 ? rest : rest.slice(0, end);
    return memberPattern(member).test(body) ? null : `class ${owner} in ${file} has no method ${member}`;
  }
  const n = escape(member);
  const declaration = new RegExp(
    `(?:^|[\\s;(])(?:function\\s*\\*?\\s*${n}\\s*[<(]|(?:const|let|var)\\s+${n}\\s*[=:]|class\\s+${n}\\b|(?:interface|type|enum)\\s+${n}\\b)`,
    'm',
  );
  if (declaration.test(source) || memberPattern(member).test(source)) return null;
  return `${file} does not define ${member}`;
}

/** Every `file`:`symbol` hop in a Markdown text. */
export function hopsIn(markdown: string): { file: string; symbol: string }[] {
  return [...markdown.matchAll(/`([\w./-]+\.\w+)`:`([^`]+)`/g)].map((m) => ({ file: m[1]!, symbol: m[2]! }));
}

const architecture = fs.readFileSync(architecturePath, 'utf8');

test('the map names its hops: the life of a claim from the route to the workflow, and of a worker', () => {
  const hops = hopsIn(architecture);
  assert.ok(hops.length >= 40, `found ${hops.length} hops`);
  const named = new Set(hops.map((h) => `${h.file}:${h.symbol}`));
  const claimRoute = [
    'src/api/api-server.ts:POST /v1/pools/:pool/claims',
    'src/api/claim-service.ts:ClaimService.claim',
    'src/registry/claim-store.ts:ClaimStore.claim',
    'src/runtime/worker-protocol-client.ts:postActivation',
    'src/api/claim-service.ts:ClaimService.acknowledge',
    'src/api/workflow-notifier.ts:WorkflowNotifier.workerChanged',
    'src/workflows/worker-lifecycle/lifecycle-machine.ts:WorkerLifecycle.adoptRegistryChange',
  ];
  for (const hop of claimRoute) assert.ok(named.has(hop), `docs/architecture.md names ${hop}`);
  assert.ok(
    hops.some((h) => h.file.startsWith('src/registry/migrations/') && h.symbol === 'corral_claim'),
    'the claim names the migration that defines corral_claim',
  );
});

test('every hop in docs/architecture.md names an existing file that defines the symbol', () => {
  const problems = hopsIn(architecture)
    .map(({ file, symbol }) => hopProblem(file, symbol))
    .filter((problem): problem is string => problem !== null);
  assert.deepEqual(problems, []);
});

test('every repository path docs/architecture.md names exists', () => {
  const paths = [...architecture.matchAll(/`((?:src|test|bench|deploy|docs|scripts)\/[\w./-]*)`/g)].map((m) => m[1]!);
  assert.ok(paths.length > 20, `found ${paths.length} paths`);
  const missing = paths.filter((p) => !fs.existsSync(path.join(repoRoot, p)));
  assert.deepEqual(missing, []);
});

test('the checker fails on a typo, a missing file, a method of another class and a superseded migration', () => {
  const typos: [string, string][] = [
    ['src/api/claim-service.ts', 'ClaimService.claimm'],
    ['src/api/claim-service.ts', 'ClaimService.reclaimUnacknowledged'], // ClaimStore's, not ClaimService's
    ['src/api/claim-servise.ts', 'ClaimService.claim'],
    ['src/api/claim-service.ts', 'ClaimServise.claim'],
    ['src/runtime/worker-protocol-client.ts', 'postActivaton'],
    ['src/registry/migrations/1732500000000_registry-claims.sql', 'corral_claimm'],
    ['src/registry/migrations/1732300000000_worker-registry.sql', 'corral_claim'],
    ['src/api/api-server.ts', 'POST /v1/pools/:pool/claim'],
    ['src/api/api-server.ts', 'GET /v1/pools/:pool/claims'],
    ['src/workflows/pool/pool.ts', 'refil'],
  ];
  for (const [file, symbol] of typos) assert.notEqual(hopProblem(file, symbol), null, `${file}:${symbol} must fail`);

  // A function dropped by a later migration is not current there any more.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-hops-'));
  try {
    const dir = path.join(root, 'migrations');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, '1_a.sql'),
      '-- Up Migration\nCREATE FUNCTION corral_x(p int) RETURNS int AS $$ SELECT 1 $$;\n',
    );
    assert.equal(hopProblem('migrations/1_a.sql', 'corral_x', root), null);
    fs.writeFileSync(path.join(dir, '2_b.sql'), '-- Up Migration\nDROP FUNCTION corral_x(int);\n-- Down Migration\n');
    assert.match(hopProblem('migrations/1_a.sql', 'corral_x', root) ?? '', /later migration: 2_b\.sql/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }

  // And passes on each kind of definition it claims to understand.
  for (const [file, symbol] of [
    ['src/api/claim-service.ts', 'ClaimService.claim'], // a class method
    ['src/api/claim-service.ts', 'ClaimService.handOver'], // a private one
    ['src/activities/runtime-activities.ts', 'spawnWorkerPod'], // an object-literal method
    ['src/api/api-schemas.ts', 'claimBody'], // a const
    ['src/workflows/pool/pool.ts', 'refill'], // an inner function
    ['src/api/api-server.ts', 'POST /v1/pools/:pool/claims'],
  ] as const) {
    assert.equal(hopProblem(file, symbol), null, `${file}:${symbol}`);
  }
});
