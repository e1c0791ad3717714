/**
 * Event streams share one blocking Redis connection per API process: the
 * API's Redis connections stay the same with 0, 50 or 300 open streams,
 * streams per tenant are capped (429), and with Redis limited to 40 clients
 * one tenant's 50 streams no longer keep another tenant's job waiting.
 * Out-of-range Last-Event-IDs are a 400. Connection errors are logged,
 * rate-limited.
 */
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../src/server/app.js';
import { createRedis, type Redis } from '../../src/store/redis.js';
import { api, auth, readEvents, testConfig } from './helpers.js';
import { freePort, PrivateRedis, startWorkerProcess, stopProcess, until, type Proc } from './processes.js';

const KEY_A = 'a'.repeat(24);
const KEY_B = 'b'.repeat(24);
const LONG = { dataset: { id: 'spirals', size: 2000 }, model: { hidden: [32] }, training: { epochs: 1000, batchSize: 32 } };
const TINY = { dataset: { id: 'spirals', size: 300 }, model: { hidden: [16] }, training: { epochs: 2 } };

let redis: PrivateRedis;
let probe: Redis;
let worker: Proc | undefined;
const apps: FastifyInstance[] = [];
/** One key prefix for every API of this file, so the worker serves them all. */
let prefix: string | undefined;

