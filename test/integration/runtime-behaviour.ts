// The behaviour every PodRuntime must show, written once and run against each implementation
// (kubernetes-runtime.test.ts, process-runtime.test.ts). Each fixture says how to make its
// runtime's workers ready, crash, or fail to start, and how to count what really exists
// (pods/secrets via the API, processes/files via /proc and the file system) without asking
// the runtime under test.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { RuntimeInputError, StaleRuntimeWriteError, WorkerPodNotFoundError } from '../../src/runtime/errors';
import type { PodRuntime, ReadinessOutcome } from '../../src/runtime/pod-runtime';
import type { WorkerCredentials, WorkerPodSpecInput } from '../../src/runtime/worker-pod-spec';
import type { WorkerPodRef } from '../../src/common';

export type ScenarioKind = 'ready' | 'crash' | 'invalidImage' | 'neverReady';

export interface Scenario {
  spec: WorkerPodSpecInput;
  /** Runs once the runtime is waiting (kubernetes: plays kubelet); absent when the worker acts alone. */
  afterWaiting?: (ref: WorkerPodRef) => Promise<void>;
}

export interface RuntimeFixture {
  name: string;
  runtime: PodRuntime;
  pool: string;
  /** Another instance over the same cluster / state directory: another replica, or corral after a restart. */
  reopen(): PodRuntime;
  scenario(kind: ScenarioKind, workerId: string): Scenario;
  /** What really exists for the worker, counted without the runtime under test. */
  inspect(workerId: string): Promise<{ pods: number; secrets: number }>;
  /** The credentials as the worker would read them, and the file mode where it applies. */
  readCredentials(ref: WorkerPodRef): Promise<{ content: string; mode?: number }>;
  /** Everything else corral stored about the worker (pod spec, process record): must hold no token. */
  describeWorker(ref: WorkerPodRef): Promise<string>;
  /** An image reference this runtime refuses as input. */
  invalidImageInput: string;
  /**
   * Why the `neverReady` worker is not ready when the wait's deadline ends: it runs but its
   * readiness probe fails (kubernetes: KWOK's `unready`) or it never accepts connections (process).
   */
  neverReadyReason: 'health_check_failed' | 'spawn_timeout';
  /** An extra check that a ready endpoint is real (process: it answers /healthz). */
  checkEndpoint?(endpoint: string): Promise<void>;
}

export const newWorkerId = (): string => `w${crypto.randomBytes(4).toString('hex')}`;

export function credentials(epoch: number, version = epoch): WorkerCredentials {
  return {
    epoch,
    version,
    expiresAt: new Date(Date.now() + 3_600_000),
    token: `tok-${crypto.randomBytes(24).toString('hex')}`,
  };
}

export async function runToOutcome(
  fixture: RuntimeFixture,
  kind: ScenarioKind,
  workerId: string,
  timeoutMs = 20_000,
): Promise<{ ref: WorkerPodRef; outcome: ReadinessOutcome }> {
  const { spec, afterWaiting } = fixture.scenario(kind, workerId);
  const { ref } = await fixture.runtime.create(spec, credentials(1));
  let markWaiting!: () => void;
  const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
  const outcome = fixture.runtime.awaitReady(ref, { timeoutMs, onWaiting: markWaiting });
  if (afterWaiting) {
    await Promise.race([waiting, outcome]);
    await afterWaiting(ref);
  }
  return { ref, outcome: await outcome };
}

const stampOf = (c: WorkerCredentials) => ({ token: c.token, epoch: c.epoch, version: c.version });

interface CredentialsFile {
  token: string;
  epoch: number;
  version: number;
}

function expectFailure(outcome: ReadinessOutcome, reason: string): void {
  assert.equal(outcome.status, 'failed', `expected ${reason}, got ${JSON.stringify(outcome)}`);
  assert.equal(outcome.status === 'failed' && outcome.reason, reason, JSON.stringify(outcome));
}

