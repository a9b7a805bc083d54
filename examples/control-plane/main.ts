// A control plane's side of corral, as a program outside this repository writes it: it depends on
// the packed `corral` package (package.json) and imports only `corral/client`. It claims a worker
// of a pool for a tenant, prints the lease, checks it, releases it, and shows that the released
// lease no longer passes the check (the epoch is the fencing token).
//
// Usage: CORRAL_API_URL=http://127.0.0.1:7070 [CORRAL_API_TOKEN=…] [CORRAL_POOL=demo] [CORRAL_TENANT=acme] npm start
import { randomUUID } from 'node:crypto';
import { CorralClient, CorralError, type LeaseCheck } from 'corral/client';

const pool = process.env.CORRAL_POOL || 'demo';
const tenant = process.env.CORRAL_TENANT || 'acme';

function describeCheck(check: LeaseCheck): string {
  switch (check.status) {
    case 'valid':
      return `valid (held by ${check.tenant ?? '?'})`;
    case 'stale_lease':
      return `stale: the worker is ${check.state} at epoch ${check.epoch}`;
    case 'not_claimed':
      return `not claimed: the worker is ${check.state}`;
    case 'row_missing':
      return 'no such worker';
  }
}

async function main(): Promise<void> {
  const corral = new CorralClient({
    url: process.env.CORRAL_API_URL || 'http://127.0.0.1:7070',
    token: process.env.CORRAL_API_TOKEN,
  });
  // The request id makes the claim idempotent: a retry after a lost answer gets the same lease.
  const lease = await corral.claim(pool, { tenant, requestId: `control-plane-${randomUUID()}`, timeout: '60s' });
  console.log(`claimed ${lease.workerId} for ${lease.tenant} from pool ${lease.pool} (${lease.path} path)`);
  console.log(`  epoch ${lease.epoch}, endpoint ${lease.endpoint}`);

  const check = await corral.checkLease(lease);
  console.log(`lease check: ${describeCheck(check)}`);
  if (check.status !== 'valid') throw new Error(`a fresh lease should be valid, got ${check.status}`);

  const released = await corral.release(lease);
  console.log(`released ${lease.workerId}: now ${released.state} at epoch ${released.epoch}`);

  const after = await corral.checkLease(lease);
  console.log(`the released lease: ${describeCheck(after)}`);
  if (after.status === 'valid') throw new Error('a released lease should no longer be valid');
}

main().catch((err: unknown) => {
  const reason = err instanceof CorralError ? `${err.code}: ${err.message}` : String(err);
  console.error(`control-plane example failed: ${reason}`);
  process.exitCode = 1;
});
