// Replays every committed workerLifecycle and pool history against the current workflow code. A change
// that would make a running worker's workflow non-deterministic fails here, in CI, instead of
// in production; such changes need `patched()` (see decision 0005). The histories without a
// prefix were recorded before registry claims (claims as workflow updates) and can no longer be
// recorded: keep them. `registry-*` ones are recorded by the time-skipping tests of today's code.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { historyFromJsonText } from '../harness/history-files';
import { historiesDir } from '../harness/lifecycle-env';
import { corralWorkflowBundle } from '../harness/workflow-bundle';

const files = fs.existsSync(historiesDir) ? fs.readdirSync(historiesDir).filter((f) => f.endsWith('.json')) : [];

test('the committed histories cover the lifecycle paths', () => {
  for (const name of [
    'life-hot-idle-reuse',
    'credential-refresh',
    'respawn-then-ready',
    'lost-after-respawns',
    'health-lost',
    'fence-miss',
    'cancel-during-spawn',
    'long-life-run-2',
    'cold-claim',
    'abandoned-cold-claim',
    'pool-fill-drain',
    'pool-breaker',
    // Claims decided by the registry (`corral-registry-claims`).
    'registry-claim-release',
    'registry-coalesced',
    'registry-cold-claim',
    'registry-credential-refresh',
    'registry-refresh-race',
    'registry-respawn-then-ready',
    'registry-lost-after-respawns',
    'registry-health-lost',
    'registry-fence-miss',
    'registry-cancel-during-spawn',
    'registry-long-life-run-2',
    'api-cold-claim',
    // Prompt drains and outage-proof retries (`corral-resilience`).
    'resilient-drain-while-starting',
    'resilient-drain-waits-for-worker',
    'resilient-registry-outage',
    'pool-resilient-drain',
  ]) {
    assert.ok(files.includes(`${name}.json`), `test/histories/${name}.json is committed`);
  }
});

for (const file of files) {
  test(`replays ${file} deterministically`, async () => {
    const history = historyFromJsonText(fs.readFileSync(path.join(historiesDir, file), 'utf8'));
    await Worker.runReplayHistory({ workflowBundle: await corralWorkflowBundle() }, history);
  });
}
