// Soak: jobs submitted continuously (one every 2 s) for 10 minutes to an API
// process and 2 worker processes, while a worker is killed with SIGKILL every
// 2 minutes (and a new one started). With the default LOCK_DURATION_MS and
// STALLED_INTERVAL_MS, every job must end `succeeded`, with each epoch once.
// interrupted: jobs that needed a second attempt; lastStart*: job creation to the
// start of its last attempt (a crash adds the recovery).
// Usage: node bench/soak.mjs [seconds=600] [killEverySeconds=120] [submitEveryMs=2000]
import { audit, percentile, startCluster, waitAll } from './api-common.mjs';

const seconds = Number(process.argv[2] ?? 600);
const killEvery = Number(process.argv[3] ?? 120);
const submitEvery = Number(process.argv[4] ?? 2000);
const epochs = 16;
// About 2.5 s of training each: the workers are busy most of the time, so most kills interrupt a job.
const spec = (i) => ({ dataset: { id: 'spirals', size: 40_000 }, model: { hidden: [64, 64] }, training: { epochs, batchSize: 16, seed: i } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cluster = await startCluster('soak', { TENANT_MAX_ACTIVE_JOBS: '100000', RATE_LIMIT_MAX: '100000000' });
try {
  for (let i = 0; i < 2; i++) await cluster.addWorker({ WORKER_CONCURRENCY: '1' });
  const t0 = Date.now();
  const ids = [];
  let lastSubmit = t0;
  let kills = 0;
  let nextKill = t0 + killEvery * 1000;
  while (Date.now() - t0 < seconds * 1000) {
    ids.push(await cluster.submit(spec(ids.length)));
    lastSubmit = Date.now();
    if (Date.now() >= nextKill) {
      const [victim] = cluster.workers();
      victim.kill('SIGKILL');
      kills++;
      nextKill += killEvery * 1000;
      console.error(`t=${Math.round((Date.now() - t0) / 1000)}s killed worker ${victim.pid} (${ids.length} jobs submitted)`);
      await cluster.addWorker({ WORKER_CONCURRENCY: '1' });
    }
    await sleep(submitEvery);
  }
  const records = await waitAll(cluster, ids, 15 * 60_000);
  const { problems, resumed } = await audit(cluster, ids, epochs);
  const waits = records.map((r) => Date.parse(r.startedAt) - Date.parse(r.createdAt)).sort((a, b) => a - b);
  const runs = records.map((r) => Date.parse(r.finishedAt) - Date.parse(r.startedAt)).sort((a, b) => a - b);
  console.log(JSON.stringify({
    bench: 'soak', seconds, killEverySeconds: killEvery, submitted: ids.length, kills,
    succeeded: records.filter((r) => r.status === 'succeeded').length,
    failed: records.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.error?.code}`),
    interrupted: records.filter((r) => r.attempt > 1).length, resumedFromCheckpoint: resumed,
    maxAttempt: Math.max(...records.map((r) => r.attempt)), problems: problems.slice(0, 10),
    drainSeconds: Math.round((Math.max(...records.map((r) => Date.parse(r.finishedAt))) - lastSubmit) / 1000),
    lastStartP50ms: percentile(waits, 50), lastStartP99ms: percentile(waits, 99), lastAttemptP50ms: percentile(runs, 50),
  }));
} finally {
  await cluster.stop();
}
