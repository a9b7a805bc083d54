// The modules a CLI command loads only when it runs, not when the command tree is built: Temporal's
// worker and client, embedded Postgres, pg, the Kubernetes client, fastify and the YAML parser
// together take seconds to load, and `corral --help` or `corral pool list` (an HTTP call) need none
// of them (docs/decisions/0024-compiled-cli-and-client-package.md).
//
// `require`, not `import()`: the CLI is compiled to CommonJS, where TypeScript keeps `import()` as
// an ES module import, which Node resolves without CommonJS's extension lookup and which tsx's
// CommonJS hook (how tests load src/) does not see. Each loader's type is the module's own, so a
// moved or renamed module fails the type check here.
/* eslint-disable @typescript-eslint/no-require-imports */

/** `corral worker`: the pollers, the corral API and /metrics. */
export const loadCorralWorker = () => require('../workers/corral-worker') as typeof import('../workers/corral-worker');

/** `corral worker`: the janitor's retention setting. */
export const loadJanitorSchedule = () =>
  require('../client/janitor-schedule') as typeof import('../client/janitor-schedule');

/** `corral worker`: slots per kind of work (zod). */
export const loadWorkerCapacity = () =>
  require('../config/worker-capacity') as typeof import('../config/worker-capacity');

/** `corral worker`: the worker-protocol master key. */
export const loadWorkerProtocolKey = () =>
  require('../config/worker-protocol-key') as typeof import('../config/worker-protocol-key');

/** `corral dev`: Temporal's dev server, embedded Postgres and a `corral worker` child. */
export const loadEmbeddedStack = () => require('../embedded/stack') as typeof import('../embedded/stack');

/** `corral doctor`: pg, Temporal's client and the Kubernetes client. */
export const loadDoctorChecks = () => require('./doctor-checks') as typeof import('./doctor-checks');

/** `corral migrate`: node-pg-migrate. */
export const loadMigrate = () => require('../registry/migrate') as typeof import('../registry/migrate');

/** `corral pool apply`: the YAML parser for pool files. */
export const loadYaml = () => require('yaml') as typeof import('yaml');
