// Submit-to-first-progress latency: POST /v1/jobs, follow its event stream,
// time to the first `progress` event (and to `started`). Median of N (default 20)
// sequential jobs against `npm start` (API + embedded worker).
// Usage: node bench/api-first-progress.mjs [runs=20]
import { percentile, startServer } from './api-common.mjs';

const runs = Number(process.argv[2] ?? 20);
const spec = { dataset: { id: 'spirals', size: 2000 }, model: { hidden: [64, 64] }, training: { epochs: 3 } };
const server = await startServer('first-progress', { WORKER_CONCURRENCY: '1' });

/** Milliseconds from the POST to the `started` and first `progress` events. */
async function once() {
  const t0 = performance.now();
  const res = await fetch(`${server.base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  const { id } = await res.json();
  const stream = await fetch(`${server.base}/jobs/${id}/events`);
  const times = {};
  let buffer = '';
  for await (const chunk of stream.body) {
    buffer += Buffer.from(chunk).toString();
    for (const m of buffer.matchAll(/^event: (\w+)$/gm)) times[m[1]] ??= performance.now() - t0;
    if (times.completed !== undefined || times.failed !== undefined) break;
  }
  return { started: times.started, progress: times.progress };
}

try {
  const samples = [];
  for (let i = 0; i < runs + 1; i++) {
    const s = await once();
    if (i > 0) samples.push(s); // the first job also starts the worker thread
  }
  const stat = (key) => {
    const v = samples.map((s) => s[key]).sort((a, b) => a - b);
    return { medianMs: +percentile(v, 50).toFixed(1), minMs: +v[0].toFixed(1), p90Ms: +percentile(v, 90).toFixed(1), maxMs: +v.at(-1).toFixed(1) };
  };
  console.log(JSON.stringify({ bench: 'submit-to-first-progress', runs, firstProgress: stat('progress'), started: stat('started') }));
} finally {
  await server.stop();
}
