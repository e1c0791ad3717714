/**
 * Writes a failover must not take back. Redis replicates asynchronously: a
 * promoted replica can miss the primary's last writes. A durable write runs
 * a WAIT for replicas right after it, on the same connection, so once it
 * returns the replicas hold it (or REDIS_WAIT_TIMEOUT_MS passed).
 */
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { redisTarget, type Config } from '../config.js';

/** Replicas a durable write waits for (Redis WAIT), and for how long at most. */
export interface Durability { replicas: number; timeoutMs: number }

export const NOT_DURABLE: Durability = { replicas: 0, timeoutMs: 0 };

/**
 * From the settings: REDIS_WAIT_REPLICAS on a cluster or a Sentinel group,
 * none on one node (REDIS_URL), which has no replica to wait for.
 */
export function durabilityFor(config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels' | 'redisSentinelName' | 'redisWaitReplicas' | 'redisWaitTimeoutMs'>): Durability {
  return { replicas: redisTarget(config).kind === 'single' ? 0 : config.redisWaitReplicas, timeoutMs: config.redisWaitTimeoutMs };
}

/**
 * Wait until the replicas of `durability` hold every write this client sent
 * so far to the nodes serving `keys` (one WAIT per node, at once). A WAIT
 * runs on the connection that carried the writes (on a cluster, the node's
 * own connection), so it covers them. A WAIT that fails or times out leaves
 * the writes as durable as asynchronous replication makes them.
 */
export async function waitForReplicas(redis: Redis | Cluster, durability: Durability, keys: string[]): Promise<void> {
  if (durability.replicas === 0) return;
  const nodes = 'isCluster' in redis && redis.isCluster
    ? new Set(keys.map((key) => nodeServing(redis as Cluster, key)).filter((n) => n !== undefined))
    : new Set([redis as Redis]);
  await Promise.all([...nodes].map((node) => node.wait(durability.replicas, durability.timeoutMs).catch(() => {})));
}

/** Run `write` (an ordinary command, with all of the client's redirection and failover handling), then waitForReplicas for `key`. */
export async function writeDurably<T>(redis: Redis | Cluster, durability: Durability, key: string, write: () => Promise<T>): Promise<T> {
  const result = await write();
  await waitForReplicas(redis, durability, [key]);
  return result;
}

/** The connection a cluster client uses for `key`'s slot now. */
function nodeServing(cluster: Cluster, key: string): Redis | undefined {
  const id = cluster.slots[calculateSlot(key)]?.[0];
  return cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === id);
}
