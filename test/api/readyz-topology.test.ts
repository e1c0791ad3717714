/**
 * /readyz on a Redis Cluster and on a Sentinel group (real servers on
 * loopback): ready means usable, not "some node answered". On a cluster a
 * primary whose slots nobody serves makes the API not ready until a replica
 * takes over; on Sentinel a connection left on a node that is no longer the
 * primary does.
 */
import { afterEach, expect, it } from 'vitest';
import { api, startStack, type Stack } from './helpers.js';
import { command, RedisClusterServers, SentinelServers, SingleRedisServer } from '../redis-servers.mjs';

let stack: Stack | undefined;
let deployments: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  await stack?.close();
  stack = undefined;
  for (const d of deployments) await d.stop();
  deployments = [];
});

async function readyz(base: string) {
  return api(base, 'GET', '/readyz');
}

/** Poll /readyz until it answers `status`; returns its last answer. */
async function until(base: string, status: number, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await readyz(base);
    if (res.status === status || Date.now() > deadline) return res;
    await new Promise((r) => setTimeout(r, 200));
  }
}

it('cluster: not ready while a primary is down and its replica cannot take over, ready again once it has', async () => {
  const cluster = await RedisClusterServers.start();
  deployments.push(cluster);
  stack = await startStack('readyz-cluster', { config: { ...cluster.config(), rateLimitMax: 0 } });
  expect((await readyz(stack.base)).status).toBe(200);

  // A primary and its replica: stop the replica (no failover), kill the primary.
  const replica = (await cluster.replicas())[0]!;
  const primary = Number(/master_port:(\d+)/.exec(String(await command(replica, 'INFO', 'replication')))![1]);
  cluster.signal(replica, 'SIGSTOP');
  await cluster.kill(primary);
  // Every answer now, whichever node a ping would have reached, says not ready and names the primary.
  for (let i = 0; i < 6; i++) {
    const res = await readyz(stack.base);
    expect(res.status, `readyz ${i} with ${primary} down`).toBe(503);
    expect(res.body.error.code).toBe('REDIS_UNAVAILABLE');
    expect(res.body.error.message).toContain(`127.0.0.1:${primary}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  cluster.signal(replica, 'SIGCONT');
  const again = await until(stack.base, 200, 30_000);
  expect(again.status, JSON.stringify(again.body)).toBe(200);
}, 120_000);

it('sentinel: not ready while the connection is to a node that is no longer the primary, ready again on the promoted one', async () => {
  const group = await SentinelServers.start();
  const elsewhere = await SingleRedisServer.start();
  deployments.push(group, elsewhere);
  stack = await startStack('readyz-sentinel', { config: { ...group.config(), rateLimitMax: 0 } });
  expect((await readyz(stack.base)).status).toBe(200);

  // The primary becomes a replica of another server under the API's connection (still open, still answering PING).
  await command(group.primaryPort, 'REPLICAOF', '127.0.0.1', String(elsewhere.port));
  const res = await readyz(stack.base);
  expect(res.status, JSON.stringify(res.body)).toBe(503);
  expect(res.body.error.code).toBe('REDIS_UNAVAILABLE');
  // The sentinels take a primary that says it is a replica for down and promote the replica.
  const again = await until(stack.base, 200, 40_000);
  expect(again.status, JSON.stringify(again.body)).toBe(200);
  expect(await group.currentPrimary()).toBe(group.replicaPort);
}, 120_000);
