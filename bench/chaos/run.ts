// Chaos drills as code (issue 16, item 6; docs/decisions/0018-chaos-drills.md). Each drill starts
// its own servers (Temporal dev server, embedded Postgres, a kube-apiserver + KWOK for the kube
// drill) and real `bin/corral worker` replicas, injects its fault, measures the recovery and checks
// the invariants. Sizes are modest (pools of 3-10 workers): the machine has 2 shared cores.
//
// Usage: node --require tsx/cjs bench/chaos/run.ts [drill ...]
//   drills: replica-kill postgres-freeze temporal-restart kube-apiserver wedged-drain
//           drain-while-spawning postgres-outage (11+ minutes; only when named)
//   default: every drill but postgres-outage.
// → one JSON document on stdout; each drill's result is merged under its name into
// bench/results/chaos.json with the commit it measured. CHAOS_KILLS overrides the kill count
// (default 5; then nothing is written).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from '../../src/embedded/tools';
import { drainWhileSpawningDrill, wedgedDrainDrill } from './drains';
import { kubeApiserverDrill } from './kube-apiserver';
import { postgresDrill } from './postgres';
import { replicaKillDrill } from './replica-kill';
import { machine, round2, say } from './support';
import { temporalRestartDrill } from './temporal-restart';
import { provenance } from '../provenance';

const kills = Number(process.env.CHAOS_KILLS || 5);

const drills: Record<string, () => Promise<Record<string, unknown>>> = {
  'replica-kill': () => replicaKillDrill({ kills }),
  'postgres-freeze': () => postgresDrill({ mode: 'freeze', faultMs: 30_000 }),
  'temporal-restart': () => temporalRestartDrill(),
  'kube-apiserver': () => kubeApiserverDrill(),
  'wedged-drain': () => wedgedDrainDrill(),
  'drain-while-spawning': () => drainWhileSpawningDrill(),
  'postgres-outage': () => postgresDrill({ mode: 'stop', faultMs: 11 * 60_000 }),
};
const defaultDrills = Object.keys(drills).filter((d) => d !== 'postgres-outage');

async function main() {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((d) => !(d in drills));
  if (unknown.length > 0) {
    throw new Error(`unknown drill ${unknown.join(', ')}; drills: ${Object.keys(drills).join(' ')}`);
  }
  const which = asked.length > 0 ? asked : defaultDrills;
  // The drills run the compiled working tree: other work in progress in src/ is measured too.
  const { commit, srcModified: modified, srcDiffSha: diffSha } = provenance();
  const results: Record<string, unknown> = {};
  for (const name of which) {
    say(`drill ${name}: start (commit ${commit.slice(0, 12)})`);
    const t0 = performance.now();
    const result = await drills[name]();
    results[name] = {
      commit,
      src_modified_in_checkout: modified.length > 0 ? { files: modified, diff_sha256: diffSha } : false,
      at: new Date().toISOString(),
      machine: machine(),
      ...result,
      total_seconds: round2((performance.now() - t0) / 1000),
    };
    say(`drill ${name}: done in ${round2((performance.now() - t0) / 1000)} s`);
  }
  const file = path.join(repoRoot, 'bench', 'results', 'chaos.json');
  let merged: Record<string, unknown> = {};
  if (fs.existsSync(file)) merged = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const drillsMerged = { ...((merged.drills as Record<string, unknown> | undefined) ?? {}), ...results };
  merged = {
    benchmark: 'chaos',
    usage: 'node --require tsx/cjs bench/chaos/run.ts [drill ...]; each drill is merged under drills.<name>',
    ...merged,
    drills: drillsMerged,
    updated_at: new Date().toISOString(),
  };
  console.log(JSON.stringify({ drills: results }));
  if (process.env.CHAOS_KILLS) {
    say('CHAOS_KILLS set (development override): bench/results/chaos.json not written');
    return;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
  say(`written to ${file}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
