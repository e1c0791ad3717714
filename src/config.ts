/**
 * Every setting of the service, parsed from the environment in one place.
 * `SETTINGS` is the table the README lists (env name, default, meaning);
 * `loadConfig` turns an environment into a typed `Config`.
 */
import os from 'node:os';
import { DEFAULT_STATS_LAG } from './core/diagnostics.js';

interface Setting<T> {
  env: string;
  default: T;
  description: string;
  parse: (raw: string, env: string) => T;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function int(env: string, def: number, description: string, min = 0, max = Number.MAX_SAFE_INTEGER): Setting<number> {
  return {
    env, default: def, description,
    parse: (raw) => {
      const n = Number(raw);
      if (!/^\d+$/.test(raw.trim()) || n < min || n > max) {
        throw new ConfigError(`${env}=${raw}: expected an integer from ${min} to ${max}`);
      }
      return n;
    },
  };
}

function num(env: string, def: number, description: string, min = 0, max = Number.MAX_VALUE): Setting<number> {
  return {
    env, default: def, description,
    parse: (raw) => {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new ConfigError(`${env}=${raw}: expected a number from ${min} to ${max}`);
      return n;
    },
  };
}

function str(env: string, def: string, description: string, pattern?: RegExp): Setting<string> {
  return {
    env, default: def, description,
    parse: (raw) => {
      if (pattern && !pattern.test(raw)) throw new ConfigError(`${env}=${raw}: must match ${pattern}`);
      return raw;
    },
  };
}

/** One API key and the tenant it acts for (NORMLAB_API_KEYS). */
export interface ApiKey { key: string; tenant: string }

const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** `key:tenant,key:tenant`; keys of at least 16 characters, never shown in errors. */
function apiKeys(env: string, description: string): Setting<ApiKey[]> {
  return {
    env, default: [], description,
    parse: (raw) => raw.split(',').map((s) => s.trim()).filter(Boolean).map((entry, i) => {
      const cut = entry.lastIndexOf(':');
      const key = entry.slice(0, cut);
      const tenant = entry.slice(cut + 1);
      if (cut < 0 || key.length < 16 || /\s/.test(key) || !TENANT_PATTERN.test(tenant)) {
        throw new ConfigError(`${env}: entry ${i + 1} must be KEY:TENANT with a key of at least 16 characters (no spaces) and a tenant matching ${TENANT_PATTERN}`);
      }
      return { key, tenant };
    }),
  };
}

/** One `host:port` of REDIS_CLUSTER_NODES or REDIS_SENTINELS. */
export interface HostPort { host: string; port: number }

/** `host:port,host:port`: at least one entry, ports 1-65535. */
function hostPorts(env: string, description: string): Setting<HostPort[]> {
  return {
    env, default: [], description,
    parse: (raw) => raw.split(',').map((s) => s.trim()).filter(Boolean).map((entry, i) => {
      const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$/.exec(entry);
      const port = m ? Number(m[2]) : 0;
      if (!m || port < 1 || port > 65535) throw new ConfigError(`${env}: entry ${i + 1} (${entry}) must be host:port with a port from 1 to 65535`);
      return { host: m[1].replace(/^\[|\]$/g, ''), port };
    }),
  };
}

const HOUR = 3600;

export const SETTINGS = {
  port: int('PORT', 3000, 'HTTP port of the API', 0, 65535),
  host: str('HOST', '127.0.0.1', 'Interface the API listens on (0.0.0.0 in containers)'),
  redisUrl: str('REDIS_URL', '',
    'Redis connection URL. Unset: `npm start` uses 127.0.0.1:6379 when it answers, else starts a private redis-server ' +
    '(data in REDIS_DATA_DIR); `npm run api` / `npm run worker` use redis://127.0.0.1:6379'),
  redisClusterNodes: hostPorts('REDIS_CLUSTER_NODES',
    'Redis Cluster: some of its nodes as host:port,host:port (the client discovers the rest and follows redirections and failovers). Excludes REDIS_URL and REDIS_SENTINELS'),
  redisSentinels: hostPorts('REDIS_SENTINELS',
    'Sentinel-managed Redis: the sentinels as host:port,host:port (with REDIS_SENTINEL_NAME); the client follows the primary through failovers. Excludes REDIS_URL and REDIS_CLUSTER_NODES'),
  redisSentinelName: str('REDIS_SENTINEL_NAME', '', 'The primary\'s name in the sentinels\' configuration (required with REDIS_SENTINELS, only with it)', /^[A-Za-z0-9_.-]{1,64}$/),
  redisWaitReplicas: int('REDIS_WAIT_REPLICAS', 1,
    'Cluster and Sentinel: replicas that must acknowledge a submitted job, an epoch, a model and a terminal event before the service goes on (Redis WAIT), so a failover cannot lose them; 0: do not wait (asynchronous replication only)', 0, 16),
  redisWaitTimeoutMs: int('REDIS_WAIT_TIMEOUT_MS', 1000, 'Longest wait for REDIS_WAIT_REPLICAS; past it the service goes on (durability falls back to asynchronous replication while replicas lag or are down)', 1, 60_000),
  redisDataDir: str('REDIS_DATA_DIR', '.data/redis', 'Data directory (append-only file) of the redis-server that `npm start` starts when there is no Redis'),
  prefix: str('NORMLAB_PREFIX', 'normlab',
    'Prefix of every Redis key: the service\'s keys are PREFIX:…, BullMQ\'s {PREFIX}:… (hash tags are added by the service, so the same prefix works on one node and on a cluster)', /^[A-Za-z0-9_.-]{1,64}$/),
  workerConcurrency: int('WORKER_CONCURRENCY', os.availableParallelism(), 'Training jobs one worker process runs at once (one worker thread each); default: CPU cores', 1, 256),
  jobAttempts: int('JOB_ATTEMPTS', 2, 'Attempts per job for unexpected failures (divergence and bad data are never retried; crashes and shutdowns resume from the checkpoint without using one)', 1, 100),
  checkpointEverySteps: int('CHECKPOINT_EVERY_STEPS', 0, 'Also checkpoint a running job every N training steps (0: at the end of every epoch only)'),
  lockDurationMs: int('LOCK_DURATION_MS', 30_000, 'Lock of a running job, renewed every half of it by the worker process; a killed worker\'s jobs are handed to another worker once it expires', 1000),
  stalledIntervalMs: int('STALLED_INTERVAL_MS', 15_000, 'How often each worker looks for jobs whose lock expired (a crash is noticed within LOCK_DURATION_MS + 2 × this)', 500),
  maxStalledCount: int('MAX_STALLED_COUNT', 3, 'Times a job may lose its worker (crash, lost lock) before it fails with STALLED', 0, 1000),
  retainSucceededSeconds: int('RETAIN_SUCCEEDED_SECONDS', 7 * 24 * HOUR, 'How long a succeeded job (status, events, metrics) is kept; its model is kept regardless', 1),
  retainFailedSeconds: int('RETAIN_FAILED_SECONDS', 14 * 24 * HOUR, 'How long a failed or cancelled job is kept', 1),
  eventsMaxLen: int('EVENTS_MAX_LEN', 20000, 'Approximate cap on the events kept per job stream (oldest progress events go first)', 100),
  progressIntervalMs: int('PROGRESS_INTERVAL_MS', 500, 'Minimum interval between progress events of a job', 10, 60_000),
  cancelPollMs: int('CANCEL_POLL_MS', 200, 'How often a running job checks whether it was cancelled', 10, 10_000),
  sseHeartbeatMs: int('SSE_HEARTBEAT_MS', 15_000, 'Interval of the heartbeat comments on event streams', 100, 300_000),
  redisCommandTimeoutMs: int('REDIS_COMMAND_TIMEOUT_MS', 2000, 'A Redis command of the API that gets no answer within this fails (503 REDIS_UNAVAILABLE); while Redis is disconnected commands fail at once', 10, 600_000),
  shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', 30_000, 'Longest graceful stop after SIGTERM/SIGINT (running jobs checkpoint, requests finish); the process then exits 1 whatever Redis does. A second signal exits at once', 100, 3_600_000),
  sseMaxStreamsPerTenant: int('SSE_MAX_STREAMS_PER_TENANT', 20, 'Most open event streams of one tenant on one API process (429 TOO_MANY_STREAMS beyond)', 1),
  sseMaxStreams: int('SSE_MAX_STREAMS', 2000, 'Most open event streams of one API process, all tenants (429 TOO_MANY_STREAMS beyond); all of them share one Redis connection (on a cluster, one per node)', 1),
  modelCacheSize: int('MODEL_CACHE_SIZE', 32, 'Models kept loaded (inference form) in each API process', 1, 100_000),
  apiKeys: apiKeys('NORMLAB_API_KEYS', 'API keys as KEY:TENANT,KEY:TENANT (sent as Authorization: Bearer KEY); unset: the API is open (one tenant, "default") and says so at start'),
  rateLimitMax: int('RATE_LIMIT_MAX', 1200, 'Requests per API key (per client address when open) per RATE_LIMIT_WINDOW_MS; 0: no limit', 0),
  rateLimitWindowMs: int('RATE_LIMIT_WINDOW_MS', 60_000, 'Window of RATE_LIMIT_MAX', 1000),
  authFailMax: int('AUTH_FAIL_MAX', 30, 'Failed authentications (401) per client address per AUTH_FAIL_WINDOW_MS; beyond, the address gets 429 RATE_LIMITED, even with a valid key, until the window ends; 0: no limit', 0),
  authFailWindowMs: int('AUTH_FAIL_WINDOW_MS', 60_000, 'Window of AUTH_FAIL_MAX', 1000),
  tenantMaxActiveJobs: int('TENANT_MAX_ACTIVE_JOBS', 100, 'Most queued and running jobs of one tenant (429 beyond)', 1),
  tenantMaxDatasetBytes: int('TENANT_MAX_DATASET_BYTES', 256 * 1024 * 1024, 'Most bytes the uploads of one tenant take in storage (the parsed datasets; 413 beyond)', 1024),
  maxJsonDepth: int('MAX_JSON_DEPTH', 32, 'Deepest nesting of arrays and objects in a JSON body (400 beyond)', 2, 1000),
  bodyLimitBytes: int('BODY_LIMIT_BYTES', 1024 * 1024, 'Largest JSON request body (413 beyond)', 1024),
  datasetMaxBytes: int('DATASET_MAX_BYTES', 32 * 1024 * 1024, 'Largest CSV upload (413 beyond)', 1024),
  datasetMaxRows: int('DATASET_MAX_ROWS', 200_000, 'Most rows of an uploaded dataset, and largest `size` of a synthetic one', 4),
  datasetMaxFeatures: int('DATASET_MAX_FEATURES', 4096, 'Most feature columns of an uploaded dataset', 1),
  maxLayers: int('MAX_LAYERS', 32, 'Most dense, conv and recurrent layers in a model, the output layer included', 1),
  maxUnits: int('MAX_UNITS', 4096, 'Most units in one dense or recurrent layer', 1),
  maxParameters: int('MAX_PARAMETERS', 5_000_000, 'Most trainable parameters in a model', 1),
  maxEpochs: int('MAX_EPOCHS', 1000, 'Most epochs of a job', 1),
  maxBatchSize: int('MAX_BATCH_SIZE', 8192, 'Largest batch size of a job', 2),
  maxExperimentJobs: int('MAX_EXPERIMENT_JOBS', 64, 'Most jobs (variants × seeds) in one experiment (400 LIMIT_EXCEEDED beyond)', 1),
  maxJobMemoryBytes: int('MAX_JOB_MEMORY_BYTES', 1024 * 1024 * 1024, 'Largest estimated peak memory of a training job (activations × batch, parameters, optimizer state, data; 400 LIMIT_EXCEEDED beyond); also the heap limit of its training thread', 64 * 1024 * 1024),
  maxJobSeconds: int('MAX_JOB_SECONDS', 86_400, 'Longest training of a job: refused at submit when the estimate is longer (400 LIMIT_EXCEEDED), ended TIMEOUT (checkpoint kept) when it runs longer', 1),
  predictMaxRows: int('PREDICT_MAX_ROWS', 1000, 'Most instances in one prediction request', 1),
  bnHistoryMaxBytes: int('BN_HISTORY_MAX_BYTES', 8 * 1024 * 1024,
    'Most bytes of per-channel batch-norm history kept per job (GET /v1/jobs/:id/batchnorm); beyond it the oldest epochs go first', 1024),
  bnStatsLagAccuracy: num('BN_STATS_LAG_ACCURACY', DEFAULT_STATS_LAG.accuracy,
    'BN_STATS_LAG fires when the moving averages lose more than this validation accuracy against the population statistics', 0, 1),
  bnStatsLagLoss: num('BN_STATS_LAG_LOSS', DEFAULT_STATS_LAG.loss,
    '… or when their validation loss is more than this fraction above the population statistics\' loss', 0),
  predictMaxWork: int('PREDICT_MAX_WORK', 2_000_000_000, 'Most multiply-adds one prediction request may cost (rows × the model\'s multiply-adds per row; 400 LIMIT_EXCEEDED beyond)', 1),
  predictMaxOutputValues: int('PREDICT_MAX_OUTPUT_VALUES', 100_000, 'Most probabilities in one prediction response (rows × classes; 400 LIMIT_EXCEEDED beyond)', 1),
  maxClasses: int('MAX_CLASSES', 1000, 'Most distinct labels (classes) of an uploaded dataset', 2),
  metricsToken: str('METRICS_TOKEN', '',
    'Bearer token of GET /metrics (Prometheus: authorization.credentials). Unset: /metrics is open while the API is open (no NORMLAB_API_KEYS) and answers 403 when it has keys; tenant API keys never read it (it spans every tenant)'),
  logLevel: str('LOG_LEVEL', 'info', 'pino log level (fatal, error, warn, info, debug, trace, silent)', /^(fatal|error|warn|info|debug|trace|silent)$/),
} satisfies Record<string, Setting<unknown>>;

/** Settings the core and the datasets module read themselves (listed here so the table is complete). */
const READ_ELSEWHERE = [
  { env: 'FASHION_MNIST_DIR', default: '/usr/share/datasets/fashion-mnist', description: 'Directory with the four Fashion-MNIST IDX files (.gz or plain)' },
  { env: 'NORMLAB_KERNELS', default: '(unset)', description: 'native or portable; unset: native when the addon loads, else portable with a warning' },
  { env: 'NORMLAB_THREADS', default: '1', description: 'OpenBLAS threads per process (jobs already run in parallel); above 1 OpenBLAS takes every multiply (the direct dense kernel runs on one thread)' },
  { env: 'NORMLAB_INFER_THREADS', default: '1', description: 'Threads of one prediction\'s dense layers (predict routes, in-process InferenceModel): 1, or 2 to share each prediction with a helper thread (its rows from 8 rows, each layer\'s outputs below), which spins 100 µs after each part and then sleeps (for a host whose second core is free); the same bytes either way' },
  { env: 'NORMLAB_CPU', default: 'auto', description: 'Instruction set of the native built-in sgemm, the direct dense-layer sgemm (avx512 only) and the inference kernels: auto (the best the CPU runs), baseline, avx2 or avx512 (an error when the CPU lacks it); `normlab doctor` shows the choice' },
];

type Settings = typeof SETTINGS;
export type Config = { [K in keyof Settings]: Settings[K]['default'] };

/** Parse an environment (default: process.env); unset or empty variables take their default. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const config = {} as Record<string, unknown>;
  for (const [key, setting] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const raw = env[setting.env];
    config[key] = raw === undefined || raw === '' ? setting.default : setting.parse(raw, setting.env);
  }
  const result = { ...(config as Config), ...overrides };
  redisTarget(result);
  return result;
}

/** Where Redis is: one node (REDIS_URL), a Redis Cluster, or a primary found through Sentinel. */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: HostPort[] }
  | { kind: 'sentinel'; sentinels: HostPort[]; name: string };

