/**
 * REDIS_WAIT_REPLICAS: on a Sentinel group the API acknowledges a job only
 * once the replica holds it (Redis WAIT). With the replica stopped (SIGSTOP),
 * a submit waits REDIS_WAIT_TIMEOUT_MS and then goes on; with
 * REDIS_WAIT_REPLICAS=0 it does not wait at all.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SentinelServers } from '../redis-servers.mjs';
import { api, startStack, TINY_SPEC, type Stack } from './helpers.js';

const TIMEOUT_MS = 1500;
let group: SentinelServers;

beforeAll(async () => { group = await SentinelServers.start(); }, 60_000);
afterAll(async () => group?.stop());

async function submitMs(stack: Stack): Promise<number> {
  const started = Date.now();
  const res = await api(stack.base, 'POST', '/jobs', TINY_SPEC);
  expect(res.status).toBe(202);
  return Date.now() - started;
}

async function withStack(replicas: number, run: (stack: Stack) => Promise<void>): Promise<void> {
  const stack = await startStack('redis-wait', { config: { ...group.config(), redisWaitReplicas: replicas, redisWaitTimeoutMs: TIMEOUT_MS } });
  try {
    await submitMs(stack); // connections up
    await run(stack);
  } finally {
    await stack.close();
  }
}

it('a submit waits for the replica, up to REDIS_WAIT_TIMEOUT_MS when it is silent', async () => {
  await withStack(1, async (stack) => {
    expect(await submitMs(stack)).toBeLessThan(TIMEOUT_MS);
    group.signal(group.replicaPort, 'SIGSTOP');
    try {
      const silent = await submitMs(stack);
      expect(silent).toBeGreaterThanOrEqual(TIMEOUT_MS);
      // One WAIT round per submit (job, tenant and queue at once), not one per write.
      expect(silent).toBeLessThan(2 * TIMEOUT_MS);
    } finally {
      group.signal(group.replicaPort, 'SIGCONT');
    }
  });
}, 60_000);

it('REDIS_WAIT_REPLICAS=0 does not wait', async () => {
  await withStack(0, async (stack) => {
    group.signal(group.replicaPort, 'SIGSTOP');
    try {
      expect(await submitMs(stack)).toBeLessThan(TIMEOUT_MS);
    } finally {
      group.signal(group.replicaPort, 'SIGCONT');
    }
  });
}, 60_000);
