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
  /** A connection of its own, for a blocking read (one per event stream client). */
  blockingConnection(): Redis;
  close(): Promise<void>;
}

export function createServices(config: Config, logger: FastifyBaseLogger): Services {
  const keys = keysFor(config.prefix);
  // Requests fail fast (and answer 503) rather than queue up while Redis is away.
  const redis = createRedis(config.redisUrl, 'normlab:api', { maxRetriesPerRequest: 2 });
  const queue = createTrainQueue(redisOptions(config.redisUrl, 'normlab:api:queue'), config);
  queue.on('error', (err) => logger.error({ err }, 'queue connection error'));
  const jobStore = new JobStore(redis, keys, config);
  const models = new ModelStore(redis, keys);
  const jobs = new JobService(queue, jobStore);
  // Connected on the first experiment, so an API process that never gets one holds no connection for it.
  let flows: FlowProducer | null = null;
  const flowProducer = () => {
    if (!flows) {
      flows = new FlowProducer({ connection: redisOptions(config.redisUrl, 'normlab:api:flows'), prefix: config.prefix });
      flows.on('error', (err) => logger.error({ err }, 'flow producer connection error'));
    }
    return flows;
  };
  const experimentStore = new ExperimentStore(redis, keys, config.retainSucceededSeconds);
  return {
    config,
    keys,
    redis,
    queue,
    jobs,
    jobStore,
    experiments: new ExperimentService(flowProducer, experimentStore, jobStore, jobs, config),
    experimentStore,
    models,
    datasets: new DatasetStore(redis, keys, config.tenantMaxDatasetBytes),
    modelCache: new ModelCache(models, getKernels(), config.modelCacheSize),
    kernels: kernelsInfo(),
    blockingConnection: () => createRedis(config.redisUrl, 'normlab:api:events', { maxRetriesPerRequest: null }),
    async close() {
      await queue.close();
      await flows?.close();
      await redis.quit();
    },
  };
}
