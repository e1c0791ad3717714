/**
 * The sandboxed BullMQ processor: runs on a worker thread (useWorkerThreads),
 * one training job at a time per thread. It loads the dataset, trains with
 * the core, appends every event to the job's stream, saves a checkpoint at
 * every epoch end (and every CHECKPOINT_EVERY_STEPS steps), watches the job's
 * cancel flag, and stores the model. Its settings arrive as the thread's
 * workerData (the worker process's Config). Each job opens its own Redis
 * connection and closes it when done, so an idle thread holds nothing.
 *
 * Across attempts: an attempt resumes from the job's checkpoint, if any, and
 * says so in `started {attempt, resumedFrom: {epoch, step}}`. The events
 * after it continue from that point: progress may repeat steps the previous
 * attempt ran after its checkpoint; epoch events never repeat (the event
 * script records an epoch once). When the worker process stops, it aborts
 * the job's signal: training checkpoints at the next step, and the job goes
 * back to the queue without using an attempt (moveToWait + WaitingError).
 */
import { workerData } from 'node:worker_threads';
import { UnrecoverableError, WaitingError, type SandboxedJob } from 'bullmq';
import { pino } from 'pino';
import type { Config } from '../src/config.js';
import { decodeCheckpoint, encodeCheckpoint, type Checkpoint } from '../src/core/checkpoint.js';
import { getKernels } from '../src/core/kernels/index.js';
import type { DatasetSpec } from '../src/core/spec.js';
import { train, TrainingError } from '../src/core/train.js';
import { applyDatasetSpec, DatasetError, isBuiltinDataset, loadBuiltinDataset, type Dataset } from '../src/datasets/index.js';
import { keysFor } from '../src/queue/keys.js';
import type { TrainJobData, TrainJobResult } from '../src/queue/train-queue.js';
import { DatasetStore } from '../src/store/datasets.js';
import type { TrainEvent } from '../src/core/events.js';
import { JobStore } from '../src/store/jobs.js';
import { ModelStore } from '../src/store/models.js';
import { durabilityFor } from '../src/store/durable.js';
import { createRedis } from '../src/store/redis.js';

const config = workerData as Config;
const keys = keysFor(config.prefix);
/** Connection errors only (rate-limited); the job's own story is in its events. */
const logger = pino({ level: config.logLevel, name: 'normlab-train' });
const durability = durabilityFor(config);

type Position = { epoch: number; step: number };

