// Pools as the corral API serves them: applied to the registry, run by their pool workflow
// (`corral/<pool>/pool`), which every apply, scale and drain (re)starts with signalWithStart.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { CorralError } from '../client/errors';
import { parsePoolSpec, PoolSpecError, workerProtocolOf, type PoolSpec } from '../config/pool-spec';
import type { PoolRecord, PoolStore } from '../registry/pool-store';
import { wakePoolWorkflow } from '../client/pool-workflows';
import { describePoolQuery, poolWorkflowId, type RuntimeKind } from '../common';
import { warmCapacityTarget } from '../config/warm-capacity';
import type {
  ApplyPoolResponse,
  DeletePoolResponse,
  DescribePoolResponse,
  PoolScaleResponse,
  PoolSummary,
} from './api-schemas';

export class PoolService {
  constructor(
    private readonly pools: PoolStore,
    private readonly temporal: Client,
    private readonly taskQueue: string,
    /**
     * The runtime this corral worker spawns workers on (`--runtime`): a pool whose spec names the
     * other one is refused, since its workers would run where its spec says they do not.
     */
    private readonly runtime?: RuntimeKind,
  ) {}

  /**
   * Creates or updates a pool and makes sure its workflow runs. Idempotent: the same spec again
   * changes nothing. A changed spec reaches the running pool at once (the signal is its wake);
   * workers already running keep the settings they were started with.
   */
  async applyPool(input: unknown): Promise<ApplyPoolResponse> {
    let spec: PoolSpec;
    try {
      spec = parsePoolSpec(input);
    } catch (err) {
      if (err instanceof PoolSpecError) throw new CorralError('invalid_request', err.message, err.field);
      throw err;
    }
    if (this.runtime !== undefined && spec.runtime !== this.runtime) {
      throw new CorralError(
        'invalid_request',
        `runtime: pool ${spec.name} asks for ${spec.runtime} workers, but this corral runs its workers on ${this.runtime}`,
        'runtime',
      );
    }
    const applied = await this.pools.applyPool(spec);
    if (applied.pool.status === 'draining') {
      throw new CorralError('pool_draining', `pool ${spec.name} is draining; apply it again once it has drained`);
    }
    const current = workerProtocolOf(applied.pool.spec);
    if (current !== spec.workerProtocol) {
      throw new CorralError(
        'invalid_request',
        `workerProtocol: pool ${spec.name} speaks ${current} and cannot change while it has workers; drain it, then apply it again`,
        'workerProtocol',
      );
    }
    await this.wake(spec.name, applied.pool.generation);
    return { pool: await this.summary(applied.pool), created: applied.created, changed: applied.changed };
  }

  async listPools(): Promise<PoolSummary[]> {
    const records = await this.pools.listPools();
    return Promise.all(records.map((record) => this.summary(record)));
  }