export function runtimeBehaviourSuite(getFixture: () => RuntimeFixture): void {
  test('a ready worker is reported ready with its endpoint', async () => {
    const fixture = getFixture();
    const { ref, outcome } = await runToOutcome(fixture, 'ready', newWorkerId());
    assert.equal(outcome.status, 'ready', JSON.stringify(outcome));
    if (outcome.status === 'ready') {
      assert.match(outcome.endpoint, /^http:\/\/[\d.]+:\d+$/);
      await fixture.checkEndpoint?.(outcome.endpoint);
    }
    const listed = (await fixture.runtime.listManaged({ pool: fixture.pool })).find((w) => w.name === ref.name);
    assert.deepEqual(listed?.verdict, { status: 'ready' });
    await fixture.runtime.delete(ref);
  });

  test('a worker that exits before it is ready is pod_crashed', async () => {
    const fixture = getFixture();
    const { ref, outcome } = await runToOutcome(fixture, 'crash', newWorkerId());
    expectFailure(outcome, 'pod_crashed');
    assert.match(outcome.status === 'failed' ? outcome.detail : '', /exit code 3/);
    await fixture.runtime.delete(ref);
  });

  test('an image that cannot run is invalid_image', async () => {
    const fixture = getFixture();
    const { ref, outcome } = await runToOutcome(fixture, 'invalidImage', newWorkerId());
    expectFailure(outcome, 'invalid_image');
    await fixture.runtime.delete(ref);
  });

  test('a worker deleted by someone else during the wait is pod_vanished', async () => {
    const fixture = getFixture();
    const { spec } = fixture.scenario('neverReady', newWorkerId());
    const { ref } = await fixture.runtime.create(spec, credentials(1));
    let markWaiting!: () => void;
    const waiting = new Promise<void>((resolve) => (markWaiting = resolve));
    const outcome = fixture.runtime.awaitReady(ref, { timeoutMs: 20_000, onWaiting: markWaiting });
    await waiting;
    await fixture.reopen().delete(ref);
    expectFailure(await outcome, 'pod_vanished');
  });

  test('a worker not ready within the timeout gets the reason its last status gives, never deadline_exceeded', async () => {
    const fixture = getFixture();
    const { spec, afterWaiting } = fixture.scenario('neverReady', newWorkerId());
    const { ref } = await fixture.runtime.create(spec, credentials(1));
    await afterWaiting?.(ref);
    const outcome = await fixture.runtime.awaitReady(ref, { timeoutMs: 1_500 });
    expectFailure(outcome, fixture.neverReadyReason);
    assert.match(outcome.status === 'failed' ? outcome.detail : '', /not ready within 2s/);
    await fixture.runtime.delete(ref);
  });

  test('a create whose signal has already aborted makes nothing', async () => {
    const fixture = getFixture();
    const workerId = newWorkerId();
    const controller = new AbortController();
    controller.abort(new Error('activity cancelled'));
    await assert.rejects(
      fixture.runtime.create(fixture.scenario('ready', workerId).spec, credentials(1), { signal: controller.signal }),
      /activity cancelled/,
    );
    assert.deepEqual(await fixture.inspect(workerId), { pods: 0, secrets: 0 });
  });

  test('credentials never go backwards: an older epoch or version is refused and the newer ones stay', async () => {
    const fixture = getFixture();
    const { ref } = await fixture.runtime.create(fixture.scenario('neverReady', newWorkerId()).spec, credentials(1));
    const newer = credentials(3, 4);
    await fixture.runtime.writeCredentials(ref, newer);
    const read = async () => JSON.parse((await fixture.readCredentials(ref)).content) as CredentialsFile;
    for (const older of [credentials(3, 3), credentials(2, 4), credentials(1, 1)]) {
      await assert.rejects(
        fixture.runtime.writeCredentials(ref, older),
        (err: unknown) =>
          err instanceof StaleRuntimeWriteError &&
          err.stored.epoch === 3 &&
          err.stored.version === 4 &&
          err.attempted.epoch === older.epoch &&
          err.attempted.version === older.version,
        `epoch ${older.epoch} / version ${older.version} is refused`,
      );
      const now = await read();
      assert.deepEqual({ token: now.token, epoch: now.epoch, version: now.version }, { ...stampOf(newer) });
    }
    // The same epoch and version again (a retried rotation) is written: its token is as good.
    const retried = credentials(3, 4);
    await fixture.runtime.writeCredentials(ref, retried);
    assert.equal((await read()).token, retried.token);
    const listed = (await fixture.runtime.listManaged({ pool: fixture.pool })).find((w) => w.name === ref.name);
    assert.equal(listed?.epoch, 3, 'the epoch the worker was last given never went down');
    await fixture.runtime.delete(ref);
  });

  test('an aborted wait rejects promptly instead of waiting out its timeout', async () => {
    const fixture = getFixture();
    const { spec } = fixture.scenario('neverReady', newWorkerId());
    const { ref } = await fixture.runtime.create(spec, credentials(1));
    const controller = new AbortController();
    const outcome = fixture.runtime.awaitReady(ref, {
      timeoutMs: 600_000,
      signal: controller.signal,
      onWaiting: () => controller.abort(new Error('activity cancelled')),
    });
    await assert.rejects(outcome, /activity cancelled/);
    await fixture.runtime.delete(ref);
  });

  test('creating the same worker twice, and concurrently, gives one pod and one secret', async () => {
    const fixture = getFixture();
    const workerId = newWorkerId();
    const { spec } = fixture.scenario('neverReady', workerId);
    const first = await fixture.runtime.create(spec, credentials(1));
    const again = await fixture.runtime.create(spec, credentials(1));
    assert.equal(first.created, true);
    assert.equal(again.created, false, 'the second create adopted the first pod');
    assert.deepEqual(again.ref, first.ref);
    assert.deepEqual(await fixture.inspect(workerId), { pods: 1, secrets: 1 });

    const racer = newWorkerId();
    const racing = fixture.scenario('neverReady', racer).spec;
    const results = await Promise.all([
      fixture.runtime.create(racing, credentials(1)),
      fixture.reopen().create(racing, credentials(1)),
    ]);
    assert.deepEqual(results.map((r) => r.created).sort(), [false, true], 'exactly one racer created it');
    assert.deepEqual(await fixture.inspect(racer), { pods: 1, secrets: 1 });
    await fixture.runtime.delete(first.ref);
    await fixture.runtime.delete(results[0]!.ref);
  });

  test('deleting twice is fine; a deleted worker is gone and cannot be given credentials', async () => {
    const fixture = getFixture();
    const workerId = newWorkerId();
    const { ref } = await fixture.runtime.create(fixture.scenario('neverReady', workerId).spec, credentials(1));
    await fixture.runtime.delete(ref);
    await fixture.runtime.delete(ref);
    assert.deepEqual(await fixture.inspect(workerId), { pods: 0, secrets: 0 });
    assert.ok(!(await fixture.runtime.listManaged()).some((w) => w.workerId === workerId));
    await assert.rejects(fixture.runtime.writeCredentials(ref, credentials(2)), WorkerPodNotFoundError);
  });

  test('credentials live only in the secret (file), rotate in place, and appear nowhere else', async () => {
    const fixture = getFixture();
    const first = credentials(1);
    const { ref } = await fixture.runtime.create(fixture.scenario('neverReady', newWorkerId()).spec, first);
    const written = await fixture.readCredentials(ref);
    const parsed = JSON.parse(written.content) as { token: string; version: number; epoch: number; workerId: string };
    assert.deepEqual(
      { token: parsed.token, version: parsed.version, epoch: parsed.epoch, workerId: parsed.workerId },
      { token: first.token, version: 1, epoch: 1, workerId: ref.workerId },
    );
    if (written.mode !== undefined) assert.equal(written.mode & 0o777, 0o600, 'owner read/write only');

    const rotated = credentials(2, 2);
    await fixture.runtime.writeCredentials(ref, rotated);
    const after = JSON.parse((await fixture.readCredentials(ref)).content) as {
      token: string;
      version: number;
      epoch: number;
    };
    assert.deepEqual(
      { token: after.token, version: after.version, epoch: after.epoch },
      { token: rotated.token, version: 2, epoch: 2 },
    );
    const description = await fixture.describeWorker(ref);
    assert.ok(
      !description.includes(first.token) && !description.includes(rotated.token),
      'no token outside the secret',
    );
    const listed = (await fixture.runtime.listManaged({ pool: fixture.pool })).find((w) => w.name === ref.name);
    assert.equal(listed?.epoch, 2, 'the inventory shows the epoch the worker was last given');
    await fixture.runtime.delete(ref);
  });

  test('a restarted corral finds its workers again, adopts them and can delete them', async () => {
    const fixture = getFixture();
    const workerId = newWorkerId();
    const { ref } = await fixture.runtime.create(fixture.scenario('neverReady', workerId).spec, credentials(1));
    const restarted = fixture.reopen();
    const found = (await restarted.listManaged({ pool: fixture.pool })).find((w) => w.workerId === workerId);
    assert.ok(found, 'the new instance lists the worker');
    assert.deepEqual(
      { name: found.name, spawnAttempt: found.spawnAttempt, hasPod: found.hasPod, hasSecret: found.hasSecret },
      { name: ref.name, spawnAttempt: 1, hasPod: true, hasSecret: true },
    );
    const adopted = await restarted.create(fixture.scenario('neverReady', workerId).spec, credentials(1));
    assert.equal(adopted.created, false);
    assert.deepEqual(await fixture.inspect(workerId), { pods: 1, secrets: 1 });
    await restarted.delete(ref);
    assert.deepEqual(await fixture.inspect(workerId), { pods: 0, secrets: 0 });
  });

  test('listManaged filters by pool', async () => {
    const fixture = getFixture();
    const workerId = newWorkerId();
    const otherPool = `${fixture.pool}-other`;
    const spec = { ...fixture.scenario('neverReady', workerId).spec, pool: otherPool };
    const { ref } = await fixture.runtime.create(spec, credentials(1));
    assert.ok((await fixture.runtime.listManaged({ pool: otherPool })).some((w) => w.workerId === workerId));
    assert.ok(!(await fixture.runtime.listManaged({ pool: fixture.pool })).some((w) => w.workerId === workerId));
    await fixture.runtime.delete(ref);
  });

  test('bad input is refused with a typed error naming the field, and nothing is created', async () => {
    const fixture = getFixture();
    const workerId = newWorkerId();
    const valid = fixture.scenario('neverReady', workerId).spec;
    const cases: { input: WorkerPodSpecInput; field: string }[] = [
      { input: { ...valid, image: fixture.invalidImageInput }, field: 'image' },
      // A valid worker id (≤ 63) whose derived pod name `<pool>-<id>-1` would not be.
      { input: { ...valid, pool: 'p'.repeat(30), workerId: 'w'.repeat(35) }, field: 'podName' },
      { input: { ...valid, pool: 'Not_A_Label' }, field: 'pool' },
      { input: { ...valid, workerId: 'has-dash' }, field: 'workerId' },
      { input: { ...valid, args: ['nul\0byte'] }, field: 'args.0' },
      {
        input: {
          ...valid,
          resources: { requests: { cpuMillis: -100, memoryMiB: 64 }, limits: { cpuMillis: 500, memoryMiB: 64 } },
        },
        field: 'resources.requests.cpuMillis',
      },
      {
        input: {
          ...valid,
          resources: { requests: { cpuMillis: 100, memoryMiB: 512 }, limits: { cpuMillis: 500, memoryMiB: 256 } },
        },
        field: 'resources.limits.memoryMiB',
      },
      { input: { ...valid, env: { CORRAL_WORKER_ID: 'spoofed' } }, field: 'env.CORRAL_WORKER_ID' },
    ];
    for (const { input, field } of cases) {
      await assert.rejects(
        fixture.runtime.create(input, credentials(1)),
        (err: unknown) => err instanceof RuntimeInputError && err.field === field,
        `expected a RuntimeInputError on ${field}`,
      );
    }
    await assert.rejects(
      fixture.runtime.create(valid, { ...credentials(1), token: 'short' }),
      (err: unknown) => err instanceof RuntimeInputError && err.field === 'credentials.token',
    );
    assert.deepEqual(await fixture.inspect(workerId), { pods: 0, secrets: 0 });
  });
}
