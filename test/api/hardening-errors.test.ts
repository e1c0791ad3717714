/**
 * Error bodies and rate limits at the edges: failed authentication is
 * limited per client address; requests Node's HTTP parser refuses, JSON with
 * prototype-poisoning keys and JSON sent as text/plain get the project's
 * error shape and a precise code; cancelling a job a worker just took says
 * it is running.
 */
import net from 'node:net';
import { Worker } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { keysFor, QUEUE_NAME } from '../../src/queue/keys.js';
import { redisOptions } from '../../src/store/redis.js';
import { api, startStack, TINY_SPEC, type Stack } from './helpers.js';
import { until } from './processes.js';

const KEY = 'k'.repeat(24);
let stack: Stack;
let port: number;
beforeAll(async () => {
  stack = await startStack('edges', { config: { apiKeys: [{ key: KEY, tenant: 't' }], authFailMax: 5, authFailWindowMs: 1500, rateLimitMax: 0 } });
  port = Number(new URL(stack.base).port);
});
afterAll(async () => stack?.close());

/** Raw bytes to the API; what it answers before closing. */
function raw(request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.on('data', (d) => { data += d; });
    socket.on('close', () => resolve(data));
    setTimeout(() => { socket.destroy(); resolve(data); }, 3000);
  });
}

it('limits failed authentications per client address, valid keys included once over', async () => {
  for (let i = 0; i < 5; i++) expect((await api(stack.base, 'GET', '/jobs', undefined, `wrong-key-${i}-0123456789`)).status).toBe(401);
  const limited = await api(stack.base, 'GET', '/jobs', undefined, 'wrong-key-x-0123456789');
  expect(limited.status).toBe(429);
  expect(limited.body.error).toMatchObject({ code: 'RATE_LIMITED', details: { limit: 5, setting: 'AUTH_FAIL_MAX' } });
  expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  // Guessing stops paying off: the right key is refused too until the window ends.
  expect((await api(stack.base, 'GET', '/jobs', undefined, KEY)).status).toBe(429);
  expect((await api(stack.base, 'GET', '/healthz')).status).toBe(200);
  await until(async () => (await api(stack.base, 'GET', '/jobs', undefined, KEY)).status === 200, 5000, 'the window to end');
});

it('answers requests the HTTP parser refuses with the project\'s error body', async () => {
  for (const request of [
    'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}',
    'GARBAGE\r\n\r\n',
    'GET /v1/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
  ]) {
    const answer = await raw(request);
    expect(answer, request).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(body.error).toMatchObject({ code: 'BAD_REQUEST' });
    expect(body.error.message).toMatch(/^the request is not valid HTTP: /);
    expect(typeof body.error.details).toBe('object');
  }
});

it('names prototype-poisoning keys, and refuses JSON sent as text/plain with 415', async () => {
  const post = (body: string, type = 'application/json') => fetch(`${stack.base}/jobs`, {
    method: 'POST', headers: { 'content-type': type, authorization: `Bearer ${KEY}` }, body,
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  for (const body of ['{"__proto__":{"x":1}}', '{"dataset":{"constructor":{"prototype":{}}}}']) {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('FORBIDDEN_JSON_KEY');
  }
  expect((await post('{"a":')).body.error.code).toBe('MALFORMED_JSON');
  const text = await post(JSON.stringify(TINY_SPEC), 'text/plain');
  expect(text.status).toBe(415);
  expect(text.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
});

it('reports a job a worker has just taken as running when it is cancelled (202)', async () => {
  const id = (await api(stack.base, 'POST', '/jobs', TINY_SPEC, KEY)).body.id as string;
  // A worker that takes the job and has not yet recorded its start.
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const taken = new Promise<void>((resolve) => {
    const worker = new Worker(QUEUE_NAME, async () => { resolve(); await held; }, {
      connection: redisOptions(stack.config.redisUrl, 'normlab:test-worker'), prefix: keysFor(stack.config.prefix).bullPrefix,
    });
    afterAll(async () => { release(); await worker.close(true); });
  });
  await taken;
  const res = await api(stack.base, 'DELETE', `/jobs/${id}`, undefined, KEY);
  expect(res.status).toBe(202);
  expect(res.body.status).toBe('running');
  release();
});
