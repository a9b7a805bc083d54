// The workflows' contract in src/common (names and signatures, CorralWorkflows) is what the
// workflow bundle registers: starters outside src/workflows start workflows by those names with
// arguments checked against those signatures, so the two must not drift apart.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { corralWorkflowTypes, type CorralWorkflows } from '../../src/common';
import * as bundle from '../../src/workflows';

// Compile-time: every declared workflow is exported under its declared name with a signature
// that accepts the declared input and answers the declared result (tsc fails here otherwise).
const declared: CorralWorkflows = bundle;

test('the workflow bundle registers exactly the workflows src/common declares', () => {
  assert.deepEqual(Object.keys(bundle).sort(), [...corralWorkflowTypes].sort());
  for (const type of corralWorkflowTypes) assert.equal(typeof declared[type], 'function', type);
});
