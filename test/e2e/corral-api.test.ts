// The corral API as any HTTP client meets it (plain fetch, no CorralClient): bearer tokens, typed
// 4xx for bad input that name the field and write nothing, warm-capacity misses by reason, the
// loopback-only rule, and the OpenAPI document (served = committed).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunningCorralApi } from '../../src/api/corral-api';
import { CorralError } from '../../src/client/errors';
import { repoRoot } from '../../src/embedded/tools';
import { parseExposition, sampleSum } from '../../src/metrics/exposition';
import { runCorralWorker } from '../../src/workers/corral-worker';
import { demoPoolSpec, usePoolE2e, type PoolE2e } from '../harness/pool-e2e';

const token = 'corral-test-token-0123456789abcdef';
let e2e: PoolE2e;
let secured: RunningCorralApi;

before(async () => {
  e2e = await usePoolE2e();
  secured = await e2e.startApiReplica({ tokens: ['another-token-that-is-long-enough', token] });
});
after(async () => {
  await secured?.close();
  await e2e?.close();
});

async function call(method: string, route: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${secured.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Rows a refused request must not have written. */
async function registryFootprint() {
  const { rows } = await e2e.registry.db.query(
    `SELECT (SELECT count(*) FROM claims)::int AS claims, (SELECT count(*) FROM worker_transitions)::int AS transitions,
            (SELECT count(*) FROM pools)::int AS pools`,
  );
  return rows[0] as { claims: number; transitions: number; pools: number };
}

describe('authentication', () => {
  test('no token, a wrong token or a malformed header: 401 unauthorized; the OpenAPI document is public', async () => {
    for (const authorization of [undefined, 'Bearer nope', `Bearer ${token}x`, `Basic ${token}`, token]) {
      const res = await fetch(`${secured.url}/v1/pools`, {
        headers: authorization === undefined ? {} : { authorization },
      });
      assert.equal(res.status, 401, `authorization ${authorization}`);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      assert.equal(((await res.json()) as { code: string }).code, 'unauthorized');
    }
    assert.equal((await call('GET', '/v1/pools')).status, 200);
    assert.equal((await fetch(`${secured.url}/openapi.json`)).status, 200);
  });

  test('without a tokens file corral worker serves the API on loopback only, and says which setting is missing', async () => {
    await assert.rejects(
      runCorralWorker({
        temporalAddress: e2e.temporal.address,
        namespace: e2e.temporal.namespace,
        databaseUrl: e2e.registry.connectionString,
        runtime: { runtime: 'process', stateDir: e2e.stateDir },
        api: { port: 0, host: '0.0.0.0' },
      }),
      /CORRAL_API_TOKENS_FILE: the corral API listens on 0\.0\.0\.0, beyond loopback/,
    );
  });
});

describe('bad input: a typed 4xx naming the field, and nothing written', () => {
  const pool = 'api';
  before(async () => {
    assert.equal(
      (await call('PUT', `/v1/pools/${pool}`, demoPoolSpec(pool, { minIdle: 1, maxWorkers: 2 }))).status,
      200,
    );
    await e2e.waitForCounts(pool, { idle: 1, spawning: 0, activating: 0 });
  });

  const cases: {
    what: string;
    method: string;
    route: string;
    body?: unknown;
    status: number;
    code: string;
    field: string;
  }[] = [
    {
      what: 'a number for tenant',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: { tenant: 5, requestId: 'r' },
      status: 400,
      code: 'invalid_request',
      field: 'tenant',
    },
    {
      what: 'a missing requestId',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: { tenant: 'acme' },
      status: 400,
      code: 'invalid_request',
      field: 'requestId',
    },
    {
      what: 'an unknown field',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: { tenant: 'acme', requestId: 'r', priority: 'high' },
      status: 400,
      code: 'invalid_request',
      field: 'priority',
    },
    {
      what: 'a timeout that is not a duration',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: { tenant: 'acme', requestId: 'r', timeout: 'soon' },
      status: 400,
      code: 'invalid_request',
      field: 'timeout',
    },
    {
      what: 'a timeout over 10 minutes',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: { tenant: 'acme', requestId: 'r', timeout: '1h' },
      status: 400,
      code: 'invalid_request',
      field: 'timeout',
    },
    {
      what: 'a tenant of 129 characters',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: { tenant: 'x'.repeat(129), requestId: 'r' },
      status: 400,
      code: 'invalid_request',
      field: 'tenant',
    },
    {
      what: 'a body that is not JSON',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: '{"tenant": ',
      status: 400,
      code: 'invalid_request',
      field: 'body',
    },
    {
      what: 'a body over 256 KiB',
      method: 'POST',
      route: '/v1/pools/api/claims',
      body: { tenant: 'acme', requestId: 'r', pad: 'x'.repeat(300 * 1024) },
      status: 413,
      code: 'payload_too_large',
      field: 'body',
    },
    {
      what: 'an epoch given as a string',
      method: 'POST',
      route: '/v1/workers/w1/release',
      body: { epoch: '2' },
      status: 400,
      code: 'invalid_request',
      field: 'epoch',
    },
    {
      what: 'a negative epoch',
      method: 'POST',
      route: '/v1/workers/w1/release',
      body: { epoch: -1 },
      status: 400,
      code: 'invalid_request',
      field: 'epoch',
    },
    {
      what: 'a lease check without a number',
      method: 'GET',
      route: '/v1/workers/w1/lease?epoch=abc',
      status: 400,
      code: 'invalid_request',
      field: 'epoch',
    },
    {
      what: 'a pool spec below a floor',
      method: 'PUT',
      route: '/v1/pools/api-floor',
      body: demoPoolSpec('api-floor', { deadlines: { spawn: '1s' } }),
      status: 400,
      code: 'invalid_request',
      field: 'deadlines.spawn',
    },
    {
      what: 'a pool spec with an unknown field',
      method: 'PUT',
      route: '/v1/pools/api-odd',
      body: { ...demoPoolSpec('api-odd'), colour: 'blue' },
      status: 400,
      code: 'invalid_request',
      field: 'colour',
    },
    {
      what: 'a pool name that differs from the path',
      method: 'PUT',
      route: '/v1/pools/api-x',
      body: demoPoolSpec('api-y'),
      status: 400,
      code: 'invalid_request',
      field: 'name',
    },
    {
      what: 'a scale with nothing to change',
      method: 'POST',
      route: '/v1/pools/api/scale',
      body: {},
      status: 400,
      code: 'invalid_request',
      field: 'body',
    },
    {
      what: 'a state filter naming no state',
      method: 'GET',
      route: '/v1/workers?state=asleep',
      status: 400,
      code: 'invalid_request',
      field: 'state',
    },
  ];
  for (const c of cases) {
    test(`${c.what}: ${c.status} ${c.code} naming ${c.field}`, async () => {
      const before = await registryFootprint();
      const res = await call(c.method, c.route, c.body);
      assert.equal(res.status, c.status, JSON.stringify(res.body));
      assert.equal(res.body.code, c.code);
      assert.equal(res.body.field, c.field);
      assert.equal(typeof res.body.message, 'string');
      assert.deepEqual(await registryFootprint(), before, 'nothing written');
    });
  }

  test('unknown routes and workers are typed 404s', async () => {
    assert.deepEqual((await call('GET', '/v1/nowhere')).body.code, 'not_found');
    assert.deepEqual((await call('GET', '/v1/workers/nobody')).body.code, 'not_found');
    assert.deepEqual(
      (await call('POST', '/v1/pools/nopool/claims', { tenant: 'a', requestId: 'r' })).body.code,
      'pool_not_found',
    );
  });
});

describe('warm-capacity misses', () => {
  test('each claim without a warm worker is counted with its reason: no_idle_worker, at_capacity, breaker_open', async () => {
    const pool = 'misses';
    await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 0, maxWorkers: 1, onFull: 'reject' }));
    const miss = (reason: string) => e2e.metricValue('corral_warm_capacity_misses_total', { pool, reason });
    const cold = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'm-1' });
    assert.equal(cold.path, 'cold');
    assert.equal(await miss('no_idle_worker'), 1);
    await assert.rejects(
      e2e.corral.claim(pool, { tenant: 'acme', requestId: 'm-2' }),
      (err) => err instanceof CorralError && err.code === 'at_capacity',
    );
    assert.equal(await miss('at_capacity'), 1);
    await e2e.corral.release(cold);
    // What the pool workflow records when its breaker opens; claims read it from the registry.
    await e2e.pools.recordBreakerState(pool, 'open');
    await assert.rejects(
      e2e.corral.claim(pool, { tenant: 'globex', requestId: 'm-3' }),
      (err) => err instanceof CorralError && err.code === 'worker_unavailable',
    );
    assert.equal(await miss('breaker_open'), 1);
    const exposition = parseExposition(await e2e.metrics.metrics());
    assert.ok(
      sampleSum(exposition, 'corral_claim_handover_duration_seconds_count', { pool }) >= 1,
      'the hand-over activation is timed',
    );
  });
});

