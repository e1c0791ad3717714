/**
 * Redis connections. Every client gets the stores' scripts: `appendJobEvent`
 * and `createJob`, the one way jobs and their events are written (./jobs.ts),
 * and the dataset quota scripts (./datasets.ts).
 */
import { Redis, type RedisOptions, type Result } from 'ioredis';
import { DELETE_DATASET_LUA, SAVE_DATASET_LUA } from './datasets.js';
import { FINISH_EXPERIMENT_LUA } from './experiments.js';
import { APPEND_BATCHNORM_LUA, APPEND_JOB_EVENT_LUA, CREATE_JOB_LUA } from './jobs.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** See APPEND_JOB_EVENT_LUA. */
    appendJobEvent(...args: Array<string | number>): Result<string | null, Context>;
    /** See CREATE_JOB_LUA. */
    createJob(...args: Array<string | number>): Result<number, Context>;
    /** See APPEND_BATCHNORM_LUA. */
    appendBatchNorm(...args: Array<string | number>): Result<number, Context>;
    saveDataset(...args: Array<string | number | Buffer>): Result<number, Context>;
    deleteDataset(...args: Array<string | number>): Result<number, Context>;
    /** See FINISH_EXPERIMENT_LUA. */
    finishExperiment(...args: Array<string | number>): Result<string | null, Context>;
  }
}

export type { Redis };

/** Connection options from a redis:// or rediss:// URL (user, password, database number, TLS). */
export function redisOptions(url: string, name: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`REDIS_URL ${url}: expected redis:// or rediss://`);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    username: decodeURIComponent(u.username) || undefined,
    password: decodeURIComponent(u.password) || undefined,
    db: Number(u.pathname.slice(1) || 0),
    tls: u.protocol === 'rediss:' ? {} : undefined,
    connectionName: name,
  };
}

interface ErrorSink { error(obj: object, msg: string): void }

/** How often one connection logs its errors at most (an outage would otherwise log every reconnect attempt). */
const ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * A logger of a connection's errors: the first at once, then at most one
 * line per ERROR_LOG_INTERVAL_MS with the number of errors in between.
 */
export function errorLogger(logger: ErrorSink, name: string): (err: unknown) => void {
  let lastLog = -Infinity;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - lastLog < ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    logger.error({ connection: name, err: (err as Error)?.message ?? String(err), suppressed }, 'redis connection error');
    lastLog = now;
    suppressed = 0;
  };
}

/**
 * A connection. With a logger its errors (refused connections, max clients
 * reached, lost connections) are logged, rate-limited; without one they
 * surface only where a command is awaited.
 */
export function createRedis(url: string, name: string, options: RedisOptions = {}, logger?: ErrorSink): Redis {
  const client = new Redis({
    ...redisOptions(url, name),
    lazyConnect: true,
    scripts: {
      appendJobEvent: { numberOfKeys: 5, lua: APPEND_JOB_EVENT_LUA },
      createJob: { numberOfKeys: 4, lua: CREATE_JOB_LUA },
      appendBatchNorm: { numberOfKeys: 2, lua: APPEND_BATCHNORM_LUA },
      saveDataset: { numberOfKeys: 3, lua: SAVE_DATASET_LUA },
      deleteDataset: { numberOfKeys: 3, lua: DELETE_DATASET_LUA },
      finishExperiment: { numberOfKeys: 2, lua: FINISH_EXPERIMENT_LUA },
    },
    ...options,
  });
  // ioredis reconnects by itself; a failed command also surfaces where it is awaited (a 503 in the API).
  client.on('error', logger ? errorLogger(logger, name) : () => {});
  return client;
}

/** Delete every key under a prefix (tests, tooling). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}
