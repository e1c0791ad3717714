/**
 * The sandboxed BullMQ processor: runs on a worker thread (useWorkerThreads),
 * one training job at a time per thread. It loads the dataset, trains with
 * the core, appends every event to the job's stream, watches the job's cancel
 * flag, and stores the model. Its settings arrive as the thread's workerData
 * (the worker process's Config). Each job opens its own Redis connection and
 * closes it when done, so an idle thread holds nothing.
 */
import { workerData } from 'node:worker_threads';
import { UnrecoverableError, type SandboxedJob } from 'bullmq';
import type { Config } from '../src/config.js';
import type { TrainEvent } from '../src/core/events.js';
import { getKernels } from '../src/core/kernels/index.js';
import type { DatasetSpec } from '../src/core/spec.js';
import { train, TrainingError } from '../src/core/train.js';
import { DatasetError, isBuiltinDataset, loadBuiltinDataset, type Dataset } from '../src/datasets/index.js';
import { keysFor } from '../src/queue/keys.js';
import type { TrainJobData, TrainJobResult } from '../src/queue/train-queue.js';
import { DatasetStore } from '../src/store/datasets.js';
import { JobStore } from '../src/store/jobs.js';
import { ModelStore } from '../src/store/models.js';
import { createRedis } from '../src/store/redis.js';

const config = workerData as Config;
const keys = keysFor(config.prefix);

export default async function trainProcessor(job: SandboxedJob<TrainJobData, TrainJobResult>): Promise<TrainJobResult> {
  const id = job.id;
  const { spec } = job.data;
  const redis = createRedis(config.redisUrl, `normlab:train:${id}`);
  const jobs = new JobStore(redis, keys, config);

  // Events are written in order on one connection without waiting for each;
  // `flush` waits for the last one and surfaces the first write error.
  let lastWrite: Promise<unknown> = Promise.resolve();
  let writeError: unknown = null;
  const emit = (event: TrainEvent) => {
    lastWrite = jobs.append(id, event).catch((err: unknown) => { writeError ??= err; });
  };
  const flush = async () => {
    await lastWrite;
    if (writeError) throw writeError;
  };

  let cancelled = false;
  const poll = setInterval(() => {
    jobs.isCancelRequested(id).then((c) => { cancelled ||= c; }, () => {});
  }, config.cancelPollMs);

  try {
    if (await jobs.isCancelRequested(id)) {
      emit({ type: 'cancelled' });
      await flush();
      return { outcome: 'cancelled' };
    }
    // attemptsStarted counts this start, including restarts of a stalled job.
    emit({ type: 'started', attempt: job.attemptsStarted });
    const dataset = await loadDataset(spec.dataset, spec.training.seed, new DatasetStore(redis, keys));
    const result = await train(spec, dataset, {
      kernels: getKernels(),
      onEvent: emit,
      isCancelled: () => cancelled,
      progressIntervalMs: config.progressIntervalMs,
    });
    await new ModelStore(redis, keys).save(id, result.artifact);
    emit({ type: 'completed', modelId: id, metrics: result.metrics, epochsToTarget: result.epochsToTarget });
    await flush();
    return { outcome: 'succeeded' };
  } catch (err) {
    if (err instanceof TrainingError && err.code === 'CANCELLED') {
      emit({ type: 'cancelled' });
      await flush();
      return { outcome: 'cancelled' };
    }
    if (err instanceof TrainingError || err instanceof DatasetError) {
      // Deterministic: another attempt would fail the same way.
      emit({ type: 'failed', code: err.code, message: err.message, details: err.details ?? {} });
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

async function loadDataset(spec: DatasetSpec, seed: number, uploads: DatasetStore): Promise<Dataset> {
  if (isBuiltinDataset(spec.id)) return loadBuiltinDataset(spec, seed);
  const ds = await uploads.load(spec.id);
  if (!ds) throw new DatasetError('UNKNOWN_DATASET', `dataset ${spec.id} was deleted before the job started`, { id: spec.id });
  if (spec.limit === null || spec.limit >= ds.train.n) return ds;
  const train = { x: ds.train.x.subarray(0, spec.limit * ds.features), y: ds.train.y.subarray(0, spec.limit), n: spec.limit };
  return { ...ds, train };
}
