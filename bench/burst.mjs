// 200 small jobs submitted at once to an API process and 2 worker processes
// (WORKER_CONCURRENCY 1 each): every job must succeed exactly once (one
// `completed` event, each epoch once, one model). Prints jobs/minute and the
// queue wait (createdAt → startedAt) p50/p99.
// Usage: node bench/burst.mjs [jobs=200] [workers=2] [--redis shared|single|cluster]
//   shared (default): REDIS_URL or 127.0.0.1:6379; single: a private redis-server;
//   cluster: a private Redis Cluster of 3 primaries and 3 replicas (test/redis-servers.mjs).
import { RedisClusterServers, SingleRedisServer } from '../test/redis-servers.mjs';
import { audit, percentile, startCluster, waitAll } from './api-common.mjs';

const args = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--redis');
const redisArg = process.argv.indexOf('--redis');
const redis = redisArg > 0 ? process.argv[redisArg + 1] : 'shared';
const jobs = Number(args[0] ?? 200);
const workerCount = Number(args[1] ?? 2);
const epochs = 3;
const spec = (i) => ({ dataset: { id: ['spirals', 'moons', 'blobs', 'xor'][i % 4], size: 500 }, model: { hidden: [32] }, training: { epochs, seed: i } });

const servers = redis === 'cluster' ? await RedisClusterServers.start() : redis === 'single' ? await SingleRedisServer.start() : null;
const deployment = servers?.config();
const redisEnv = !deployment ? {}
  : 'redisClusterNodes' in deployment ? { REDIS_URL: '', REDIS_CLUSTER_NODES: deployment.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(',') }
    : { REDIS_URL: deployment.redisUrl };
const cluster = await startCluster('burst', { TENANT_MAX_ACTIVE_JOBS: String(jobs), RATE_LIMIT_MAX: '1000000', ...redisEnv });
try {
  for (let i = 0; i < workerCount; i++) await cluster.addWorker({ WORKER_CONCURRENCY: '1' });
  const t0 = Date.now();
  const ids = await Promise.all(Array.from({ length: jobs }, (_, i) => cluster.submit(spec(i))));
  const submitMs = Date.now() - t0;
  const records = await waitAll(cluster, ids, 30 * 60_000);
  const last = Math.max(...records.map((r) => Date.parse(r.finishedAt)));
  const waits = records.map((r) => Date.parse(r.startedAt) - Date.parse(r.createdAt)).sort((a, b) => a - b);
  const { problems } = await audit(cluster, ids, epochs);
  const models = await Promise.all(ids.map((id) => fetch(`${cluster.base}/models/${id}`, { headers: cluster.headers }).then((r) => r.status)));
  console.log(JSON.stringify({
    bench: 'burst', redis, jobs, workers: workerCount, submitMs,
    succeeded: records.filter((r) => r.status === 'succeeded').length,
    uniqueIds: new Set(ids).size, models: models.filter((s) => s === 200).length, problems: problems.slice(0, 10),
    maxAttempt: Math.max(...records.map((r) => r.attempt)),
    seconds: (last - t0) / 1000, jobsPerMinute: Math.round((jobs / ((last - t0) / 1000)) * 60),
    queueWaitP50ms: percentile(waits, 50), queueWaitP99ms: percentile(waits, 99),
  }));
} finally {
  await cluster.stop();
  await servers?.stop();
}
