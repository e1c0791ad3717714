/**
 * Sentinel failover under load: kill -9 the primary while 10 jobs train (see
 * ./failover.ts); the sentinels promote the replica.
 */
import { expect, it } from 'vitest';
import { failoverUnderLoad } from './failover.js';
import { SentinelServers } from '../redis-servers.mjs';

it('every job ends succeeded exactly once, with each epoch once, through the failover of the primary', { timeout: 120_000 }, async () => {
  const group = await SentinelServers.start();
  try {
    const figures = await failoverUnderLoad({
      name: 'redis-sentinel',
      config: group.config(),
      async killPrimary() {
        await group.kill(group.primaryPort);
      },
    });
    expect(figures).toMatchObject({ duplicated: 0, lost: 0 });
    expect(figures.succeeded).toBe(figures.submitted);
    expect(await group.currentPrimary()).toBe(group.replicaPort);
  } finally {
    await group.stop();
  }
});
