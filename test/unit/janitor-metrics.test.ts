import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createJanitorMetrics } from '../../src/metrics/janitor-metrics';
import { reconcileOutcomes, strandedResourceKinds } from '../../src/common';

test('every kind × outcome series starts at 0, and a reconciliation counts once under its own labels', async () => {
  const register = new Registry();
  const metrics = createJanitorMetrics(register);
  const values = async () =>
    new Map(
      (await register.getSingleMetric('corral_stranded_resources_reconciled_total')!.get()).values.map((v) => [
        `${v.labels.kind}/${v.labels.outcome}`,
        v.value,
      ]),
    );

  const initial = await values();
  assert.equal(initial.size, strandedResourceKinds.length * reconcileOutcomes.length);
  assert.ok([...initial.values()].every((v) => v === 0));

  metrics.recordReconciled({ kind: 'pod', outcome: 'deleted' });
  metrics.recordReconciled({ kind: 'pod', outcome: 'deleted' });
  metrics.recordReconciled({ kind: 'row', outcome: 'kept' });
  const after = await values();
  assert.equal(after.get('pod/deleted'), 2);
  assert.equal(after.get('row/kept'), 1);
  assert.equal(after.get('secret/deleted'), 0);
  assert.equal(after.size, initial.size, 'no new series appear');
});
