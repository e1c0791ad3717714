// POST /v1/models/:id/predict under load: a spirals model (hidden [64, 64],
// batch norm before), one row or a batch per request, against an API process
// with an API key and the per-key rate limit on (its Redis counter is part of
// every request; RATE_LIMIT_MAX is set high enough not to refuse any).
//
// Then the same autocannon against two routes of one bench-only API process,
// alternating for `rounds` rounds: that predict route, and POST /v1/bench/constant,
// which parses and validates the same body (same JSON parser, auth, rate limit,
// body and response schemas) and answers a constant prediction of the same
// shape. The bench-only process is buildApp() plus that one route, defined
// here (`--serve`); the product has no such route. Goal: predict at least 70%
// of the constant route's requests per second.
// Usage: node bench/predict-http.mjs [seconds=30] [connections=50] [rowsPerRequest=1] [rounds=3]
import { spawn } from 'node:child_process';
import net from 'node:net';
import autocannon from 'autocannon';

if (process.argv[2] === '--serve') {
  // The bench-only API: the product app plus one constant route. Settings from the environment.
  const { loadConfig } = await import('../dist/src/config.js');
  const { buildApp } = await import('../dist/src/server/app.js');
  const { predictBody, PredictResponse } = await import('../dist/src/server/schemas/models.js');
  const config = loadConfig();
  const app = await buildApp(config);
  const constant = JSON.parse(process.env.BENCH_CONSTANT_RESPONSE);
  await app.register(async (bench) => {
    bench.post('/constant', {
      schema: { body: predictBody(config.predictMaxRows), response: { 200: PredictResponse } },
    }, async () => constant);
  }, { prefix: '/v1/bench' });
  await app.listen({ port: config.port, host: '127.0.0.1' });
  process.on('SIGINT', () => { app.close().then(() => process.exit(0)); });
  console.log(JSON.stringify({ listening: config.port }));
  await new Promise(() => {}); // serve until SIGINT
}
const { startCluster, waitAll } = await import('./api-common.mjs');

const duration = Number(process.argv[2] ?? 30);
const connections = Number(process.argv[3] ?? 50);
const rows = Number(process.argv[4] ?? 1);
const rounds = Number(process.argv[5] ?? 3);
const cluster = await startCluster('predict', { RATE_LIMIT_MAX: '100000000' });
try {
  const worker = await cluster.addWorker({ WORKER_CONCURRENCY: '1' });
  const id = await cluster.submit({ dataset: { id: 'spirals', size: 2000 }, model: { hidden: [64, 64] }, training: { epochs: 5 } });
  const [job] = await waitAll(cluster, [id], 120_000);
  if (job.status !== 'succeeded') throw new Error(`training ${job.status}`);
  // Only the API runs during the measurement.
  worker.kill('SIGTERM');
  const body = JSON.stringify({ instances: Array.from({ length: rows }, (_, i) => [Math.sin(i), Math.cos(i)]) });
  const result = await autocannon({
    url: `${cluster.base}/models/${id}/predict`, method: 'POST', headers: cluster.headers, body, duration, connections,
  });
  console.log(JSON.stringify({
    bench: 'predict-http', seconds: duration, connections, rowsPerRequest: rows, requests: result.requests.total, rps: result.requests.average,
    p50ms: result.latency.p50, p99ms: result.latency.p99, maxMs: result.latency.max, errors: result.errors, timeouts: result.timeouts, non2xx: result.non2xx,
  }));

  // predict against a constant route of the same (bench-only) API process.
  const constant = await (await fetch(`${cluster.base}/models/${id}/predict`, { method: 'POST', headers: cluster.headers, body })).json();
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => { const p = probe.address().port; probe.close(() => resolve(p)); });
  });
  const bench = spawn(process.execPath, [import.meta.filename, '--serve'], {
    env: { ...cluster.env, PORT: String(port), BENCH_CONSTANT_RESPONSE: JSON.stringify(constant) }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise((resolve, reject) => {
      bench.stdout.on('data', (d) => { if (String(d).includes('listening')) resolve(); });
      bench.once('exit', (code) => reject(new Error(`the bench-only API exited (${code})`)));
    });
    const base = `http://127.0.0.1:${port}/v1`;
    const routes = { predict: `${base}/models/${id}/predict`, constant: `${base}/bench/constant` };
    for (const url of Object.values(routes)) { // both answer 200 with the same shape, and warm up
      const res = await fetch(url, { method: 'POST', headers: cluster.headers, body });
      if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
      await autocannon({ url, method: 'POST', headers: cluster.headers, body, duration: 2, connections });
    }
    const rps = { predict: [], constant: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const route of round % 2 === 1 ? ['predict', 'constant'] : ['constant', 'predict']) {
        const r = await autocannon({ url: routes[route], method: 'POST', headers: cluster.headers, body, duration, connections });
        if (r.non2xx > 0 || r.errors > 0) throw new Error(`${route}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
        rps[route].push(r.requests.average);
        console.log(JSON.stringify({
          bench: 'predict-http', server: 'bench-only (buildApp + constant route)', route, round, seconds: duration, connections, rowsPerRequest: rows,
          rps: r.requests.average, p50ms: r.latency.p50, p99ms: r.latency.p99,
        }));
      }
    }
    const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const ratio = median(rps.predict) / median(rps.constant);
    console.log(JSON.stringify({
      bench: 'predict-http', compare: 'predict / constant route, same process', rowsPerRequest: rows, connections, seconds: duration, rounds,
      predictRps: median(rps.predict), constantRps: median(rps.constant), ratio: Math.round(ratio * 100) / 100, goal: '>= 0.7', met: ratio >= 0.7,
    }));
  } finally {
    bench.kill('SIGINT');
    await new Promise((r) => bench.once('exit', r));
  }
} finally {
  await cluster.stop();
}
