// Shared by the API benches: start `npm start` (API + embedded worker) as a child
// process under a private key prefix, talk to it, and clean up.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { loadConfig } from '../dist/src/config.js';
import { createRedis, deleteKeys } from '../dist/src/store/redis.js';

export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/** Starts dist/src/main.js with `env` (open, rate limit too high to refuse); resolves once /v1/healthz answers. */
export async function startServer(name, env = {}) {
  const port = await freePort();
  const prefix = `nlbench-${name}-${process.pid}`;
  const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../dist/src/main.js')], {
    env: { ...process.env, PORT: String(port), REDIS_URL, NORMLAB_PREFIX: prefix, LOG_LEVEL: 'warn', NORMLAB_API_KEYS: '', RATE_LIMIT_MAX: '100000000', ...env },
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

const MAIN = path.resolve(import.meta.dirname, '../dist/src/main.js');
const WORKER = path.resolve(import.meta.dirname, '../dist/workers/worker.js');

/**
 * A deployment of separate processes under one key prefix: an API (`--role
 * api`) with one API key, and worker processes that can be added and killed.
 * `env` goes to every process.
 */
export async function startCluster(name, env = {}) {
  const port = await freePort();
  const prefix = `nlbench-${name}-${process.pid}`;
  const key = `bench-key-${process.pid}-0123456789`;
  const common = { ...process.env, REDIS_URL, NORMLAB_PREFIX: prefix, LOG_LEVEL: 'warn', NORMLAB_API_KEYS: `${key}:bench`, ...env };
  const api = spawn(process.execPath, [MAIN, '--role', 'api'], { env: { ...common, PORT: String(port) }, stdio: 'inherit' });
  const base = `http://127.0.0.1:${port}/v1`;
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break;
    if (i > 100) throw new Error('API did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const workers = new Set();
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  return {
    base, headers, prefix,
    /** The environment every process of the cluster gets (Redis, key prefix, API keys, `env`). */
    env: common,
    /** Starts a worker process; resolves when it logged that it started. */
    async addWorker(workerEnv = {}) {
      const child = spawn(process.execPath, [WORKER], { env: { ...common, LOG_LEVEL: 'info', ...workerEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
      workers.add(child);
      child.once('exit', () => workers.delete(child));
      await new Promise((resolve) => child.stdout.on('data', (d) => { if (String(d).includes('training worker started')) resolve(); }));
      child.stdout.resume();
      return child;
    },
    workers: () => [...workers],
    async submit(spec) {
      const res = await fetch(`${base}/jobs`, { method: 'POST', headers, body: JSON.stringify(spec) });
      if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
      return (await res.json()).id;
    },
    async job(id) {
      return (await fetch(`${base}/jobs/${id}`, { headers })).json();
    },
    /** The job's events, from its stream (the job must have ended). */
    async events(id) {
      const text = await (await fetch(`${base}/jobs/${id}/events`, { headers })).text();
      return [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]));
    },
    async stop() {
      for (const w of workers) w.kill('SIGKILL');
      api.kill('SIGKILL');
      await new Promise((r) => api.once('exit', r));
      // The deployment `env` names (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS).
      const redis = createRedis(loadConfig(common), 'bench-cleanup');
      await deleteKeys(redis, prefix);
      await redis.quit();
    },
  };
}

/** Polls until every job ended; returns their records. */
export async function waitAll(cluster, ids, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  const done = new Map();
  while (done.size < ids.length) {
    if (Date.now() > deadline) throw new Error(`${ids.length - done.size} jobs still not finished`);
    for (const id of ids) {
      if (done.has(id)) continue;
      const job = await cluster.job(id);
      if (['succeeded', 'failed', 'cancelled'].includes(job.status)) done.set(id, job);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return ids.map((id) => done.get(id));
}

/** Per-job checks of a finished run: one terminal event, each epoch once. */
export async function audit(cluster, ids, epochs) {
  const problems = [];
  let resumed = 0;
  for (const id of ids) {
    const events = await cluster.events(id);
    const terminal = events.filter((e) => ['completed', 'failed', 'cancelled'].includes(e.type));
    const got = events.filter((e) => e.type === 'epoch').map((e) => e.epoch).join(',');
    const want = Array.from({ length: epochs }, (_, i) => i + 1).join(',');
    if (terminal.length !== 1 || terminal[0].type !== 'completed') problems.push(`${id}: ended ${terminal.map((e) => e.type)}`);
    if (got !== want) problems.push(`${id}: epochs ${got}`);
    if (events.some((e) => e.type === 'started' && e.resumedFrom)) resumed++;
  }
  return { problems, resumed };
}
