/**
 * Redis connections: the one factory every part of the service uses (API,
 * worker, the processor's worker threads, BullMQ's queues and workers), for
 * one node (REDIS_URL), a Redis Cluster (REDIS_CLUSTER_NODES) or a
 * Sentinel-managed primary (REDIS_SENTINELS). Every client gets the stores'
 * scripts: `appendJobEvent` and `createJob`, the one way jobs and their
 * events are written (./jobs.ts), and the dataset quota scripts
 * (./datasets.ts), the batch-norm history (./jobs.ts) and the experiments'
 * (./experiments.ts). test/api/key-slots.test.ts checks that each call's keys
 * share one hash slot.
 */
import { Cluster, Redis as SingleRedis, SentinelConnector, type ClusterOptions, type SentinelConnectionOptions, type RedisOptions, type Result } from 'ioredis';
import { redisTarget, type Config, type RedisTarget } from '../config.js';
import { keysFor } from '../queue/keys.js';
import { DELETE_DATASET_LUA, SAVE_DATASET_LUA } from './datasets.js';
import { FINISH_EXPERIMENT_LUA } from './experiments.js';
import { APPEND_BATCHNORM_LUA, APPEND_JOB_EVENT_LUA, CREATE_JOB_LUA, RESERVE_JOB_LUA } from './jobs.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** See APPEND_JOB_EVENT_LUA. */
    appendJobEvent(...args: Array<string | number>): Result<string | null, Context>;
    /** See CREATE_JOB_LUA. */
    createJob(...args: Array<string | number>): Result<number, Context>;
    /** See APPEND_BATCHNORM_LUA. */
    appendBatchNorm(...args: Array<string | number>): Result<number, Context>;
    /** See RESERVE_JOB_LUA. */
    reserveJob(...args: Array<string | number>): Result<number, Context>;
    saveDataset(...args: Array<string | number | Buffer>): Result<number, Context>;
    deleteDataset(...args: Array<string | number>): Result<number, Context>;
    /** See FINISH_EXPERIMENT_LUA. */
    finishExperiment(...args: Array<string | number>): Result<string | null, Context>;
  }
}

/** A connection to one node, or to a cluster (which routes each command by its key's slot). */
export type Redis = SingleRedis | Cluster;

export const SCRIPTS = {
  appendJobEvent: { numberOfKeys: 5, lua: APPEND_JOB_EVENT_LUA },
  createJob: { numberOfKeys: 2, lua: CREATE_JOB_LUA },
  reserveJob: { numberOfKeys: 2, lua: RESERVE_JOB_LUA },
  appendBatchNorm: { numberOfKeys: 2, lua: APPEND_BATCHNORM_LUA },
  saveDataset: { numberOfKeys: 3, lua: SAVE_DATASET_LUA },
  deleteDataset: { numberOfKeys: 3, lua: DELETE_DATASET_LUA },
  finishExperiment: { numberOfKeys: 2, lua: FINISH_EXPERIMENT_LUA },
};

/** Where to connect: the settings (any deployment) or a redis:// URL (one node). */
export type RedisConnection = string | Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels' | 'redisSentinelName'>;

export interface ConnectOptions {
  /** Retries of a command while Redis is away; null: wait for Redis (workers, blocking reads). Default 20. */
  maxRetriesPerRequest?: number | null;
  /** Connect on the first command (default) or now. */
  lazyConnect?: boolean;
  /** false: while Redis is away a command fails at once instead of waiting. */
  enableOfflineQueue?: boolean;
  /** A command without an answer fails after this many ms. */
  commandTimeout?: number;
  /** Delay before each reconnection (ioredis's retryStrategy; one node and Sentinel). */
  retryStrategy?: (times: number) => number | null;
}

/**
 * How long a waiting client (maxRetriesPerRequest null) keeps retrying a
 * command whose cluster node is gone: a primary's failover takes
 * cluster-node-timeout plus an election; give it a minute.
 */
