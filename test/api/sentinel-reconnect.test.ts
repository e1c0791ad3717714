/**
 * Every connection of the service reaches the promoted primary after a
 * Sentinel failover: many connections (the API, the queue, the event reader,
 * the workers' and their threads' each hold some) reconnect at once while
 * the sentinels announce +switch-master, and none may give up.
 */
import { afterEach, expect, it } from 'vitest';
import { createRedis, type Redis } from '../../src/store/redis.js';
import { SentinelServers } from '../redis-servers.mjs';

/** Enough that some reconnection is asking a sentinel when +switch-master arrives. */
const CONNECTIONS = 150;

let group: SentinelServers | undefined;
let clients: Redis[] = [];
afterEach(async () => {
  for (const c of clients) c.disconnect();
  clients = [];
  await group?.stop();
  group = undefined;
});

/** Kill -9 the primary and wait until every connection writes to the promoted one; returns ms until the last did. */
async function failOver(g: SentinelServers, conns: Redis[], withinMs: number): Promise<number> {
  const killedAt = Date.now();
  await g.kill(g.primaryPort);
  const reached = await Promise.all(conns.map(async (c, i) => {
    for (;;) {
      try {
        // A command can hang while its connection waits for a hung sentinel: bound each try.
        await Promise.race([c.set(`normlab-reconnect-${i}`, 'x'),
          new Promise((_, reject) => setTimeout(() => reject(new Error('no answer')), 2000))]);
        return Date.now() - killedAt;
      } catch {
        if (Date.now() - killedAt > withinMs) return `connection ${i} status ${c.status}`;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }));
  const missing = reached.filter((r) => typeof r === 'string');
  expect(missing, 'connections that never reached the promoted primary').toEqual([]);
  // Each writes to the promoted replica (asked of the connections: a sentinel may be stopped).
  for (const c of conns) expect(Number(await c.config('GET', 'port').then((r) => (r as string[])[1]))).toBe(g.replicaPort);
  return Math.max(...(reached as number[]));
}

it(`all ${CONNECTIONS} connections reach the promoted primary after the primary is killed`, async () => {
  group = await SentinelServers.start();
  const g = group;
  clients = Array.from({ length: CONNECTIONS }, (_, i) => createRedis({ redisClusterNodes: [], ...g.config() }, `normlab:test-${i}`, { maxRetriesPerRequest: 1 }));
  await Promise.all(clients.map((c) => c.connect()));
  const ms = await failOver(g, clients, 30_000);
  console.log(JSON.stringify({ sentinelReconnect: { connections: CONNECTIONS, lastReachedMs: ms } }));
}, 90_000);

it('reaches the promoted primary while the sentinel it asked first hangs (SIGSTOP)', async () => {
  group = await SentinelServers.start();
  const g = group;
  clients = Array.from({ length: 4 }, (_, i) => createRedis({ redisClusterNodes: [], ...g.config() }, `normlab:test-${i}`, { maxRetriesPerRequest: 1 }));
  await Promise.all(clients.map((c) => c.connect()));
  g.signal(g.sentinelPorts[0], 'SIGSTOP');
  await failOver(g, clients, 30_000);
}, 90_000);
