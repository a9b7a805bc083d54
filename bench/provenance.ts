// Where a benchmark result came from: the commit, and which files under src/ differed from it in
// the checkout that ran (the result measures the working tree, not the commit, when they do).
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { repoRoot } from '../src/embedded/tools';

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return 'unknown';
  }
}

export interface Provenance {
  commit: string;
  /** Files under src/ that differ from the commit; empty when the commit is what ran. */
  srcModified: string[];
  /** A short hash of that difference, so two results from the same dirty tree can be matched. */
  srcDiffSha: string;
}

export function provenance(): Provenance {
  return {
    commit: git(['rev-parse', 'HEAD']),
    srcModified: git(['diff', '--name-only', 'HEAD', '--', 'src']).split('\n').filter(Boolean),
    srcDiffSha: crypto
      .createHash('sha256')
      .update(git(['diff', 'HEAD', '--', 'src']))
      .digest('hex')
      .slice(0, 12),
  };
}
