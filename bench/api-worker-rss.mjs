// Memory of one worker process (BullMQ sandboxed processor on worker threads) over
// many small jobs: taskforcesh/bullmq#2610 reports growth with worker threads.
// Usage: node bench/api-worker-rss.mjs [jobs=200] [concurrency=2]
// Prints one JSON line per checkpoint: jobs done, worker RSS (MiB).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../dist/src/config.js';
import { keysFor } from '../dist/src/queue/keys.js';
import { createTrainQueue, JobService } from '../dist/src/queue/train-queue.js';
import { JobStore } from '../dist/src/store/jobs.js';
import { bullConnection, createRedis, deleteKeys } from '../dist/src/store/redis.js';
import { resolveSpec } from '../dist/src/core/spec.js';

const total = Number(process.argv[2] ?? 200);
const concurrency = Number(process.argv[3] ?? 2);
const config = loadConfig({}, { redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379', prefix: `nlbench-rss-${process.pid}`, tenantMaxActiveJobs: 1_000_000 });
const redis = createRedis(config.redisUrl, 'bench');
const store = new JobStore(redis, keysFor(config.prefix), config);
const queueConnection = bullConnection(config, 'bench:queue');
const queue = createTrainQueue(queueConnection, config);
const jobs = new JobService(queue, store);
const spec = resolveSpec({ dataset: { id: 'spirals', size: 300 }, model: { hidden: [16, 16] }, training: { epochs: 2 } });

const worker = spawn(process.execPath, [path.resolve(import.meta.dirname, '../dist/workers/worker.js')], {
  env: { ...process.env, REDIS_URL: config.redisUrl, NORMLAB_PREFIX: config.prefix, WORKER_CONCURRENCY: String(concurrency), LOG_LEVEL: 'warn' },
  stdio: 'inherit',
});
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${worker.pid}/status`, 'utf8'))[1]) / 1024;

async function runBatch(n) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push((await jobs.submit('default', spec)).id);
  for (const id of ids) {
    while (!['succeeded', 'failed', 'cancelled'].includes(await store.status(id))) await new Promise((r) => setTimeout(r, 20));
  }
}

try {
  await new Promise((r) => setTimeout(r, 1000));
  await runBatch(2 * concurrency); // warm: threads started, modules loaded
  global.gc?.();
  const before = rssMiB();
  console.log(JSON.stringify({ bench: 'worker-rss', jobs: 0, rssMiB: +before.toFixed(1), concurrency }));
  const started = Date.now();
  for (let done = 0; done < total; done += 50) {
    await runBatch(Math.min(50, total - done));
    console.log(JSON.stringify({ bench: 'worker-rss', jobs: Math.min(done + 50, total), rssMiB: +rssMiB().toFixed(1), seconds: +((Date.now() - started) / 1000).toFixed(1) }));
  }
} finally {
  worker.kill('SIGTERM');
  await new Promise((r) => worker.once('exit', r));
  await queue.close();
  await queueConnection.quit();
  await deleteKeys(redis, config.prefix);
  await redis.quit();
}