describe('tenant quotas', () => {
  test('a claim over the tenant quota is refused at once with quota_exceeded (429, held and quota in details), counted; another tenant is served', async () => {
    const pool = 'quota';
    await e2e.corral.applyPool(demoPoolSpec(pool, { minIdle: 2, maxWorkers: 4, maxPerTenant: 1 }));
    await e2e.waitForCounts(pool, { idle: 2 });
    const first = await e2e.corral.claim(pool, { tenant: 'acme', requestId: 'q-1' });
    await assert.rejects(
      e2e.corral.claim(pool, { tenant: 'acme', requestId: 'q-2', timeout: '20s' }),
      (err) => err instanceof CorralError && err.code === 'quota_exceeded' && err.details?.quota === 1,
    );
    assert.equal(await e2e.metricValue('corral_claim_quota_refusals_total', { pool }), 1);
    // The same through any replica, as plain HTTP: 429 and what the tenant holds.
    const refused = await call('POST', `/v1/pools/${pool}/claims`, {
      tenant: 'acme',
      requestId: 'q-3',
      timeout: '20s',
    });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, 'quota_exceeded');
    assert.deepEqual(refused.body.details, { held: 1, quota: 1 });
    const other = await e2e.corral.claim(pool, { tenant: 'globex', requestId: 'q-4' });
    assert.notEqual(other.workerId, first.workerId);
    await e2e.corral.release(first);
    await e2e.corral.release(other);
  });
});

describe('the OpenAPI document', () => {
  test('served at /openapi.json as OpenAPI 3.1, equal to the committed docs/api/openapi.json, covering every route', async () => {
    const served = (await (await fetch(`${secured.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    assert.equal(served.openapi, '3.1.0');
    const committed = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs', 'api', 'openapi.json'), 'utf8'));
    assert.deepEqual(
      served,
      committed,
      'docs/api/openapi.json is stale: run node --require tsx/cjs scripts/write-openapi.ts',
    );
    const routes = Object.entries(served.paths).flatMap(([p, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`),
    );
    for (const route of [
      'POST /v1/pools/{pool}/claims',
      'POST /v1/workers/{workerId}/release',
      'GET /v1/workers/{workerId}/lease',
      'PUT /v1/pools/{pool}',
      'GET /v1/pools',
      'GET /v1/pools/{pool}',
      'POST /v1/pools/{pool}/scale',
      'POST /v1/pools/{pool}/drain',
      'DELETE /v1/pools/{pool}',
      'GET /v1/workers',
      'GET /v1/workers/{workerId}/history',
    ]) {
      assert.ok(routes.includes(route), `${route} is documented`);
    }
  });
});
