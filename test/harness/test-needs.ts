// What a test file needs from `test/run.ts`: shared servers (one Temporal dev server, one Postgres,
// one Kubernetes control plane) and provisioned tools. Declared, not guessed (decision 0027):
//
//   // corral-test-needs: postgres kube
//
// in the file's leading comment block, or else its directory's default below. The runner starts
// and provisions only the union of what the selected files declare, and tells every file what it
// declared; `shared.ts` refuses a shared server a file did not declare, so a missing declaration
// fails loudly instead of starting a private server behind the runner's back.
import path from 'node:path';
import type { ToolGroup } from '../../src/embedded/tools';

export const serverNeeds = ['temporal', 'postgres', 'kube'] as const;
export type ServerNeed = (typeof serverNeeds)[number];
/** Tools a file runs itself (the servers' own tools come with the server need). */
export const toolNeeds = ['test-server', 'chromium', 'helm', 'prometheus'] as const;
export type ToolNeed = (typeof toolNeeds)[number];
export type TestNeed = ServerNeed | ToolNeed;

const everything: readonly TestNeed[] = [...serverNeeds, ...toolNeeds];

/**
 * Per directory under test/: unit tests need nothing; time-skipping tests run the Java test server
 * (`@temporalio/testing`), a tool, not a shared server; anything else may need everything.
 */
export const directoryDefaults: Readonly<Record<string, readonly TestNeed[]>> = {
  unit: [],
  'time-skipping': ['test-server'],
  smoke: everything,
  integration: everything,
  e2e: everything,
};

/** The environment variable through which the runner tells each test file what it declared. */
export const declaredNeedsEnv = 'CORRAL_TEST_DECLARED_NEEDS';

const headerPattern = /^\/\/\s*corral-test-needs:(.*)$/;

/** The header's needs, or null if the leading comment block has none. `none` declares nothing. */
export function headerNeeds(source: string): TestNeed[] | null {
  for (const line of source.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (!trimmed.startsWith('//')) return null; // the header ends at the first line of code
    const match = headerPattern.exec(trimmed);
    if (!match) continue;
    const words = match[1]!
      .trim()
      .split(/[\s,]+/)
      .filter(Boolean);
    if (words.length === 1 && words[0] === 'none') return [];
    for (const word of words) {
      if (!(everything as readonly string[]).includes(word)) {
        throw new Error(`unknown need "${word}" in "${trimmed}": one of ${everything.join(' ')}, or none`);
      }
    }
    if (words.length === 0) throw new Error(`"${trimmed}" names no need (write "none" for none)`);
    return [...new Set(words as TestNeed[])];
  }
  return null;
}

/** What `file` (under `testRoot`) needs: its header, else its directory's default, else everything. */
export function declaredNeeds(file: string, source: string, testRoot: string): TestNeed[] {
  const fromHeader = headerNeeds(source);
  if (fromHeader) return fromHeader;
  const directory = path.relative(testRoot, file).split(path.sep)[0]!;
  return [...(directoryDefaults[directory] ?? everything)];
}

/** The provisioning script's groups for a set of needs (the servers' binaries and the tools). */
export function toolGroupsFor(needs: Iterable<TestNeed>): ToolGroup[] {
  const set = new Set(needs);
  const groups: ToolGroup[] = [];
  if (set.has('temporal')) groups.push('temporal');
  if (set.has('test-server')) groups.push('test-server');
  if (set.has('kube')) groups.push('kube');
  for (const tool of ['chromium', 'helm', 'prometheus'] as const) if (set.has(tool)) groups.push(tool);
  return groups;
}

/**
 * Inside a test file run by `test/run.ts`: may this file use the run's shared `server`? Throws if
 * the file did not declare it. Returns false outside the runner (a file run on its own starts
 * private servers, as before).
 */
export function usesSharedServer(
  server: ServerNeed,
  env: NodeJS.ProcessEnv = process.env,
  file = process.argv[1] ?? '',
): boolean {
  const declared = env[declaredNeedsEnv];
  if (declared === undefined) return false;
  const byFile = JSON.parse(declared) as Record<string, TestNeed[]>;
  const needs = byFile[path.resolve(file)];
  if (!needs?.includes(server)) {
    throw new Error(
      `${path.basename(file)} uses the shared ${server} server but does not declare it, so test/run.ts did not ` +
        `start it: add "// corral-test-needs: ${[...(needs ?? []), server].join(' ')}" to the file's header ` +
        `(declared: ${needs ? needs.join(' ') || 'none' : 'not a file the runner selected'}; decision 0027)`,
    );
  }
  return true;
}
