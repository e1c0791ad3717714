// POST /v1/models/:id/predict under load: a spirals model (hidden [64, 64],
// batch norm before), one row or a batch per request, against `npm start`.
// Usage: node bench/predict-http.mjs [seconds=30] [connections=50] [rowsPerRequest=1]
import autocannon from 'autocannon';
import { startServer, submit, job } from './api-common.mjs';

const duration = Number(process.argv[2] ?? 30);
const connections = Number(process.argv[3] ?? 50);
const rows = Number(process.argv[4] ?? 1);
const server = await startServer('predict', { WORKER_CONCURRENCY: '1' });
try {
  const id = await submit(server.base, { dataset: { id: 'spirals', size: 2000 }, model: { hidden: [64, 64] }, training: { epochs: 5 } });
  let status;
  while ((status = (await job(server.base, id)).status) !== 'succeeded') {
    if (status === 'failed' || status === 'cancelled') throw new Error(`training ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const body = JSON.stringify({ instances: Array.from({ length: rows }, (_, i) => [Math.sin(i), Math.cos(i)]) });
  const result = await autocannon({
    url: `${server.base}/models/${id}/predict`, method: 'POST', headers: { 'content-type': 'application/json' }, body, duration, connections,
  });
  console.log(JSON.stringify({
    bench: 'predict-http', seconds: duration, connections, rowsPerRequest: rows, requests: result.requests.total, rps: result.requests.average,
    p50ms: result.latency.p50, p99ms: result.latency.p99, maxMs: result.latency.max, errors: result.errors, non2xx: result.non2xx,
  }));
} finally {
  await server.stop();
}
