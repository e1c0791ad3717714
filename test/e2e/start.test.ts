/**
 * `npm start` as a user runs it: one process with the API and an embedded
 * worker; submit a job on spirals, follow it, predict. SIGTERM ends event
 * streams politely and hands the running job back to the queue; after a
 * restart the job resumes from its checkpoint and completes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, cleanup, readEvents, submit } from '../api/helpers.js';

const prefix = `nltest-e2e-${process.pid}`;
let port: number;
let server: ChildProcess;
let base: string;
let output = '';

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function start(): Promise<void> {
  output = '';
  server = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../dist/src/main.js')], {
    // REDIS_URL as the user has it: unset means the local default (or a private redis-server).
    env: {
      ...process.env, PORT: String(port), REDIS_URL: process.env.REDIS_URL ?? '', NORMLAB_PREFIX: prefix, NORMLAB_API_KEYS: '',
      WORKER_CONCURRENCY: '1', LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (d) => { output += d; });
  server.stderr!.on('data', (d) => { output += d; });
  // Up to 30 s: on a loaded 2-core machine the start (native addon, worker threads, Redis) has taken 15 s.
  for (let i = 0; i < 300; i++) {
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`npm start did not come up:\n${output}`);
}

beforeAll(async () => {
  port = await freePort();
  base = `http://127.0.0.1:${port}/v1`;
  await start();
});
afterAll(async () => {
  if (server.exitCode === null) server.kill('SIGKILL');
  await cleanup(prefix);
});

it('trains a model and predicts with it', async () => {
  const id = await submit(base, { dataset: { id: 'spirals', size: 300 }, model: { hidden: [16, 16] }, training: { epochs: 3 } });
  const events = await readEvents(base, id);
  expect(events.at(-1)!.event).toBe('completed');
  const res = await api(base, 'POST', `/models/${id}/predict`, { instances: [[0.5, -0.5]] });
  expect(res.status).toBe(200);
  expect(res.body.predictions[0].probabilities).toHaveLength(3);
});

it('warns at start that the API is open without NORMLAB_API_KEYS', () => {
  expect(output).toMatch(/NORMLAB_API_KEYS is not set: the API is open/);
});

let pausedJob: string;

it('on SIGTERM ends event streams politely, hands the running job back and exits 0', async () => {
  pausedJob = await submit(base, { dataset: { id: 'spirals', size: 40_000 }, model: { hidden: [64, 64] }, training: { epochs: 6, batchSize: 16 } });
  await readEvents(base, pausedJob, { until: (e) => e.event === 'progress' && e.data.epoch >= 2 });
  const stream = await fetch(`${base}/jobs/${pausedJob}/events`);
  const text = stream.text();
  server.kill('SIGTERM');
  const [code] = await once(server, 'exit');
  expect(code).toBe(0);
  expect(await text).toMatch(/: the server is shutting down; reconnect with Last-Event-ID\n\n$/);
});

it('resumes the handed-back job after a restart', async () => {
  await start();
  const events = await readEvents(base, pausedJob);
  expect(events.at(-1)!.event).toBe('completed');
  const resumed = events.filter((e) => e.event === 'started').at(-1)!.data;
  expect(resumed).toMatchObject({ attempt: 2, resumedFrom: { epoch: expect.any(Number), step: expect.any(Number) } });
  expect(events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
});

it('stops cleanly on SIGTERM', async () => {
  server.kill('SIGTERM');
  const [code] = await once(server, 'exit');
  expect(code).toBe(0);
});
