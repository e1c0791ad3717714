/**
 * Test stack: the API (real listen on a free port) and optionally an
 * in-process training worker, against the real Redis under a key prefix of
 * the test file's own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { createRedis, deleteKeys, type RedisConnection } from '../../src/store/redis.js';
import { startWorker, type TrainWorker } from '../../workers/worker.js';

export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

/** A job that trains in well under a second. */
export const TINY_SPEC = {
  dataset: { id: 'spirals', size: 300 },
  model: { hidden: [16, 16] },
  training: { epochs: 3 },
};

export interface Stack {
  config: Config;
  app: FastifyInstance;
  /** http://127.0.0.1:port/v1 */
  base: string;
  worker: TrainWorker | null;
  close(): Promise<void>;
}

export function testConfig(name: string, overrides: Partial<Config> = {}): Config {
  return loadConfig({}, {
    redisUrl: REDIS_URL,
    prefix: `nltest-${name}-${randomBytes(3).toString('hex')}`,
    logLevel: 'error',
    workerConcurrency: 2,
    progressIntervalMs: 50,
    ...overrides,
  });
}

export async function startStack(name: string, options: { worker?: boolean; config?: Partial<Config> } = {}): Promise<Stack> {
  const config = testConfig(name, options.config);
  const app = await buildApp(config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const worker = options.worker ? startWorker(config, pino({ level: config.logLevel === 'silent' ? 'silent' : 'warn' })) : null;
  return {
    config, app, worker,
    base: `http://127.0.0.1:${port}/v1`,
    async close() {
      // A connection still open after 10 s must not hang the teardown: seen now and then in
      // tenants.test.ts in full runs (the API's close waited on it past the 60 s hook limit).
      const force = setTimeout(() => {
        app.server.getConnections((_err, n) => console.error(`${name}: closing ${n} connection(s) still open after 10 s`));
        app.server.closeAllConnections();
      }, 10_000);
      await app.close();
      clearTimeout(force);
      await worker?.close(true);
      await cleanup(config.prefix, config);
    },
  };
}

export async function cleanup(prefix: string, connection: RedisConnection = REDIS_URL): Promise<void> {
  const redis = createRedis(connection, 'normlab:test-cleanup');
  await deleteKeys(redis, prefix);
  await redis.quit();
}

/** Headers of a request with an optional API key. */
export function auth(key?: string): Record<string, string> {
  return key ? { authorization: `Bearer ${key}` } : {};
}

export async function api(base: string, method: string, path: string, body?: unknown, key?: string): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...auth(key), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, headers: res.headers, body: type.includes('json') && text ? JSON.parse(text) : text };
}

export interface SseEvent { id: string; event: string; data: any }

export interface ReadOptions { lastEventId?: string; stopAfter?: number; until?: (e: SseEvent) => boolean; key?: string }

/**
 * Read a job's event stream until it ends (terminal event), or until
 * `stopAfter` events or the first event `until` accepts (the connection is
 * then dropped).
 */
export function readEvents(base: string, jobId: string, options: ReadOptions = {}): Promise<SseEvent[]> {
  return readStream(`${base}/jobs/${jobId}/events`, options);
}

/** Read any event stream (a job's, an experiment's) as readEvents does. */
export async function readStream(url: string, options: ReadOptions = {}): Promise<SseEvent[]> {
  const controller = new AbortController();
  const res = await fetch(url, {
    headers: { ...auth(options.key), ...(options.lastEventId ? { 'last-event-id': options.lastEventId } : {}) },
    signal: controller.signal,
  });
  if (res.status !== 200) throw new Error(`events: HTTP ${res.status} ${await res.text()}`);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body!) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':') && l.includes(': ')).map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]));
        if (fields.data === undefined) continue;
        events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
        if ((options.stopAfter !== undefined && events.length >= options.stopAfter) || options.until?.(events.at(-1)!)) {
          controller.abort();
          return events;
        }
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  }
  return events;
}

export async function submit(base: string, spec: unknown = TINY_SPEC, key?: string): Promise<string> {
  const res = await api(base, 'POST', '/jobs', spec, key);
  if (res.status !== 202) throw new Error(`submit: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

/** Poll GET /jobs/:id until `until(job)` holds. */
export async function waitFor(base: string, id: string, until: (job: any) => boolean, timeoutMs = 20_000, key?: string): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await api(base, 'GET', `/jobs/${id}`, undefined, key);
    if (until(body)) return body;
    if (Date.now() > deadline) throw new Error(`timed out waiting on job ${id}: ${JSON.stringify(body).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