  async describePool(name: string): Promise<DescribePoolResponse> {
    const record = await this.requirePool(name);
    let workflow: Record<string, unknown> | null = null;
    try {
      const described = await this.temporal.workflow.getHandle(poolWorkflowId(name)).query(describePoolQuery);
      workflow = described as unknown as Record<string, unknown>;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    const byGeneration = new Map<number | null, Record<string, number>>();
    for (const { generation, state, count } of await this.pools.generationCounts(name)) {
      byGeneration.set(generation, { ...byGeneration.get(generation), [state]: count });
    }
    const generations = [...byGeneration].map(([generation, counts]) => ({
      generation,
      current: generation === record.templateGeneration,
      counts,
    }));
    return { pool: await this.summary(record), templateGeneration: record.templateGeneration, generations, workflow };
  }

  /** Changes minIdle, maxWorkers and/or maxIdle: the same as applying the spec with them changed. */
  async scalePool(
    name: string,
    change: { minIdle?: number; maxWorkers?: number; maxIdle?: number },
  ): Promise<ApplyPoolResponse> {
    const current = await this.requirePool(name);
    const warmCapacity = current.spec.warmCapacity ?? { mode: 'static' };
    return this.applyPool({
      ...current.spec,
      minIdle: change.minIdle ?? current.spec.minIdle,
      maxWorkers: change.maxWorkers ?? current.spec.maxWorkers,
      warmCapacity: change.maxIdle === undefined ? warmCapacity : { ...warmCapacity, maxIdle: change.maxIdle },
    });
  }

  /** The pool's warm capacity as its next turn would compute it (decision 0035): what an autoscaler reads. */
  async poolScale(name: string): Promise<PoolScaleResponse> {
    const record = await this.requirePool(name);
    const spec = parsePoolSpec(record.spec);
    const [observed, inventory, waiting] = await Promise.all([
      this.pools.observeDemand(name, spec.warmCapacity.coolDown),
      this.pools.inventory(name),
      this.pools.waitingClaims(name),
    ]);
    const target = warmCapacityTarget(spec, observed);
    return {
      pool: name,
      mode: spec.warmCapacity.mode,
      minIdle: spec.minIdle,
      maxIdle: Math.min(spec.warmCapacity.maxIdle ?? spec.maxWorkers, spec.maxWorkers),
      maxWorkers: spec.maxWorkers,
      effectiveTarget: target.effectiveTarget,
      headroom: target.headroom,
      claimsPerMinute: Math.round(target.claimRate * 60 * 1000) / 1000,
      leadSeconds: Math.round(target.leadSeconds * 1000) / 1000,
      reactionSeconds: Math.round(target.reactionSeconds * 1000) / 1000,
      spawnSeconds: Math.round(target.spawnSeconds * 1000) / 1000,
      idle: inventory.counts.idle ?? 0,
      live: inventory.live,
      waiting,
    };
  }

  /**
   * Stops new claims at once and has the pool workflow drain every worker: idle ones now, claimed
   * ones after release or their drain timeout. Answers at once; the pool reads `drained` at the end.
   */
  async drainPool(name: string): Promise<PoolSummary> {
    const pool = await this.pools.markDraining(name);
    if (!pool) throw new CorralError('pool_not_found', `no pool named ${name}`);
    // The registry says draining, so a (re)started pool workflow drains; the signal wakes a running one.
    if (pool.status !== 'drained') await this.wake(name, pool.generation);
    return this.summary(pool);
  }

  /**
   * Forgets a drained pool (worker history is kept). A pool not drained yet is asked to drain and
   * the answer says `draining`: the caller asks again once it has drained.
   */
  async deletePool(name: string): Promise<DeletePoolResponse> {
    const pool = await this.requirePool(name);
    if (pool.status !== 'drained') {
      const drained = await this.drainPool(name);
      return { pool: name, deleted: false, status: drained.status };
    }
    const outcome = await this.pools.deleteDrainedPool(name);
    if (outcome === 'not_found') throw new CorralError('pool_not_found', `no pool named ${name}`);
    if (outcome === 'not_drained') {
      throw new CorralError('pool_draining', `pool ${name} was applied again while it drained; not deleted`);
    }
    return { pool: name, deleted: true, status: 'deleted' };
  }

  private async wake(name: string, generation: number): Promise<void> {
    await wakePoolWorkflow(this.temporal, { pool: name, generation, taskQueue: this.taskQueue });
  }

  private async requirePool(name: string): Promise<PoolRecord> {
    const record = await this.pools.getPool(name);
    if (!record) throw new CorralError('pool_not_found', `no pool named ${name}`);
    return record;
  }

  private async summary(record: PoolRecord): Promise<PoolSummary> {
    const { counts } = await this.pools.inventory(record.name);
    return {
      name: record.name,
      status: record.status,
      generation: record.generation,
      breakerState: record.breakerState,
      spec: record.spec as unknown as Record<string, unknown>,
      counts: counts as Record<string, number>,
      createdAt: record.createdAt.toISOString(),
      updatedAt: record.updatedAt.toISOString(),
    };
  }
}