export default async function trainProcessor(
  job: SandboxedJob<TrainJobData, TrainJobResult>, token?: string, signal?: AbortSignal,
): Promise<TrainJobResult> {
  const id = job.id;
  const { spec, tenant } = job.data;
  // Commands wait for Redis through a restart instead of failing the attempt.
  const redis = createRedis(config, `normlab:train:${id}`, { maxRetriesPerRequest: null }, logger);
  const jobs = new JobStore(redis, keys, { ...config, durability });

  // Events are written one after another (training does not wait for them):
  // some wait for replicas (JobStore.append), and none may overtake another.
  // `flush` waits for the last one and surfaces the first write error.
  let lastWrite: Promise<unknown> = Promise.resolve();
  let writeError: unknown = null;
  const write = (op: () => Promise<unknown>) => {
    lastWrite = lastWrite.then(op).catch((err: unknown) => { writeError ??= err; });
  };
  const emit = (event: TrainEvent) => write(() => jobs.append(id, event));
  const flush = async () => {
    await lastWrite;
    if (writeError) throw writeError;
  };
  /** Back to the queue, attempt unused; the next attempt resumes from the checkpoint. */
  const requeue = async (): Promise<never> => {
    await flush();
    await job.moveToWait(token);
    throw new WaitingError();
  };

  let cancelled = false;
  const poll = setInterval(() => {
    jobs.isCancelRequested(id).then((c) => { cancelled ||= c; }, () => {});
  }, config.cancelPollMs);

  let lastCheckpoint: Position | null = null;
  try {
    // Handed over while the worker was already stopping.
    if (signal?.aborted) await requeue();
    // Already ended: a failover took back BullMQ's record of the end (the
    // job's own record, written first and acknowledged by replicas, has it).
    const status = await jobs.status(id);
    if (status === 'succeeded' || status === 'cancelled') return { outcome: status };
    if (status === 'failed') throw new UnrecoverableError('the job already failed');
    if (await jobs.isCancelRequested(id)) {
      emit({ type: 'cancelled' });
      await flush();
      return { outcome: 'cancelled' };
    }
    const resumeFrom = await loadCheckpoint(jobs, id, emit);
    lastCheckpoint = resumeFrom && { epoch: resumeFrom.state.epoch, step: resumeFrom.state.step };
    // attemptsStarted counts this start, including restarts after a crash or a shutdown.
    emit({ type: 'started', attempt: job.attemptsStarted, resumedFrom: lastCheckpoint });
    const dataset = await loadDataset(spec.dataset, spec.training.seed, new DatasetStore(redis, keys, config.tenantMaxDatasetBytes), tenant);

    const run = (from: Checkpoint | null) => train(spec, dataset, {
      kernels: getKernels(),
      progressIntervalMs: config.progressIntervalMs,
      checkpointEverySteps: config.checkpointEverySteps,
      resumeFrom: from,
      maxSeconds: config.maxJobSeconds,
      onEvent: (event) => {
        if (event.type === 'checkpoint') lastCheckpoint = { epoch: event.epoch, step: event.step };
        emit(event);
      },
      // In line with the events: a checkpoint must never reach Redis before the
      // epoch event that precedes it (a resume from it would skip that epoch).
      // Training waits for it, and sees its error.
      onCheckpoint: (checkpoint) => {
        const bytes = encodeCheckpoint(checkpoint);
        const saved = lastWrite.then(() => jobs.saveCheckpoint(id, bytes));
        lastWrite = saved.catch(() => {});
        return saved;
      },
      // On the event connection after the epoch event, so the history never runs ahead of the metrics.
      onBatchNormEpoch: (epoch, layers) => write(() => jobs.appendBatchNorm(id, epoch, layers)),
      statsLag: { accuracy: config.bnStatsLagAccuracy, loss: config.bnStatsLagLoss },
      isCancelled: () => cancelled,
      shouldPause: () => signal?.aborted === true,
    });
    const result = await run(resumeFrom).catch((err: unknown) => {
      if (!(resumeFrom && err instanceof TrainingError && err.code === 'BAD_CHECKPOINT')) throw err;
      // Made by another build (e.g. before a deploy): the same seed gives the same model from the start.
      emit({ type: 'warning', code: 'CHECKPOINT_DISCARDED', message: `${err.message}; training starts over` });
      lastCheckpoint = null;
      return run(null);
    });
    await new ModelStore(redis, keys, durability).save(tenant, id, result.artifact);
    emit({ type: 'completed', modelId: id, metrics: result.metrics, epochsToTarget: result.epochsToTarget });
    await flush();
    return { outcome: 'succeeded' };
  } catch (err) {
    if (err instanceof WaitingError) throw err;
    if (err instanceof TrainingError && err.code === 'PAUSED') await requeue();
    if (err instanceof TrainingError && err.code === 'CANCELLED') {
      emit({ type: 'cancelled' });
      await flush();
      return { outcome: 'cancelled' };
    }
    if (err instanceof RangeError && /array length|allocation failed|Array buffer/i.test(err.message)) {
      // Memory the estimate did not foresee: deterministic, so never retried; the thread and the worker live on.
      emit({ type: 'failed', code: 'RESOURCE_LIMIT', message: `training needs more memory than this worker can give it (${err.message}); use a smaller batch or model`, details: lastCheckpoint ? { checkpoint: lastCheckpoint } : {} });
      await flush();
      throw new UnrecoverableError(`RESOURCE_LIMIT: ${err.message}`);
    }
    if (err instanceof TrainingError || err instanceof DatasetError) {
      // Deterministic: another attempt would fail the same way. The checkpoint
      // (the last good state, e.g. before a divergence) stays with the failed job.
      const details = { ...err.details, ...(lastCheckpoint ? { checkpoint: lastCheckpoint } : {}) };
      emit({ type: 'failed', code: err.code, message: err.message, details });
      await flush();
      throw new UnrecoverableError(`${err.code}: ${err.message}`);
    }
    // Anything else is left to BullMQ's retries; the worker process records it (see worker.ts).
    await lastWrite;
    throw err;
  } finally {
    clearInterval(poll);
    await redis.quit();
  }
}

/** The job's checkpoint, or null when it has none or it cannot be read (then with a warning: training starts over). */
async function loadCheckpoint(jobs: JobStore, id: string, emit: (event: TrainEvent) => void): Promise<Checkpoint | null> {
  const bytes = await jobs.checkpoint(id);
  if (!bytes) return null;
  try {
    return decodeCheckpoint(bytes);
  } catch (err) {
    emit({ type: 'warning', code: 'CHECKPOINT_DISCARDED', message: `the job's checkpoint cannot be read (${(err as Error).message}); training starts over` });
    return null;
  }
}

async function loadDataset(spec: DatasetSpec, seed: number, uploads: DatasetStore, tenant: string): Promise<Dataset> {
  if (isBuiltinDataset(spec.id)) return loadBuiltinDataset(spec, seed);
  const ds = await uploads.load(tenant, spec.id);
  if (!ds) throw new DatasetError('UNKNOWN_DATASET', `dataset ${spec.id} was deleted before the job started`, { id: spec.id });
  return applyDatasetSpec(ds, spec);
}
