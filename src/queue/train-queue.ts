/**
 * The BullMQ queue `train`: job data, job options, and the job service the
 * API uses (submit, look up, cancel), each on behalf of a tenant: another
 * tenant's job is not found. A job's BullMQ id is its resource id.
 */
import { Queue } from 'bullmq';
import type { Config } from '../config.js';
import type { JobSpec } from '../core/spec.js';
import { isFinished, type JobRecord, type JobStore } from '../store/jobs.js';
import { newId } from '../store/ids.js';
import { waitForReplicas, type Durability } from '../store/durable.js';
import type { Redis } from '../store/redis.js';
import { keysFor, QUEUE_NAME } from './keys.js';

/** A child of an experiment: which one, which variant, which seed. */
export interface ExperimentTag { id: string; variant: number; seed: number }

export interface TrainJobData { spec: JobSpec; tenant: string; experiment?: ExperimentTag }
/** What the processor returns to BullMQ (the job's own record holds the rest). */
export interface TrainJobResult { outcome: 'succeeded' | 'cancelled' }

/** The queue on `connection` (from bullConnection; its owner closes it after the queue). */
export function createTrainQueue(connection: Redis, config: Config): Queue<TrainJobData, TrainJobResult> {
  return new Queue<TrainJobData, TrainJobResult>(QUEUE_NAME, { connection, prefix: keysFor(config.prefix).bullPrefix, defaultJobOptions: trainJobOptions(config) });
}

/** Options of every training job (flows do not use the queue's defaults, so experiments pass them themselves). */
export function trainJobOptions(config: Config) {
  return {
    attempts: config.jobAttempts,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: config.retainSucceededSeconds },
    removeOnFail: { age: config.retainFailedSeconds },
  };
}

export class JobFinishedError extends Error {
  constructor(readonly job: JobRecord) {
    super(`job ${job.id} already ended ${job.status}`);
    this.name = 'JobFinishedError';
  }
}

export interface QueueDurability {
  /** The queue's own connection: a WAIT on it covers the queue's writes. */
  connection: Redis;
  durability: Durability;
}

export class JobService {
  constructor(
    private readonly queue: Queue<TrainJobData, TrainJobResult>,
    private readonly store: JobStore,
    private readonly durable: QueueDurability | null = null,
  ) {}

  /**
   * Record the job (status queued, first event) and hand it to the queue.
   * Throws ActiveJobsLimitError when the tenant has too many active jobs.
   * With replicas to wait for, the answer comes once they hold the job and
   * its queue entry: a failover after a 202 cannot lose the job.
   */
  async submit(tenant: string, spec: JobSpec): Promise<JobRecord> {
    const id = newId('job');
    await this.store.create(tenant, id, spec);
    try {
      await this.queue.add(QUEUE_NAME, { spec, tenant }, { jobId: id });
      if (this.durable) {
        // One WAIT round for the three nodes (job, tenant, queue) at once.
        await Promise.all([
          this.store.awaitReplicas(tenant, id),
          waitForReplicas(this.durable.connection, this.durable.durability, [this.queue.toKey(id)]),
        ]);
      }
    } catch (err) {
      await this.store.remove(tenant, id);
      throw err;
    }
    return (await this.store.get(id))!;
  }

  /**
   * The tenant's job, with BullMQ's view folded in: a job whose attempt
   * failed, whose worker stopped or crashed, and that waits to resume is
   * queued again.
   */
  async get(tenant: string, id: string): Promise<JobRecord | null> {
    const record = await this.store.get(id);
    if (record?.tenant !== tenant) return null;
    if (record.status === 'running') {
      const state = await this.queue.getJobState(id);
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized') return { ...record, status: 'queued' };
    }
    return record;
  }

  /**
   * Cancel a job: a queued one is removed from the queue and ends cancelled
   * now; a running one is flagged and its processor stops at the next step.
   * Throws JobFinishedError for a job that already ended.
   */
  async cancel(tenant: string, id: string): Promise<JobRecord | null> {
    const record = await this.store.get(id);
    if (record?.tenant !== tenant) return null;
    if (isFinished(record.status)) throw new JobFinishedError(record);
    await this.store.requestCancel(id);
    const removed = (await this.queue.remove(id)) === 1;
    const state = removed ? 'removed' : await this.queue.getJobState(id);
    if (removed || state === 'unknown') {
      await this.store.append(id, { type: 'cancelled' });
    }
    const after = (await this.store.get(id))!;
    if (isFinished(after.status) && after.status !== 'cancelled') throw new JobFinishedError(after);
    // A worker took it but has not recorded its start yet: it is running, and stops at its first step.
    if (after.status === 'queued' && state === 'active') return { ...after, status: 'running' };
    return after;
  }
}