async function startApi(overrides: Parameters<typeof testConfig>[1]): Promise<{ app: FastifyInstance; base: string }> {
  const config = testConfig('sse', { redisUrl: redis.url, apiKeys: [{ key: KEY_A, tenant: 'a' }, { key: KEY_B, tenant: 'b' }], rateLimitMax: 0, ...overrides });
  if (prefix) config.prefix = prefix;
  prefix = config.prefix;
  const app = await buildApp(config);
  apps.push(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v1` };
}

/** Connections the API processes hold (their names start with normlab:api). */
async function apiConnections(): Promise<number> {
  const list = (await probe.client('LIST')) as string;
  return list.split('\n').filter((line) => / name=normlab:api/.test(line)).length;
}

/** Open an event stream and wait for its first bytes; close() drops it. */
async function openStream(base: string, id: string, key: string): Promise<{ status: number; body: string; close: () => void }> {
  const controller = new AbortController();
  const res = await fetch(`${base}/jobs/${id}/events`, { headers: auth(key), signal: controller.signal });
  if (res.status !== 200) return { status: res.status, body: await res.text(), close: () => {} };
  const reader = res.body!.getReader();
  await reader.read();
  return { status: 200, body: '', close: () => controller.abort() };
}

beforeAll(async () => {
  redis = new PrivateRedis(await freePort(), ['--maxclients', '40']);
  await redis.start();
  probe = createRedis(redis.url, 'probe');
});
afterAll(async () => {
  await stopProcess(worker);
  for (const app of apps) await app.close();
  await probe?.quit();
  await redis?.stop();
});

it('caps streams per tenant; another tenant\'s job runs at once; the API holds the same Redis connections', async () => {
  const { base, app } = await startApi({});
  worker = await startWorkerProcess(app.services.config, { WORKER_CONCURRENCY: '2' });
  const long = (await api(base, 'POST', '/jobs', LONG, KEY_A)).body.id as string;
  await until(async () => (await api(base, 'GET', `/jobs/${long}`, undefined, KEY_A)).body.status === 'running', 20_000, 'the long job to run');
  const idle = await apiConnections();

  const streams = await Promise.all(Array.from({ length: 50 }, () => openStream(base, long, KEY_A)));
  const refused = streams.filter((s) => s.status === 429);
  expect(streams.filter((s) => s.status === 200)).toHaveLength(20);
  expect(refused).toHaveLength(30);
  expect(JSON.parse(refused[0]!.body).error).toMatchObject({ code: 'TOO_MANY_STREAMS', details: { limit: 20, setting: 'SSE_MAX_STREAMS_PER_TENANT' } });
  expect(await apiConnections()).toBe(idle);

  const t0 = Date.now();
  const other = (await api(base, 'POST', '/jobs', TINY, KEY_B)).body.id as string;
  await until(async () => (await api(base, 'GET', `/jobs/${other}`, undefined, KEY_B)).body.status === 'succeeded', 15_000, 'tenant b\'s job to succeed');
  expect(Date.now() - t0).toBeLessThan(15_000);
  // Tenant b has its own budget.
  const bStream = await openStream(base, other, KEY_B);
  expect(bStream.status).toBe(200);

  for (const s of streams) s.close();
  await until(async () => (await openStream(base, long, KEY_A).then((s) => { s.close(); return s.status; })) === 200, 5000, 'a stream slot to free');
  expect((await api(base, 'DELETE', `/jobs/${long}`, undefined, KEY_A)).status).toBeOneOf([200, 202]);
}, 90_000);

it('serves 0, 50 and 300 streams with the same Redis connections, and every stream gets every event', async () => {
  for (const app of apps.splice(0)) await app.close();
  // No worker: the job stays queued, and its cancellation is the live event every stream must get.
  await stopProcess(worker);
  const { base } = await startApi({ sseMaxStreamsPerTenant: 1000 });
  const id = (await api(base, 'POST', '/jobs', LONG, KEY_A)).body.id as string;
  const counts: Record<number, number> = { 0: await apiConnections() };
  const ends: Array<Promise<string[]>> = [];
  for (const target of [50, 300]) {
    while (ends.length < target) {
      ends.push(readEvents(base, id, { key: KEY_A }).then((events) => events.map((e) => e.event)));
    }
    await until(async () => (await openCount(base)) >= target, 20_000, `${target} streams to open`);
    counts[target] = await apiConnections();
  }
  expect(counts[50]).toBe(counts[0]);
  expect(counts[300]).toBe(counts[0]);
  console.log(`API Redis connections with 0 / 50 / 300 event streams: ${counts[0]} / ${counts[50]} / ${counts[300]}`);

  expect((await api(base, 'DELETE', `/jobs/${id}`, undefined, KEY_A)).status).toBeOneOf([200, 202]);
  const all = await Promise.all(ends);
  for (const events of all) {
    expect(events).toEqual(['queued', 'cancelled']);
  }
}, 120_000);

/** Open streams on the newest app, as its stream reader counts them. */
async function openCount(_base: string): Promise<number> {
  return (apps.at(-1)!.services.streams as unknown as { open: Set<unknown> }).open.size;
}

it('refuses a Last-Event-ID beyond the range of stream ids with 400', async () => {
  const { base } = await startApi({});
  const id = (await api(base, 'POST', '/jobs', TINY, KEY_A)).body.id as string;
  for (const headers of [{ 'last-event-id': '99999999999999999999-0' }, { 'last-event-id': '1-18446744073709551616' }]) {
    const res = await fetch(`${base}/jobs/${id}/events`, { headers: { ...auth(KEY_A), ...headers } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error).toMatchObject({ code: 'INVALID_REQUEST', details: { in: 'headers' } });
  }
  const query = await fetch(`${base}/jobs/${id}/events?lastEventId=99999999999999999999-0`, { headers: auth(KEY_A) });
  expect(query.status).toBe(400);
  // The largest id Redis accepts is fine (nothing after it yet).
  const edge = await Promise.race([
    readEvents(base, id, { key: KEY_A, lastEventId: '18446744073709551615-18446744073709551615' }),
    new Promise<[]>((r) => setTimeout(() => r([]), 500)),
  ]);
  expect(edge).toEqual([]);
}, 60_000);

it('logs connection errors, at most one line per interval', async () => {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  const port = await freePort();
  const conn = createRedis(`redis://127.0.0.1:${port}`, 'normlab:test-refused', { retryStrategy: () => 20 }, pino({ level: 'error' }, sink));
  conn.connect().catch(() => {});
  await new Promise((r) => setTimeout(r, 1000));
  conn.disconnect();
  const logged = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'redis connection error');
  expect(logged).toHaveLength(1);
  expect(logged[0]).toMatchObject({ connection: 'normlab:test-refused', level: 50 });
  expect(logged[0].err).toMatch(/ECONNREFUSED/);
});