const CLUSTER_PATIENT_REDIRECTIONS = 600;
const CLUSTER_RETRY_DELAY_MS = 100;

/** A sentinel that does not answer within this long is skipped for the next one. */
const SENTINEL_COMMAND_TIMEOUT_MS = 1000;

/**
 * ioredis's Sentinel connector, minus a race: its failover detector (a
 * subscription to +switch-master) ends the connector when a failover is
 * announced, and when that happens while a reconnection is asking the
 * sentinels for the primary, ioredis takes the aborted attempt for a manual
 * close and stops reconnecting for good (status "end"): a connection that
 * never reaches the promoted primary. The detector only matters while
 * connected, so each connection attempt drops the previous one's first.
 */
class SentinelFailoverConnector extends SentinelConnector {
  // ioredis hands a Connector its options untyped.
  constructor(options: unknown) {
    super(options as SentinelConnectionOptions);
  }

  override connect(...args: Parameters<SentinelConnector['connect']>): ReturnType<SentinelConnector['connect']> {
    const self = this as unknown as { failoverDetector: { cleanup(): void } | null };
    self.failoverDetector?.cleanup();
    self.failoverDetector = null;
    return super.connect(...args);
  }
}

function target(connection: RedisConnection): RedisTarget {
  return typeof connection === 'string' ? { kind: 'single', url: connection } : redisTarget(connection);
}

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
export function createRedis(connection: RedisConnection, name: string, options: ConnectOptions = {}, logger?: ErrorSink): Redis {
  const t = target(connection);
  const common = {
    lazyConnect: options.lazyConnect ?? true, scripts: SCRIPTS,
    ...(options.retryStrategy ? { retryStrategy: options.retryStrategy } : {}),
    ...(options.enableOfflineQueue === undefined ? {} : { enableOfflineQueue: options.enableOfflineQueue }),
  };
  const maxRetriesPerRequest = options.maxRetriesPerRequest === undefined ? 20 : options.maxRetriesPerRequest;
  const perNode = { connectionName: name, maxRetriesPerRequest, ...(options.commandTimeout ? { commandTimeout: options.commandTimeout } : {}) };
  let client: Redis;
  if (t.kind === 'cluster') {
    const clusterOptions: ClusterOptions = {
      ...common,
      redisOptions: perNode,
      maxRedirections: maxRetriesPerRequest === null ? CLUSTER_PATIENT_REDIRECTIONS : 16,
      retryDelayOnFailover: CLUSTER_RETRY_DELAY_MS,
      retryDelayOnClusterDown: CLUSTER_RETRY_DELAY_MS,
      retryDelayOnTryAgain: CLUSTER_RETRY_DELAY_MS,
      clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    };
    client = new Cluster(t.nodes, clusterOptions);
  } else if (t.kind === 'sentinel') {
    client = new SingleRedis({
      ...common, ...perNode, sentinels: t.sentinels, name: t.name, failoverDetector: true,
      // A hung sentinel (its process stopped, its host cut off) would stall every reconnection; ask the next.
      sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS, Connector: SentinelFailoverConnector,
    });
  } else {
    client = new SingleRedis({ ...redisOptions(t.url, name), ...common, ...perNode });
  }
  // ioredis reconnects by itself; a failed command also surfaces where it is awaited (a 503 in the API).
  client.on('error', logger ? errorLogger(logger, name) : () => {});
  return client;
}

/**
 * A connection for a BullMQ Queue, Worker, QueueEvents or FlowProducer
 * (a Worker needs maxRetriesPerRequest null; a Queue the API adds to may
 * fail fast). BullMQ does not close a connection it is handed: its owner
 * quits it after closing the BullMQ object.
 */
export function bullConnection(connection: RedisConnection, name: string, maxRetriesPerRequest: number | null = null): Redis {
  return createRedis(connection, name, { maxRetriesPerRequest, lazyConnect: false });
}

