/**
 * A private redis-server (own port, own append-only file, every write
 * fsynced) killed and restarted under a running API and worker process: both
 * reconnect by themselves, the API answers 503 while Redis is away, and every
 * job completes with all its epochs, once, and its model.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../src/server/app.js';
import { api, readEvents, testConfig } from './helpers.js';
import { freePort, PrivateRedis, startWorkerProcess, stopProcess, until, type Proc } from './processes.js';
import type { FastifyInstance } from 'fastify';

const SPEC = (seed: number) => ({
  dataset: { id: 'spirals', size: 20_000 },
  model: { hidden: [64, 64] },
  training: { epochs: 6, batchSize: 32, seed },
});
const JOBS = 4;

let redis: PrivateRedis;
let app: FastifyInstance;
let base: string;
let worker: Proc | undefined;

beforeAll(async () => {
  redis = new PrivateRedis(await freePort());
  await redis.start();
  const config = testConfig('redis', { redisUrl: redis.url });
  app = await buildApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v1`;
  worker = await startWorkerProcess(config, { WORKER_CONCURRENCY: '2', CHECKPOINT_EVERY_STEPS: '100', LOCK_DURATION_MS: '15000' });
});
afterAll(async () => {
  await stopProcess(worker);
  await app?.close();
  await redis.stop();
});

it('completes every job across a Redis restart', async () => {
  const ids: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const res = await api(base, 'POST', '/jobs', SPEC(i));
    expect(res.status).toBe(202);
    ids.push(res.body.id);
  }
  await readEvents(base, ids[0]!, { until: (e) => e.event === 'checkpoint' });

  await redis.kill();
  const away = await api(base, 'GET', `/jobs/${ids[0]}`);
  expect(away.status).toBe(503);
  expect(away.body.error.code).toBe('REDIS_UNAVAILABLE');
  await new Promise((r) => setTimeout(r, 1000));
  await redis.start();

  const done = async () => {
    const jobs = await Promise.all(ids.map((id) => api(base, 'GET', `/jobs/${id}`)));
    return jobs.every((j) => j.status === 200 && ['succeeded', 'failed', 'cancelled'].includes(j.body.status));
  };
  await until(done, 90_000, 'every job to finish');
  for (const id of ids) {
    const job = (await api(base, 'GET', `/jobs/${id}`)).body;
    expect(job.status, JSON.stringify(job.error)).toBe('succeeded');
    const events = await readEvents(base, id);
    expect(events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(events.filter((e) => e.event === 'completed')).toHaveLength(1);
    expect((await api(base, 'POST', `/models/${id}/predict`, { instances: [[0, 1]] })).status).toBe(200);
  }
  expect((await api(base, 'GET', '/readyz')).status).toBe(200);
}, 150_000);
