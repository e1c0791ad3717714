/** `npm start` without Redis: a private redis-server with an append-only file, reused when still running. */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { localRedis, NoRedisError, redisAnswers } from '../../src/store/local-redis.js';
import { createRedis } from '../../src/store/redis.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'normlab-redis-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A port nothing listens on, standing in for an empty 6379. */
async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

it('uses the default port when it answers', async () => {
  const redis = await localRedis(dir, 6379);
  expect(redis).toMatchObject({ url: 'redis://127.0.0.1:6379', origin: 'default' });
});

it('starts a private server whose data survives a restart', async () => {
  const probe = await closedPort();
  const first = await localRedis(dir, probe);
  expect(first.origin).toBe('started');
  let client = createRedis(first.url, 'test');
  await client.set('survives', 'yes');
  await client.quit();

  // A second start while it runs reuses it.
  const again = await localRedis(dir, probe);
  expect(again).toMatchObject({ url: first.url, origin: 'reused' });

  await first.stop();
  const port = Number(new URL(first.url).port);
  expect(await redisAnswers('127.0.0.1', port)).toBe(false);

  const second = await localRedis(dir, probe);
  expect(second.origin).toBe('started');
  client = createRedis(second.url, 'test');
  expect(await client.get('survives')).toBe('yes');
  await client.quit();
  await second.stop();
});

it('says how to get Redis when there is none', async () => {
  const probe = await closedPort();
  const empty = mkdtempSync(path.join(os.tmpdir(), 'normlab-nopath-'));
  const saved = process.env.PATH;
  process.env.PATH = empty;
  try {
    const err = await localRedis(path.join(dir, 'none'), probe).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRedisError);
    expect((err as Error).message).toMatch(/apt-get install redis-server[\s\S]*docker compose up -d redis[\s\S]*REDIS_URL=/);
  } finally {
    process.env.PATH = saved;
  }
});
