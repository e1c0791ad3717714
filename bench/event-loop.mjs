// Health-check latency of an API process (`npm start`, its own process) while
// it parses a 30 MB CSV upload and while it answers 1000-row predictions:
// how long one request can hold its event loop. One JSON line per scenario.
// Usage: node bench/event-loop.mjs [rounds]   (npm run build first)
import { percentile, startServer, submit, job } from './api-common.mjs';

const rounds = Number(process.argv[2] ?? 3);

async function healthDuring(base, work) {
  const times = [];
  let done = false;
  const poll = (async () => {
    while (!done) {
      const t0 = performance.now();
      await (await fetch(`${base}/healthz`)).arrayBuffer();
      times.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await work();
  done = true;
  await poll;
  const sorted = times.sort((a, b) => a - b);
  const ms = (x) => Math.round(x * 10) / 10;
  return { samples: sorted.length, p50: ms(percentile(sorted, 50)), p99: ms(percentile(sorted, 99)), max: ms(sorted.at(-1)) };
}

function csv(rows) {
  const lines = [[...Array.from({ length: 20 }, (_, j) => `f${j}`), 'label'].join(',')];
  for (let i = 0; i < rows; i++) lines.push(`${Array.from({ length: 20 }, (_, j) => ((i * 7 + j * 13) % 1000 / 7).toFixed(4)).join(',')},${i % 3 ? 'cat' : 'dog'}`);
  return lines.join('\n') + '\n';
}

const server = await startServer('event-loop');
try {
  const body = csv(190_000);
  for (let r = 0; r < rounds; r++) {
    let status = 0;
    const latency = await healthDuring(server.base, async () => {
      const res = await fetch(`${server.base}/datasets`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body });
      status = res.status;
      const { id } = await res.json();
      await fetch(`${server.base}/datasets/${id}`, { method: 'DELETE' });
    });
    console.log(JSON.stringify({ bench: 'health during upload', megabytes: Math.round(body.length / 1e5) / 10, status, ...latency }));
  }

  // A model of ~1.6M multiply-adds per row: 1000 rows are 1.6e9 (under PREDICT_MAX_WORK).
  const id = await submit(server.base, { dataset: { id: 'spirals', size: 300 }, model: { hidden: [900, 900, 900] }, training: { epochs: 1 } });
  while (!['succeeded', 'failed'].includes((await job(server.base, id)).status)) await new Promise((r) => setTimeout(r, 100));
  const instances = JSON.stringify({ instances: Array.from({ length: 1000 }, (_, i) => [Math.sin(i), Math.cos(i)]) });
  for (let r = 0; r < rounds; r++) {
    let ms = 0;
    const latency = await healthDuring(server.base, async () => {
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const res = await fetch(`${server.base}/models/${id}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: instances });
        if (res.status !== 200) throw new Error(`predict: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
        ms += performance.now() - t0;
      }
    });
    console.log(JSON.stringify({ bench: 'health during 1000-row predictions', rows: 1000, predictMs: Math.round(ms / 3), ...latency }));
  }
} finally {
  await server.stop();
}
