/**
 * The training worker: a BullMQ Worker on the `train` queue whose processor
 * (./train-processor.ts, compiled) runs on worker threads, so training never
 * touches an event loop that serves requests. `startWorker` is used by
 * `npm start` (embedded) and by this file's own entry (`npm run worker`).
 *
 * Crashes: the lock of a running job is renewed by this process's main
 * thread (never blocked by training) every LOCK_DURATION_MS / 2. When the
 * process dies, the lock expires and another worker's stalled check (every
 * STALLED_INTERVAL_MS) puts the job back in the queue, where it resumes from
 * its checkpoint. Graceful stop: see `close`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'bullmq';
import { pino, type Logger } from 'pino';
import { DEFAULT_REDIS_URL, loadConfig, redisTarget, type Config } from '../src/config.js';
import { startExperimentWorker } from '../src/queue/experiments.js';
import { keysFor, QUEUE_NAME } from '../src/queue/keys.js';
import type { TrainJobData, TrainJobResult } from '../src/queue/train-queue.js';
import type { TrainEvent } from '../src/core/events.js';
import { JobStore } from '../src/store/jobs.js';
import { durabilityFor } from '../src/store/durable.js';
import { bullConnection, createRedis, errorLogger, quitQuietly } from '../src/store/redis.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The compiled processor: next to this file in dist/, or in dist/ when this file runs from source (tests). */
export const PROCESSOR_FILE = existsSync(path.join(here, 'train-processor.js'))
  ? path.join(here, 'train-processor.js')
  : path.resolve(here, '../dist/workers/train-processor.js');

/** How long the worker waits before fetching again after a Redis error (BullMQ's default, 15 s, is long after a Redis restart). */
const RUN_RETRY_DELAY_MS = 1000;
/** While stopping, jobs the worker still receives are asked to pause this often. */
const PAUSE_REPEAT_MS = 100;
/** BullMQ's failure reason for a job that exceeded maxStalledCount. */
const STALLED_REASON = 'job stalled more than allowable limit';

export interface TrainWorker {
  worker: Worker<TrainJobData, TrainJobResult>;
  /**
   * Stop taking jobs; ask each running job to checkpoint at its next step and
   * go back to the queue (it resumes on any worker, its attempt unused); wait
   * for that; disconnect. `force`: stop now, leaving running jobs to the
   * stalled check of other workers.
   */
  close(force?: boolean): Promise<void>;
}

export function startWorker(config: Config, logger: Logger): TrainWorker {
  const store = createRedis(config, 'normlab:worker:store', { maxRetriesPerRequest: null }, logger);
  const keys = keysFor(config.prefix);
  const jobs = new JobStore(store, keys, { ...config, durability: durabilityFor(config) });
  const connection = bullConnection(config, 'normlab:worker');
  const worker = new Worker<TrainJobData, TrainJobResult>(QUEUE_NAME, PROCESSOR_FILE, {
    connection,
    prefix: keys.bullPrefix,
    concurrency: config.workerConcurrency,
    useWorkerThreads: true,
    // The JS heap of a training thread; its tensors (typed arrays) are bounded by the submit-time estimate (MAX_JOB_MEMORY_BYTES).
    workerThreadsOptions: { workerData: config, resourceLimits: { maxOldGenerationSizeMb: Math.ceil(config.maxJobMemoryBytes / 2 ** 20) } },
    lockDuration: config.lockDurationMs,
    stalledInterval: config.stalledIntervalMs,
    maxStalledCount: config.maxStalledCount,
    runRetryDelay: RUN_RETRY_DELAY_MS,
  });

  // The processor records the failures it understands (divergence, bad data,
  // cancellation) itself; this records the rest, such as a crashed thread:
  // a warning while BullMQ retries, `failed` after the last attempt. After a
  // terminal event the append is a no-op.
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    const event: TrainEvent = !final
      ? { type: 'warning', code: 'ATTEMPT_FAILED', message: `attempt ${job.attemptsMade} failed (${err.message}); retrying` }
      : err.message === STALLED_REASON
        ? { type: 'failed', code: 'STALLED', message: `the job lost its worker more than ${config.maxStalledCount} times (crashed or unreachable workers)` }
        : { type: 'failed', code: 'INTERNAL', message: `training failed: ${err.message}` };
    logger.warn({ jobId: job.id, attempt: job.attemptsMade, err: err.message }, final ? 'job failed' : 'job attempt failed');
    jobs.append(job.id!, event).catch((e: unknown) => logger.error({ err: e, jobId: job.id }, 'could not record a job failure'));
  });
  // Experiments' parent jobs: summaries once every child has finished.
  const experiments = startExperimentWorker(config, logger, store);
  worker.on('stalled', (jobId) => logger.warn({ jobId }, 'job lost its worker; back in the queue, it resumes from its checkpoint'));
  worker.on('error', errorLogger(logger, 'normlab:worker'));
  logger.info({
    concurrency: config.workerConcurrency, prefix: config.prefix,
    lockDurationMs: config.lockDurationMs, stalledIntervalMs: config.stalledIntervalMs, checkpointEverySteps: config.checkpointEverySteps,
  }, 'training worker started');

  return {
    worker,
    async close(force = false) {
      const closed = worker.close(force);
      // The processors see their abort signal and pause; BullMQ may still hand
      // over a job it fetched before closing, so ask again until closed.
      const pause = () => worker.cancelAllJobs('worker stopping');
      if (!force) pause();
      const repeat = force ? undefined : setInterval(pause, PAUSE_REPEAT_MS);
      try {
        await closed;
        await experiments.close(force);
      } finally {
        clearInterval(repeat);
        await Promise.all([quitQuietly(store), quitQuietly(connection)]);
      }
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  if (redisTarget(config).kind === 'single') config.redisUrl ||= DEFAULT_REDIS_URL;
  const logger = pino({ level: config.logLevel, name: 'normlab-worker' });
  const { close } = startWorker(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // At once, whatever Redis does: running jobs are left to the stalled check of other workers.
      logger.warn({ signal }, 'second signal: stopping now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'stopping: running jobs checkpoint and go back to the queue (signal again to stop now)');
    setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs, setting: 'SHUTDOWN_TIMEOUT_MS' }, 'could not stop gracefully in time: stopping now');
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    close().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'error while stopping');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
