// Shared by the API benches: start `npm start` (API + embedded worker) as a child
// process under a private key prefix, talk to it, and clean up.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { createRedis, deleteKeys } from '../dist/src/store/redis.js';

export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/** Starts dist/src/main.js with `env`; resolves once /v1/healthz answers. */
export async function startServer(name, env = {}) {
  const port = await freePort();
  const prefix = `nlbench-${name}-${process.pid}`;
  const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../dist/src/main.js')], {
    env: { ...process.env, PORT: String(port), REDIS_URL, NORMLAB_PREFIX: prefix, LOG_LEVEL: 'warn', ...env },
    stdio: 'inherit',
  });
  const base = `http://127.0.0.1:${port}/v1`;
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break;
    if (i > 100) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      child.kill('SIGINT');
      child.kill('SIGINT'); // second signal: do not wait for running trainings
      await new Promise((r) => child.once('exit', r));
      const redis = createRedis(REDIS_URL, 'bench-cleanup');
      await deleteKeys(redis, prefix);
      await redis.quit();
    },
  };
}

export async function submit(base, spec) {
  const res = await fetch(`${base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
  return (await res.json()).id;
}

export async function job(base, id) {
  return (await fetch(`${base}/jobs/${id}`)).json();
}

export const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
