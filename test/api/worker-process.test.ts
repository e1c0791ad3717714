/**
 * The worker as a process of its own (`npm run worker`), against an API
 * that has no worker: any number of each can share one Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, readEvents, startStack, submit, type Stack } from './helpers.js';

let stack: Stack;
let worker: ChildProcess;
let output = '';

beforeAll(async () => {
  stack = await startStack('worker-process');
  worker = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../dist/workers/worker.js')], {
    env: { ...process.env, REDIS_URL: stack.config.redisUrl, NORMLAB_PREFIX: stack.config.prefix, WORKER_CONCURRENCY: '1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker.stdout!.on('data', (d) => { output += d; });
  worker.stderr!.on('data', (d) => { output += d; });
});
afterAll(async () => {
  if (worker.exitCode === null) worker.kill('SIGKILL');
  await stack.close();
});

it('trains a job submitted to the API', async () => {
  const id = await submit(stack.base);
  const events = await readEvents(stack.base, id);
  expect(events.at(-1)!.event).toBe('completed');
  const res = await api(stack.base, 'POST', `/models/${id}/predict`, { instances: [[0, 1]] });
  expect(res.status).toBe(200);
  expect(output).toMatch(/training worker started/);
});

it('stops cleanly on SIGTERM', async () => {
  worker.kill('SIGTERM');
  const [code] = await once(worker, 'exit');
  expect(code).toBe(0);
});