const CLUSTER_SLOTS = 16384;

/** How long a readiness check (/v1/readyz, /v2/health/ready) waits for Redis. */
export const READY_TIMEOUT_MS = 1000;

/** promise, or a rejection saying why() once ms have passed without it settling. */
function within<T>(promise: Promise<T>, ms: number, why: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(why())), Math.max(0, ms));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Every slot has a primary in the client's view, and each of them answers before the deadline. */
async function checkSlots(redis: Cluster, deadline: number): Promise<void> {
  const ranges = new Map<string, Array<[number, number]>>();
  let uncovered = 0;
  for (let slot = 0; slot < CLUSTER_SLOTS; slot++) {
    const primary = redis.slots[slot]?.[0];
    if (!primary) {
      uncovered++;
      continue;
    }
    const list = ranges.get(primary) ?? [];
    const last = list.at(-1);
    if (last && last[1] === slot - 1) last[1] = slot;
    else list.push([slot, slot]);
    ranges.set(primary, list);
  }
  if (uncovered > 0) throw new Error(`${uncovered} of ${CLUSTER_SLOTS} slots have no primary`);
  const nodes = new Map(redis.nodes('all').map((n) => [`${n.options.host}:${n.options.port}`, n]));
  await Promise.all([...ranges].map(async ([primary, list]) => {
    const slots = list.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
    const node = nodes.get(primary);
    if (!node) throw new Error(`primary ${primary} of slots ${slots} is not connected`);
    const ping = node.ping().catch((err: Error) => { throw new Error(`primary ${primary} of slots ${slots} does not answer: ${err.message}`); });
    const ms = deadline - Date.now();
    await within(ping, ms, () => `primary ${primary} of slots ${slots} does not answer within ${Math.max(0, ms)} ms`);
  }));
}

/**
 * Throws, saying why, unless the service can use its Redis within ms. One
 * node: it answers. Sentinel: the connection is to the primary (ROLE), not
 * to a node demoted under it. Cluster, from the client's view: every slot
 * has a primary and every such primary answers (one node that answers says
 * nothing of the slots the others hold).
 */
export async function checkReady(redis: Redis, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  const noAnswer = () => `no answer within ${ms} ms`;
  if (redis instanceof Cluster) {
    try {
      await checkSlots(redis, deadline);
    } catch (first) {
      // The client learns of a failover from a command that failed on its slots; one that only pinged has not:
      // refresh the view from the cluster and look again. A refresh that cannot end in time (it waits on a node
      // that does not answer) leaves the first reason, which names the primary.
      const refresh = new Promise<void>((resolve) => redis.refreshSlotsCache(() => resolve()));
      const refreshed = await within(refresh, deadline - Date.now(), noAnswer).then(() => true, () => false);
      if (!refreshed) throw first;
      await checkSlots(redis, deadline);
    }
    return;
  }
  if (redis.options.sentinels?.length) {
    const [role] = await within(redis.role(), ms, noAnswer) as [string];
    if (role !== 'master') throw new Error(`the connection is to a ${role}, not to the primary`);
    return;
  }
  await within(redis.ping(), ms, noAnswer);
}

/** Close a connection; one that Redis or BullMQ already closed (or that cannot say goodbye) is just dropped. */
export async function quitQuietly(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  await client.quit().then(() => {}, () => client.disconnect());
}

/** Delete every key under a prefix, BullMQ's included (tests, tooling); on a cluster, on every primary. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  if (redis instanceof Cluster && redis.status === 'wait') await redis.connect();
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  let deleted = 0;
  for (const node of nodes) {
    for (const pattern of keysFor(prefix).patterns) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        // One key per command: a cluster refuses a multi-key UNLINK across slots.
        const counts = await Promise.all(keys.map((key) => node.unlink(key)));
        deleted += counts.reduce((a, b) => a + b, 0);
      } while (cursor !== '0');
    }
  }
  return deleted;
}
