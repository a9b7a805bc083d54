// The corral API: HTTP + JSON, served by every `corral worker` (stateless: any replica answers).
// Fastify routes with zod schemas (fastify-type-provider-zod): every request is validated before
// a handler runs — unknown fields, wrong types and oversized bodies are a typed 4xx naming the
// field, and nothing is written. The OpenAPI 3.1 document is generated from the same schemas
// (@fastify/swagger) and served at /openapi.json (committed as docs/api/openapi.json).
// docs/decisions/0012-registry-claims-and-the-corral-api.md
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import ms from 'ms';
import { CorralError } from '../client/errors';
import { janitorRetention } from '../client/janitor-schedule';
import type { WorkerState } from '../common';
import { RegistryUnavailableError } from '../registry/errors';
import type { WorkerLifecycleStore, WorkerSnapshot } from '../registry/lifecycle-store';
import { bearerTokenMatcher } from './api-auth';
import * as api from './api-schemas';
import type { ClaimService } from './claim-service';
import type { PoolService } from './pool-service';

/** Larger bodies are refused before they are parsed (a PoolSpec with its env is the largest). */
export const maxBodyBytes = 256 * 1024;
export const apiVersion = '1';

export interface CorralApiDeps {
  claims: ClaimService;
  pools: PoolService;
  workers: WorkerLifecycleStore;
  /** Bearer tokens; null serves without authentication (the caller makes sure it is loopback only). */
  tokens: string[] | null;
  /**
   * The janitor's retention period (`CORRAL_RETENTION`, default 7 days): a history request for a
   * worker with no row names it, since a worker that ended longer ago than this has no trail left.
   */
  retentionMs?: number;
  log?: (line: string) => void;
}

const errors = {
  400: api.errorSchema,
  401: api.errorSchema,
  404: api.errorSchema,
  409: api.errorSchema,
  410: api.errorSchema,
  413: api.errorSchema,
  500: api.errorSchema,
  503: api.errorSchema,
  504: api.errorSchema,
};

function workerView(worker: WorkerSnapshot): api.WorkerResponse {
  return {
    ...worker,
    credentialExpiresAt: worker.credentialExpiresAt?.toISOString() ?? null,
    stateSince: worker.stateSince.toISOString(),
    createdAt: worker.createdAt.toISOString(),
    updatedAt: worker.updatedAt.toISOString(),
  };
}

/** A zod issue as `{field, message}`: unknown keys are named, paths are dotted. */
function fieldOf(
  issue: { instancePath?: string; message?: string; params?: Record<string, unknown> },
  context?: string,
) {
  const path = (issue.instancePath ?? '').split('/').filter(Boolean);
  const keys = issue.params?.keys;
  if (Array.isArray(keys) && keys.length > 0) {
    return { field: [...path, String(keys[0])].join('.'), message: 'is not a known field' };
  }
  const field = path.length > 0 ? path.join('.') : (context ?? 'body');
  return { field, message: issue.message ?? 'is invalid' };
}

export function toErrorBody(err: unknown, log?: (line: string) => void): { status: number; body: api.ErrorBody } {
  if (err instanceof CorralError) return { status: err.status, body: err.toBody() };
  if (hasZodFastifySchemaValidationErrors(err)) {
    const context = (err as { validationContext?: string }).validationContext;
    const { field, message } = fieldOf(err.validation[0]!, context);
    return { status: 400, body: { code: 'invalid_request', message: `${field}: ${message}`, field } };
  }
  const fastifyError = err as FastifyError;
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        body: { code: 'payload_too_large', message: `the body is larger than ${maxBodyBytes} bytes`, field: 'body' },
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 400,
        body: { code: 'invalid_request', message: 'content-type must be application/json', field: 'content-type' },
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, body: { code: 'invalid_request', message: 'the body is not JSON', field: 'body' } };
  }
  if (fastifyError.statusCode === 400 && err instanceof SyntaxError) {
    return { status: 400, body: { code: 'invalid_request', message: 'the body is not valid JSON', field: 'body' } };
  }
  if (err instanceof RegistryUnavailableError) {
    log?.(`registry unavailable: ${err.message}`);
    return { status: 500, body: { code: 'internal', message: 'the registry did not answer; retry' } };
  }
  log?.(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return { status: 500, body: { code: 'internal', message: 'corral failed to answer; retry' } };
}

