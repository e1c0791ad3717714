/**
 * `npm start` as a user runs it: one process with the API and an embedded
 * worker; submit a job on spirals, follow it, predict, stop with SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, cleanup, readEvents, submit } from '../api/helpers.js';

const prefix = `nltest-e2e-${process.pid}`;
let server: ChildProcess;
let base: string;

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}/v1`;
  server = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../dist/src/main.js')], {
    // REDIS_URL as the user has it: unset means the local default (or a private redis-server).
    env: { ...process.env, PORT: String(port), REDIS_URL: process.env.REDIS_URL ?? '', NORMLAB_PREFIX: prefix, WORKER_CONCURRENCY: '1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('npm start did not come up');
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

it('stops cleanly on SIGTERM', async () => {
  server.kill('SIGTERM');
  const [code] = await once(server, 'exit');
  expect(code).toBe(0);
});
