/**
 * Redis Cluster failover under load: kill -9 the primary that holds the
 * queue's slot while 10 jobs train (see ./failover.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { keysFor } from '../../src/queue/keys.js';
import { failoverUnderLoad } from './failover.js';
import { RedisClusterServers } from '../redis-servers.mjs';

let cluster: RedisClusterServers;
beforeAll(async () => { cluster = await RedisClusterServers.start(); }, 60_000);
afterAll(async () => cluster?.stop());

it('every job ends succeeded exactly once, with each epoch once, through the failover of the queue\'s primary', async () => {
  let killed = 0;
  const figures = await failoverUnderLoad({
    name: 'redis-cluster',
    config: cluster.config(),
    async killPrimary(stack) {
      killed = await cluster.primaryOf(keysFor(stack.config.prefix).bullPrefix);
      await cluster.kill(killed);
    },
  });
  expect(figures).toMatchObject({ duplicated: 0, lost: 0 });
  expect(figures.succeeded).toBe(figures.submitted);
  // The killed primary's replica serves the queue's slot now.
  expect(await cluster.primaryOf(keysFor(figures.prefix).bullPrefix)).not.toBe(killed);
}, 150_000);