export async function buildCorralApi(deps: CorralApiDeps): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: maxBodyBytes, logger: false, return503OnClosing: true });
  app.setValidatorCompiler(validatorCompiler);
  // Answers are built by corral's own typed code: the response schemas document them (OpenAPI)
  // but are not re-validated on every claim (a zod parse per answer costs the hot path CPU).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'corral API',
        version: apiVersion,
        description:
          'Claims, releases and lease checks for warm worker pools, and the pools and workers behind them. Errors are `{code, message, field?, details?}`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });

  app.setErrorHandler((err, _request, reply) => {
    const { status, body } = toErrorBody(err, deps.log);
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send({ code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });

  const authorized = deps.tokens ? bearerTokenMatcher(deps.tokens) : null;
  app.addHook('onRequest', async (request, reply) => {
    if (!authorized || request.url === '/openapi.json') return;
    if (!authorized(request.headers.authorization)) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ code: 'unauthorized', message: 'a valid bearer token is required (Authorization: Bearer <token>)' });
    }
  });

  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // --- claims and leases -------------------------------------------------------------------
  r.post(
    '/v1/pools/:pool/claims',
    {
      schema: {
        summary: 'Claim a worker of a pool for a tenant',
        description:
          'Idempotent per requestId: the same lease while it is valid, `lease_ended` (with the old lease in details) after. The worker has accepted the lease before the answer is sent.',
        tags: ['claims'],
        params: api.poolParams,
        body: api.claimBody,
        response: { 200: api.claimResponse, ...errors },
      },
    },
    async (request, reply) => {
      // The caller went away before its answer: stop waiting for a cold worker (the claim stays
      // pending, and a grant nobody acknowledges is reclaimed).
      const aborted = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) aborted.abort();
      });
      const lease = await deps.claims.claim(request.params.pool, request.body, aborted.signal);
      // Acknowledged once the answer has been handed to the caller's connection; otherwise reclaimed.
      reply.raw.once('finish', () => deps.claims.acknowledge(request.params.pool, request.body.requestId));
      return lease;
    },
  );

  r.post(
    '/v1/workers/:workerId/release',
    {
      schema: {
        summary: 'Give a claimed worker back',
        description:
          'The pool’s release policy decides what happens to it. Idempotent per lease: a retried release answers what the first one did.',
        tags: ['claims'],
        params: api.workerParams,
        body: api.releaseBody,
        response: { 200: api.releaseResponse, ...errors },
      },
    },
    async (request) => deps.claims.release(request.params.workerId, request.body),
  );

  r.get(
    '/v1/workers/:workerId/lease',
    {
      schema: {
        summary: 'Is this lease current?',
        description: 'Valid only while the worker is claimed at exactly that epoch. Anyone may check.',
        tags: ['claims'],
        params: api.workerParams,
        querystring: api.leaseCheckQuery,
        response: { 200: api.leaseCheckResponse, ...errors },
      },
    },
    async (request) => deps.claims.checkLease(request.params.workerId, request.query.epoch),
  );

  // --- pools ---------------------------------------------------------------------------------
  r.put(
    '/v1/pools/:pool',
    {
      schema: {
        summary: 'Create or update a pool (idempotent)',
        tags: ['pools'],
        params: api.poolParams,
        body: z
          .record(z.string(), z.unknown())
          .describe('a PoolSpec (README "Configuration"); name must match the path'),
        response: { 200: api.applyPoolResponse, ...errors },
      },
    },
    async (request) => {
      if (request.body.name !== undefined && request.body.name !== request.params.pool) {
        throw new CorralError(
          'invalid_request',
          `name: must match the pool in the path (${request.params.pool})`,
          'name',
        );
      }
      return deps.pools.applyPool({ ...request.body, name: request.params.pool });
    },
  );

  r.get(
    '/v1/pools',
    {
      schema: {
        summary: 'Every pool with its status, breaker and worker counts',
        tags: ['pools'],
        response: { 200: z.object({ pools: z.array(api.poolSummary) }), ...errors },
      },
    },
    async () => ({ pools: await deps.pools.listPools() }),
  );

  r.get(
    '/v1/pools/:pool',
    {
      schema: {
        summary: 'One pool: spec, status, worker counts and its workflow’s view',
        tags: ['pools'],
        params: api.poolParams,
        response: { 200: api.describePoolResponse, ...errors },
      },
    },
    async (request) => deps.pools.describePool(request.params.pool),
  );

  r.get(
    '/v1/pools/:pool/scale',
    {
      schema: {
        summary: 'The pool’s warm capacity: target, headroom, claim rate, idle, waiting',
        description:
          'What an external autoscaler reads (docs/decisions/0035-demand-driven-warm-capacity.md); it changes the floor or ceiling with POST.',
        tags: ['pools'],
        params: api.poolParams,
        response: { 200: api.poolScaleResponse, ...errors },
      },
    },
    async (request) => deps.pools.poolScale(request.params.pool),
  );

  r.post(
    '/v1/pools/:pool/scale',
    {
      schema: {
        summary: 'Change minIdle, maxWorkers and/or maxIdle',
        tags: ['pools'],
        params: api.poolParams,
        body: api.scalePoolBody,
        response: { 200: api.applyPoolResponse, ...errors },
      },
    },
    async (request) => deps.pools.scalePool(request.params.pool, request.body),
  );

  r.post(
    '/v1/pools/:pool/drain',
    {
      schema: {
        summary: 'Stop new claims and retire every worker',
        description: 'Answers at once; the pool’s status becomes `drained` when the last worker has retired.',
        tags: ['pools'],
        params: api.poolParams,
        response: { 200: api.poolSummary, ...errors },
      },
    },
    async (request) => deps.pools.drainPool(request.params.pool),
  );

  r.delete(
    '/v1/pools/:pool',
    {
      schema: {
        summary: 'Forget a drained pool (drains it first)',
        description:
          'A pool not drained yet is asked to drain and the answer is `deleted: false`; ask again once it has drained. Worker history is kept.',
        tags: ['pools'],
        params: api.poolParams,
        response: { 200: api.deletePoolResponse, ...errors },
      },
    },
    async (request) => deps.pools.deletePool(request.params.pool),
  );

  // --- workers -------------------------------------------------------------------------------
  r.get(
    '/v1/workers',
    {
      schema: {
        summary: 'Workers with their state, epoch, tenant and endpoint',
        description: 'Live ones unless `state` names terminal states.',
        tags: ['workers'],
        querystring: api.listWorkersQuery,
        response: { 200: z.object({ workers: z.array(api.workerSchema) }), ...errors },
      },
    },
    async (request) => {
      const states = request.query.state?.split(',') as WorkerState[] | undefined;
      const workers = await deps.workers.listWorkers({ pool: request.query.pool, states, limit: request.query.limit });
      return { workers: workers.map(workerView) };
    },
  );

  r.get(
    '/v1/workers/:workerId',
    {
      schema: {
        summary: 'One worker’s registry row',
        tags: ['workers'],
        params: api.workerParams,
        response: { 200: api.workerSchema, ...errors },
      },
    },
    async (request) => {
      const worker = await deps.workers.getWorker(request.params.workerId);
      if (!worker) throw new CorralError('not_found', `worker ${request.params.workerId} does not exist`);
      return workerView(worker);
    },
  );

  const retentionMs = deps.retentionMs ?? janitorRetention.defaultMs;
  r.get(
    '/v1/workers/:workerId/history',
    {
      schema: {
        summary: 'A worker’s audit trail, oldest first',
        description:
          'A worker that ended (retired or lost) longer ago than the retention period has no row and no trail left: ' +
          'the janitor deletes them then. Such a worker, like one that never existed, is a 404 `not_found` whose ' +
          '`details` say so: `{reason: "no_record", retention, retentionMs}`.',
        tags: ['workers'],
        params: api.workerParams,
        response: { 200: api.historyResponse, ...errors },
      },
    },
    async (request) => {
      const worker = await deps.workers.getWorker(request.params.workerId);
      if (!worker) {
        const retention = ms(retentionMs, { long: true });
        throw new CorralError(
          'not_found',
          `worker ${request.params.workerId} has no record: it never existed, or it ended more than ${retention} ago ` +
            `and its trail was deleted after the retention period (${ms(retentionMs)})`,
          undefined,
          { reason: 'no_record', retention: ms(retentionMs), retentionMs },
        );
      }
      const trail = await deps.workers.history(worker.id);
      return {
        worker: workerView(worker),
        transitions: trail.map((t) => ({ ...t, at: new Date(t.at).toISOString() })),
      };
    },
  );

  await app.ready();
  return app;
}

/** The OpenAPI document the API serves, without a registry or Temporal behind it (docs, tests). */
export async function openApiDocument(): Promise<unknown> {
  const unused = new Proxy({}, { get: () => () => Promise.reject(new Error('not serving')) });
  const app = await buildCorralApi({
    claims: unused as ClaimService,
    pools: unused as PoolService,
    workers: unused as WorkerLifecycleStore,
    tokens: null,
  });
  try {
    return app.swagger();
  } finally {
    await app.close();
  }
}
