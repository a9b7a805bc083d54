// The exposition-format parser the tests read scrapes with, and the merge that appends the
// Temporal SDK's metrics to corral's without declaring any family twice.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { mergeExposition, parseExposition, sampleSum } from '../../src/metrics/exposition';

test('parses prom-client output: families, labels with escapes, histogram samples, +Inf', async () => {
  const register = new Registry();
  const counter = new Counter({ name: 'c_total', help: 'a counter', labelNames: ['k'], registers: [register] });
  counter.inc({ k: 'plain' }, 2);
  counter.inc({ k: 'with "quotes", a \\ and a\nnewline' });
  const histogram = new Histogram({ name: 'h_seconds', help: 'h', buckets: [0.1, 1], registers: [register] });
  histogram.observe(0.5);
  const m = parseExposition(await register.metrics());
  assert.deepEqual(m.families.get('c_total'), { name: 'c_total', help: 'a counter', type: 'counter' });
  assert.equal(m.families.get('h_seconds')?.type, 'histogram');
  assert.equal(sampleSum(m, 'c_total', { k: 'plain' }), 2);
  assert.equal(sampleSum(m, 'c_total', { k: 'with "quotes", a \\ and a\nnewline' }), 1);
  assert.equal(sampleSum(m, 'c_total'), 3);
  assert.equal(sampleSum(m, 'h_seconds_bucket', { le: '+Inf' }), 1);
  assert.equal(sampleSum(m, 'h_seconds_bucket', { le: '0.1' }), 0);
  assert.equal(sampleSum(m, 'h_seconds_count'), 1);
});

test('merge: the SDK text is appended; a family corral declares too is left out with all its samples', () => {
  const corral = [
    '# HELP corral_workers live workers',
    '# TYPE corral_workers gauge',
    'corral_workers{pool="a",image="i",state="idle"} 1',
    '# HELP clash_seconds corral one',
    '# TYPE clash_seconds histogram',
    'clash_seconds_count 1',
    '',
  ].join('\n');
  const sdk = [
    '# HELP temporal_request RPCs',
    '# TYPE temporal_request counter',
    'temporal_request{operation="Poll"} 4',
    '# HELP clash_seconds sdk one',
    '# TYPE clash_seconds histogram',
    'clash_seconds_bucket{le="+Inf"} 9',
    'clash_seconds_sum 9',
    'clash_seconds_count 9',
    '# HELP temporal_num_pollers pollers',
    '# TYPE temporal_num_pollers gauge',
    'temporal_num_pollers 2',
  ].join('\n');
  const { text, dropped } = mergeExposition(corral, sdk);
  assert.deepEqual(dropped, ['clash_seconds']);
  const m = parseExposition(text);
  assert.equal(m.families.get('clash_seconds')?.help, 'corral one');
  assert.equal(sampleSum(m, 'clash_seconds_count'), 1, "corral's samples only");
  assert.equal(sampleSum(m, 'clash_seconds_bucket'), 0);
  assert.equal(sampleSum(m, 'temporal_request', { operation: 'Poll' }), 4);
  assert.equal(sampleSum(m, 'temporal_num_pollers'), 2);
  const declared = text
    .split('\n')
    .filter((l) => l.startsWith('# TYPE '))
    .map((l) => l.split(' ')[2]);
  assert.equal(new Set(declared).size, declared.length, 'every family declared once');
  assert.ok(text.endsWith('\n'));
});

test('merge: nothing to add leaves corral text as it is', () => {
  assert.equal(mergeExposition('# TYPE a counter\na 1\n', '').text, '# TYPE a counter\na 1\n');
});
