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
import { createRedis, redisOptions, type Redis } from '../store/redis.js';
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
  kernels: KernelsInfo;
  /** Every event stream of this process (jobs, and any other Redis stream a route serves), over one blocking reader. */
  streams: EventStreams;
  close(): Promise<void>;
}

export function createServices(config: Config, logger: FastifyBaseLogger): Services {
  const keys = keysFor(config.prefix);
  // Requests fail fast (and answer 503) rather than queue up while Redis is away.
  const redis = createRedis(config.redisUrl, 'normlab:api', { maxRetriesPerRequest: 2 }, logger);
  const reader = new StreamReader(config.redisUrl, redis, logger);
  const queue = createTrainQueue(redisOptions(config.redisUrl, 'normlab:api:queue'), config);
  queue.on('error', (err) => logger.error({ err }, 'queue connection error'));
  const jobStore = new JobStore(redis, keys, config);
  const models = new ModelStore(redis, keys);
  const jobs = new JobService(queue, jobStore);
  const flows = new FlowProducer({ connection: redisOptions(config.redisUrl, 'normlab:api:flows'), prefix: config.prefix });
  flows.on('error', (err) => logger.error({ err }, 'flow producer connection error'));
  const experimentStore = new ExperimentStore(redis, keys, config.retainSucceededSeconds);
  return {
    config,
    keys,
    redis,
    queue,
    jobs,
    jobStore,
    experiments: new ExperimentService(flows, experimentStore, jobStore, jobs, config),
    experimentStore,
    models,
    datasets: new DatasetStore(redis, keys, config.tenantMaxDatasetBytes),
    modelCache: new ModelCache(models, getKernels(), config.modelCacheSize),
    kernels: kernelsInfo(),
    streams: new EventStreams(redis, reader, {
      perTenant: config.sseMaxStreamsPerTenant, perProcess: config.sseMaxStreams, heartbeatMs: config.sseHeartbeatMs,
    }),
    async close() {
      await reader.close();
      await queue.close();
      await flows.close();
      await redis.quit();
    },
  };
}
