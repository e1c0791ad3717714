/**
 * A process whose Redis is gone can still be stopped: SIGTERM ends it within
 * SHUTDOWN_TIMEOUT_MS whatever Redis does, and a second signal ends it at
 * once (npm start and npm run api, against a private redis-server that is
 * then killed).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { freePort, PrivateRedis, until } from '../api/processes.js';

const MAIN = path.resolve(import.meta.dirname, '../../dist/src/main.js');
const TIMEOUT_MS = 2000;
let redis: PrivateRedis | undefined;

afterEach(async () => {
  await redis?.stop();
});

/** `node dist/src/main.js [--role api]` on a private Redis, up and serving; then that Redis killed. */
async function startWithoutRedis(args: string[], options: { timeoutMs?: number; runningJob?: boolean } = {}) {
  redis = new PrivateRedis(await freePort());
  await redis.start();
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, PORT: String(port), REDIS_URL: redis.url, NORMLAB_PREFIX: `nltest-stop-${process.pid}`, NORMLAB_API_KEYS: '', SHUTDOWN_TIMEOUT_MS: String(options.timeoutMs ?? TIMEOUT_MS), WORKER_CONCURRENCY: '1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const base = `http://127.0.0.1:${port}/v1`;
  await until(async () => fetch(`${base}/readyz`).then((r) => r.ok, () => false), 20_000, 'the process to be ready');
  if (options.runningJob) {
    const spec = { dataset: { id: 'spirals', size: 20_000 }, model: { hidden: [64, 64] }, training: { epochs: 1000, batchSize: 16 } };
    const res = await fetch(`${base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    const { id } = (await res.json()) as { id: string };
    await until(async () => ((await (await fetch(`${base}/jobs/${id}`)).json()) as { status: string }).status === 'running', 20_000, 'the job to run');
  }
  await redis.kill();
  await new Promise((r) => setTimeout(r, 300));
  return { child, exited, output: () => output };
}

it.each([
  [['--role', 'api'], false],
  // A running job that cannot checkpoint holds the graceful stop: SHUTDOWN_TIMEOUT_MS ends it.
  [[], true],
])('stops within SHUTDOWN_TIMEOUT_MS after SIGTERM with Redis gone (%j, running job: %s)', async (args, runningJob) => {
  const { child, exited, output } = await startWithoutRedis(args, { runningJob });
  const t0 = Date.now();
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), TIMEOUT_MS + 3000))]);
  if (code === 'still running') child.kill('SIGKILL');
  expect(code, output()).not.toBe('still running');
  expect(Date.now() - t0).toBeLessThan(TIMEOUT_MS + 3000);
}, 60_000);

it('exits at once on a second signal with Redis gone', async () => {
  // A running job that cannot checkpoint (no Redis) holds the graceful stop until SHUTDOWN_TIMEOUT_MS (60 s here).
  const { child, exited, output } = await startWithoutRedis([], { timeoutMs: 60_000, runningJob: true });
  child.kill('SIGTERM');
  await until(() => output().includes('stopping'), 5000, 'the first signal to be seen');
  await new Promise((r) => setTimeout(r, 500));
  expect(child.exitCode, 'still stopping').toBeNull();
  const t0 = Date.now();
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 1500))]);
  if (code === 'still running') child.kill('SIGKILL');
  expect(code, output()).toBe(1);
  expect(Date.now() - t0).toBeLessThan(1500);
  expect(output()).toContain('second signal: stopping now');
}, 60_000);
