/**
 * Redis connections. Every client gets the `appendJobEvent` script, the one
 * way job events are written (see ./jobs.ts).
 */
import { Redis, type RedisOptions, type Result } from 'ioredis';
import { APPEND_JOB_EVENT_LUA } from './jobs.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** KEYS: job, events, history, cancel. ARGV: maxLen, type, data, ttl, field, value, … */
    appendJobEvent(...args: Array<string | number>): Result<string | null, Context>;
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

export function createRedis(url: string, name: string, options: RedisOptions = {}): Redis {
  return new Redis({
    ...redisOptions(url, name),
    lazyConnect: true,
    scripts: { appendJobEvent: { numberOfKeys: 4, lua: APPEND_JOB_EVENT_LUA } },
    ...options,
  });
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
