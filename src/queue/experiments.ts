/**
 * Experiments as BullMQ flows: one parent job in the queue `experiments`
 * whose children are the experiment's training jobs in `train`, ordinary
 * jobs with their own records (tenant quota included). A child that fails
 * (diverged, bad data, lost its worker too often) is a result, not a failure
 * of the experiment: `ignoreDependencyOnFailure` lets the parent run once
 * every child has finished either way, and so does cancelling (a removed
 * child leaves the parent's dependencies). The parent's processor computes
 * the summary from the children's records and writes the experiment's
 * terminal event.
 */
import { FlowProducer, Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { ResolvedExperiment } from '../experiments/grid.js';
import { summarize, type Counts, type RunInput, type Summary } from '../experiments/summary.js';
import {
  ExperimentStore, isExperimentFinished, type ExperimentRecord, type ExperimentStatus, type RunRef,
} from '../store/experiments.js';
import { newId } from '../store/ids.js';
import { isFinished, JobStore, type EpochEvent, type JobRecord } from '../store/jobs.js';
import { durabilityFor, waitForReplicas } from '../store/durable.js';
import { bullConnection, quitQuietly, type Redis } from '../store/redis.js';
import { EXPERIMENT_QUEUE_NAME, keysFor, QUEUE_NAME } from './keys.js';
import { JobFinishedError, trainJobOptions, type JobService, type QueueDurability, type TrainJobData, type TrainJobResult } from './train-queue.js';

export interface ExperimentJobData { experimentId: string; tenant: string }

/** BullMQ's failure reason for a job that exceeded maxStalledCount (as in workers/worker.ts). */
const STALLED_REASON = 'job stalled more than allowable limit';

export class ExperimentFinishedError extends Error {
  constructor(readonly experiment: ExperimentRecord) {
    super(`experiment ${experiment.id} already ended ${experiment.status}`);
    this.name = 'ExperimentFinishedError';
  }
}

/** The children's records and histories, as the summary takes them. A child whose record expired counts as cancelled. */
export async function runInputs(jobStore: JobStore, runs: RunRef[]): Promise<Array<Omit<RunInput, 'history'> & { record: JobRecord | null; history: EpochEvent[] }>> {
  const records = await Promise.all(runs.map((r) => jobStore.get(r.jobId)));
  const histories = await Promise.all(runs.map((r) => jobStore.history(r.jobId)));
  return runs.map((r, i) => {
    const record = records[i]!;
    return {
      jobId: r.jobId, variant: r.variant, seed: r.seed, record,
      status: record?.status ?? 'cancelled',
      history: histories[i]!,
      final: record?.finalMetrics ?? null,
      error: record?.error ?? null,
    };
  });
}

export class ExperimentService {
  constructor(
    private readonly flows: () => FlowProducer,
    private readonly store: ExperimentStore,
    private readonly jobStore: JobStore,
    private readonly jobs: JobService,
    private readonly config: Config,
    /** The flow producer's connection and the replicas to wait for (see JobService). */
    private readonly durable: QueueDurability | null = null,
  ) {}

  /**
   * Record every child (throws ActiveJobsLimitError, recording nothing, when
   * the tenant's quota cannot take them all), the experiment, and add the flow.
   */
  async submit(tenant: string, experiment: ResolvedExperiment): Promise<ExperimentRecord> {
    const id = newId('exp');
    const runs = experiment.runs.map((r) => ({ ...r, jobId: newId('job') }));
    const created: string[] = [];
    try {
      for (const r of runs) {
        await this.jobStore.create(tenant, r.jobId, r.spec, { id, variant: r.variant, seed: r.seed });
        created.push(r.jobId);
      }
      await this.store.create({
        id, tenant, name: experiment.name, template: experiment.template, createdAt: new Date().toISOString(),
        request: experiment.request, paths: experiment.paths, target: experiment.target,
        variants: experiment.variants.map(({ index, label, values, baseline }) => ({ index, label, values, baseline })),
        runs: runs.map(({ jobId, variant, seed }) => ({ jobId, variant, seed })),
      });
      const retain = { removeOnComplete: { age: this.config.retainSucceededSeconds }, removeOnFail: { age: this.config.retainFailedSeconds } };
      await this.flows().add({
        name: 'experiment', queueName: EXPERIMENT_QUEUE_NAME, data: { experimentId: id, tenant } satisfies ExperimentJobData,
        opts: { jobId: id, attempts: this.config.jobAttempts, ...retain },
        children: runs.map((r) => ({
          name: QUEUE_NAME, queueName: QUEUE_NAME,
          data: { spec: r.spec, tenant, experiment: { id, variant: r.variant, seed: r.seed } } satisfies TrainJobData,
          opts: { ...trainJobOptions(this.config), jobId: r.jobId, ignoreDependencyOnFailure: true },
        })),
      });
      if (this.durable) {
        // One WAIT round for every node that holds a part of it: the children, the experiment, the tenant, the queues.
        const bull = keysFor(this.config.prefix).bullPrefix;
        await Promise.all([
          ...runs.map((r) => this.jobStore.awaitReplicas(tenant, r.jobId)),
          this.store.awaitReplicas(tenant, id),
          waitForReplicas(this.durable.connection, this.durable.durability, [`${bull}:${EXPERIMENT_QUEUE_NAME}:${id}`]),
        ]);
      }
    } catch (err) {
      for (const jobId of created) await this.jobStore.remove(tenant, jobId);
      await this.store.remove(tenant, id);
      throw err;
    }
    return (await this.store.get(id))!;
  }

  /** The tenant's experiment, or null (another tenant's is not found). */
  async get(tenant: string, id: string): Promise<ExperimentRecord | null> {
    const record = await this.store.get(id);
    return record?.tenant === tenant ? record : null;
  }

  /** The summary: the stored one once finished, else computed from the children now. */
  async summary(record: ExperimentRecord): Promise<Summary> {
    if (record.summary) return record.summary;
    return summarize(record.variants, await runInputs(this.jobStore, record.runs), record.target);
  }

  /** Cancel every child that has not finished; the experiment ends `cancelled` once they all have. */
  async cancel(tenant: string, id: string): Promise<ExperimentRecord | null> {
    const record = await this.get(tenant, id);
    if (!record) return null;
    if (isExperimentFinished(record.status)) throw new ExperimentFinishedError(record);
    await this.store.requestCancel(id);
    for (const run of record.runs) {
      try {
        await this.jobs.cancel(tenant, run.jobId);
      } catch (err) {
        if (!(err instanceof JobFinishedError)) throw err;
      }
    }
    return this.store.get(id);
  }
}

/** The status shown: the stored one once finished; else running as soon as any child started. */
export function displayStatus(record: ExperimentRecord, counts: Counts): ExperimentStatus {
  if (isExperimentFinished(record.status)) return record.status;
  return counts.queued === record.runs.length ? 'queued' : 'running';
}

export interface ExperimentWorker { worker: Worker<ExperimentJobData>; close(force?: boolean): Promise<void> }

/**
 * The parent jobs' worker: light work (read the children, compute the
 * summary), so it runs on the worker process's main thread.
 */
export function startExperimentWorker(config: Config, logger: Logger, redis: Redis): ExperimentWorker {
  const keys = keysFor(config.prefix);
  const durability = durabilityFor(config);
  const store = new ExperimentStore(redis, keys, config.retainSucceededSeconds, durability);
  const jobStore = new JobStore(redis, keys, { ...config, durability });
  const connection = bullConnection(config, 'normlab:worker:experiments');
  const trainQueue = new Queue<TrainJobData, TrainJobResult>(QUEUE_NAME, { connection, prefix: keys.bullPrefix });
  const worker = new Worker<ExperimentJobData>(EXPERIMENT_QUEUE_NAME, async (job) => {
    const record = await store.get(job.data.experimentId);
    if (!record || isExperimentFinished(record.status)) return;
    await settleChildren(record.runs, jobStore, trainQueue);
    const summary = summarize(record.variants, await runInputs(jobStore, record.runs), record.target);
    await store.finish(record.id, record.cancelRequested ? 'cancelled' : 'succeeded', summary);
    logger.info({ experimentId: record.id, counts: summary.counts }, 'experiment finished');
  }, { connection, prefix: keys.bullPrefix, concurrency: 4, lockDuration: config.lockDurationMs, stalledInterval: config.stalledIntervalMs });
  worker.on('error', (err) => logger.error({ err }, 'experiment worker error'));
  return {
    worker,
    async close(force = false) {
      await worker.close(force);
      await trainQueue.close();
      await quitQuietly(connection);
    },
  };
}

/**
 * The parent runs once BullMQ has finished every child; a failure BullMQ
 * recorded itself (a crashed thread's last attempt, too many stalls) reaches
 * the child's record through the worker's `failed` listener, which may not
 * have run yet. Record it here instead (the append is a no-op after a terminal event).
 */
async function settleChildren(runs: RunRef[], jobStore: JobStore, trainQueue: Queue<TrainJobData, TrainJobResult>): Promise<void> {
  for (const run of runs) {
    const status = await jobStore.status(run.jobId);
    if (!status || isFinished(status)) continue;
    const job = await trainQueue.getJob(run.jobId);
    const state = job ? await job.getState() : 'unknown';
    if (state === 'failed') {
      const reason = job!.failedReason ?? '';
      await jobStore.append(run.jobId, reason === STALLED_REASON
        ? { type: 'failed', code: 'STALLED', message: 'the job lost its worker too many times (crashed or unreachable workers)' }
        : { type: 'failed', code: 'INTERNAL', message: `training failed: ${reason}` });
    } else if (state === 'unknown') {
      await jobStore.append(run.jobId, { type: 'cancelled' });
    }
  }
}
