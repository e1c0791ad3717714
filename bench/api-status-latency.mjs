// GET /v1/jobs/:id latency while two trainings run in the same `npm start`
// process (API + embedded worker, two worker threads): training must never
// slow the API's event loop. Usage: node bench/api-status-latency.mjs [seconds=20] [connections=10]
import autocannon from 'autocannon';
import { job, startServer, submit } from './api-common.mjs';

const duration = Number(process.argv[2] ?? 20);
const connections = Number(process.argv[3] ?? 10);
const server = await startServer('status', { WORKER_CONCURRENCY: '2' });
try {
  // Long enough to outlast the measurement.
  const long = { dataset: { id: 'spirals', size: 100_000 }, model: { hidden: [256, 256] }, training: { epochs: 1000, batchSize: 64 } };
  const ids = [await submit(server.base, long), await submit(server.base, long)];
  for (const id of ids) {
    while ((await job(server.base, id)).status !== 'running') await new Promise((r) => setTimeout(r, 50));
  }
  const result = await autocannon({ url: `${server.base}/jobs/${ids[0]}`, duration, connections });
  const running = await Promise.all(ids.map(async (id) => (await job(server.base, id)).status));
  console.log(JSON.stringify({
    bench: 'get-job-while-training', route: 'GET /v1/jobs/:id', trainings: running.filter((s) => s === 'running').length,
    seconds: duration, connections, requests: result.requests.total, rps: result.requests.average,
    p50ms: result.latency.p50, p90ms: result.latency.p90, p99ms: result.latency.p99, maxMs: result.latency.max,
    errors: result.errors, non2xx: result.non2xx,
  }));
  for (const id of ids) await fetch(`${server.base}/jobs/${id}`, { method: 'DELETE' });
} finally {
  await server.stop();
}