/**
 * The one Redis deployment the settings name; a ConfigError for a wrong
 * combination. An empty REDIS_URL (with neither of the others) stays empty:
 * `npm start` then picks 127.0.0.1:6379 or a private redis-server.
 */
export function redisTarget(config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels' | 'redisSentinelName'>): RedisTarget {
  const named = [
    config.redisUrl && 'REDIS_URL',
    config.redisClusterNodes.length > 0 && 'REDIS_CLUSTER_NODES',
    config.redisSentinels.length > 0 && 'REDIS_SENTINELS',
  ].filter(Boolean);
  if (named.length > 1) throw new ConfigError(`${named.join(' and ')} are both set: set exactly one of REDIS_URL (one node), REDIS_CLUSTER_NODES (Redis Cluster) or REDIS_SENTINELS (with REDIS_SENTINEL_NAME)`);
  if (config.redisSentinels.length > 0 && !config.redisSentinelName) throw new ConfigError('REDIS_SENTINELS is set without REDIS_SENTINEL_NAME: name the primary the sentinels monitor');
  if (config.redisSentinelName && config.redisSentinels.length === 0) throw new ConfigError('REDIS_SENTINEL_NAME is set without REDIS_SENTINELS: list the sentinels as host:port,host:port');
  if (config.redisClusterNodes.length > 0) return { kind: 'cluster', nodes: config.redisClusterNodes };
  if (config.redisSentinels.length > 0) return { kind: 'sentinel', sentinels: config.redisSentinels, name: config.redisSentinelName };
  return { kind: 'single', url: config.redisUrl };
}

/** The settings as rows for the README: env name, default, meaning. */
export function describeConfig(): Array<{ env: string; default: string; description: string }> {
  const own = Object.values(SETTINGS).map((s: Setting<unknown>) => ({
    env: s.env,
    default: s.env === 'WORKER_CONCURRENCY' ? 'CPU cores' : String(s.default) || '(unset)',
    description: s.description,
  }));
  return [...own, ...READ_ELSEWHERE];
}

/** The README's settings table (Markdown), kept in step by a test. */
export function settingsTable(): string {
  const rows = describeConfig().map((r) => `| \`${r.env}\` | ${r.default === '(unset)' || r.default === 'CPU cores' ? r.default : `\`${r.default}\``} | ${r.description} |`);
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

/** The Redis URL the API and standalone workers use when REDIS_URL is unset. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
