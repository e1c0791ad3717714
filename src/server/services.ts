/**
 * What the routes work with: Redis connections, the stores, the queue, the
 * model cache. Created once per app and closed with it.
 */
import { FlowProducer, type Queue } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import { getKernels, kernelsInfo, type KernelsInfo } from '../core/kernels/index.js';
import { keysFor, type Keys } from '../queue/keys.js';
import { ExperimentService } from '../queue/experiments.js';
import { createTrainQueue, JobService, type TrainJobData, type TrainJobResult } from '../queue/train-queue.js';
import { ExperimentStore } from '../store/experiments.js';
import { DatasetStore } from '../store/datasets.js';
import { JobStore } from '../store/jobs.js';
import { ModelStore } from '../store/models.js';
import { durabilityFor } from '../store/durable.js';
import { bullConnection, createRedis, errorLogger, quitQuietly, type Redis } from '../store/redis.js';
import { Metrics } from './metrics.js';
import { ModelCache } from './model-cache.js';
import { EventStreams, StreamReader } from './sse.js';

export interface Services {
  config: Config;
  keys: Keys;
  redis: Redis;
  queue: Queue<TrainJobData, TrainJobResult>;
  jobs: JobService;
  jobStore: JobStore;
  experiments: ExperimentService;
  experimentStore: ExperimentStore;
  models: ModelStore;
  datasets: DatasetStore;
  modelCache: ModelCache;
  metrics: Metrics;
  kernels: KernelsInfo;
  /** Every event stream of this process (jobs, and any other Redis stream a route serves), over one blocking reader. */
  streams: EventStreams;
  close(): Promise<void>;
}

/** How long closing waits for Redis to acknowledge before dropping the connections. */
const CLOSE_WAIT_MS = 1000;

async function bounded(work: Promise<unknown>, ms: number, otherwise: () => unknown): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), ms); });
  const result = await Promise.race([work.then(() => 'done', () => 'failed'), late]);
  clearTimeout(timer);
  if (result !== 'done') await otherwise();
}

/** Resolves once the connection is ready, or after `ms` (Redis away: the API starts anyway and answers 503 until it is back). */
export function whenReady(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); redis.off('ready', done); resolve(); };
    const timer = setTimeout(done, ms);
    redis.once('ready', done);
  });
}

export function createServices(config: Config, logger: FastifyBaseLogger): Services {
  const keys = keysFor(config.prefix);
  // While Redis is away a command fails at once (the request answers 503 REDIS_UNAVAILABLE) instead of
  // waiting in the offline queue; one that gets no answer fails after REDIS_COMMAND_TIMEOUT_MS.
  const durability = durabilityFor(config);
  const redis = createRedis(config, 'normlab:api', {
    enableOfflineQueue: false, commandTimeout: config.redisCommandTimeoutMs, lazyConnect: false,
  }, logger);
  const reader = new StreamReader(config, redis, logger);
  const queueConnection = bullConnection(config, 'normlab:api:queue', 2);
  const queue = createTrainQueue(queueConnection, config);
  queue.on('error', errorLogger(logger, 'normlab:api:queue'));
  const jobStore = new JobStore(redis, keys, { ...config, durability });
  const models = new ModelStore(redis, keys, durability);
  const jobs = new JobService(queue, jobStore, { connection: queueConnection, durability });
  // Connected on the first experiment, so an API process that never gets one holds no connection for it.
  // Parent and children of a flow share BullMQ's one hash-tagged prefix (keys.bullPrefix).
  let flows: { producer: FlowProducer; connection: Redis } | null = null;
  const flowProducer = () => {
    if (!flows) {
      const connection = bullConnection(config, 'normlab:api:flows', 2);
      const producer = new FlowProducer({ connection, prefix: keys.bullPrefix });
      producer.on('error', errorLogger(logger, 'normlab:api:flows'));
      flows = { producer, connection };
    }
    return flows;
  };
  const experimentStore = new ExperimentStore(redis, keys, config.retainSucceededSeconds, durability);
  return {
    config,
    keys,
    redis,
    queue,
    jobs,
    jobStore,
    experiments: new ExperimentService(() => flowProducer().producer, experimentStore, jobStore, jobs, config, {
      get connection() { return flowProducer().connection; }, durability,
    }),
    experimentStore,
    models,
    datasets: new DatasetStore(redis, keys, config.tenantMaxDatasetBytes, durability),
    modelCache: new ModelCache(models, getKernels(), config.modelCacheSize),
    metrics: new Metrics(queue, redis, jobStore),
    kernels: kernelsInfo(),
    streams: new EventStreams(redis, reader, {
      perTenant: config.sseMaxStreamsPerTenant, perProcess: config.sseMaxStreams, heartbeatMs: config.sseHeartbeatMs,
    }),
    async close() {
      await reader.close();
      // Redis away: closing the queue would wait for it, so its connections are dropped after a short wait.
      await bounded(queue.close(), CLOSE_WAIT_MS, () => queue.disconnect());
      await bounded(quitQuietly(queueConnection), CLOSE_WAIT_MS, () => queueConnection.disconnect());
      if (flows) {
        const f = flows;
        await bounded(f.producer.close(), CLOSE_WAIT_MS, () => f.producer.disconnect());
        await bounded(quitQuietly(f.connection), CLOSE_WAIT_MS, () => f.connection.disconnect());
      }
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
