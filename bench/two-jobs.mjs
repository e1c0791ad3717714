// Multi-core scaling of training on this machine, single-thread kernels unless said:
//  - jobs:    one training job alone against two concurrent jobs, each a full
//             train() on its own worker_thread (as the worker process runs them),
//             Fashion-MNIST, MLP 784-256-256-10, BN before, batch 128, SGD
//             momentum, 2 epochs. Aggregate samples/s of the two against one.
//  - threads: one job with NORMLAB_THREADS=2 (OpenBLAS threads) against =1.
// Every configuration runs in a fresh process (OpenBLAS's thread count is
// process-wide), the configurations alternate round by round, figures are
// medians over --rounds. Each job's samples/s is training samples over the sum of
// its epoch events' `seconds` (training time only, not evaluation); the aggregate
// of concurrent jobs is the sum of theirs, and `wall` is all jobs' training samples
// over the wall time from the common start to the last job's end (includes the
// per-epoch evaluation). One JSON line per configuration and one per comparison.
// Usage: npx tsc -p tsconfig.json && node bench/two-jobs.mjs [--rounds 3] [--epochs 2] [--batch 128]
//        [--what jobs,threads]
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

if (!isMainThread) {
  // One training job on this worker thread.
  const { resolveSpec } = await import('../dist/src/core/spec.js');
  const { train } = await import('../dist/src/core/train.js');
  const { loadBuiltinDataset } = await import('../dist/src/datasets/index.js');
  const { kernelsInfo } = await import('../dist/src/core/kernels/index.js');
  const { epochs, batch, seed } = workerData;
  const spec = resolveSpec({
    dataset: { id: 'fashion-mnist', validationSplit: 0 },
    model: { hidden: [256, 256], batchNorm: 'before' },
    training: { epochs, batchSize: batch, seed, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 } },
  });
  const ds = await loadBuiltinDataset(spec.dataset, seed);
  kernelsInfo(); // load the kernels before the start signal
  parentPort.postMessage({ type: 'ready' });
  await new Promise((resolve) => parentPort.once('message', resolve));
  const seconds = [];
  const t0 = performance.timeOrigin + performance.now();
  await train(spec, ds, { onEvent: (e) => { if (e.type === 'epoch') seconds.push(e.seconds); } });
  const t1 = performance.timeOrigin + performance.now();
  parentPort.postMessage({ type: 'done', samples: ds.train.n * epochs, epochSeconds: seconds, start: t0, end: t1, ...kernelsInfo() });
} else {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      epochs: { type: 'string', default: '2' },
      batch: { type: 'string', default: '128' },
      what: { type: 'string', default: 'jobs,threads' },
      child: { type: 'string' }, // internal: "jobs" count to run in this process
    },
  });
  const epochs = Number(values.epochs);
  const batch = Number(values.batch);

  if (values.child) {
    // Run `child` concurrent jobs in this process, started together; print one JSON line.
    const count = Number(values.child);
    const workers = Array.from({ length: count }, (_, i) => new Worker(new URL(import.meta.url), { workerData: { epochs, batch, seed: 42 + i } }));
    const next = (w, type) => new Promise((resolve, reject) => {
      const onMessage = (m) => { if (m.type === type) { w.off('message', onMessage); resolve(m); } };
      w.on('message', onMessage);
      w.once('error', reject);
    });
    await Promise.all(workers.map((w) => next(w, 'ready')));
    const done = workers.map((w) => next(w, 'done'));
    const start = performance.timeOrigin + performance.now();
    workers.forEach((w) => w.postMessage('go'));
    const results = await Promise.all(done);
    await Promise.all(workers.map((w) => w.terminate()));
    // A native addon being rebuilt at load time silently gives the portable kernels: not comparable.
    if (results.some((r) => r.kernels !== 'native') && process.env.NORMLAB_KERNELS !== 'portable') {
      throw new Error(`the native kernels did not load in a worker (${results.map((r) => r.reason ?? r.kernels).join('; ')})`);
    }
    const perJob = results.map((r) => r.samples / r.epochSeconds.reduce((a, b) => a + b, 0));
    const end = Math.max(...results.map((r) => r.end));
    console.log(JSON.stringify({
      jobs: count, threadsEnv: process.env.NORMLAB_THREADS ?? '1', gemm: results[0].gemm,
      perJobSamplesPerSec: perJob.map(Math.round), aggregateSamplesPerSec: Math.round(perJob.reduce((a, b) => a + b, 0)),
      wallSamplesPerSec: Math.round(results.reduce((a, r) => a + r.samples, 0) / ((end - start) / 1000)),
      epochSeconds: results.map((r) => r.epochSeconds),
    }));
  } else {
    const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const configs = [];
    const what = values.what.split(',');
    if (what.includes('jobs')) configs.push({ name: 'one job', jobs: 1, threads: '1' }, { name: 'two jobs', jobs: 2, threads: '1' });
    if (what.includes('threads')) configs.push({ name: 'one job NORMLAB_THREADS=2', jobs: 1, threads: '2' });
    const runs = new Map(configs.map((c) => [c.name, []]));
    for (let round = 1; round <= Number(values.rounds); round++) {
      const order = round % 2 === 1 ? configs : [...configs].reverse();
      for (const c of order) {
        const r = spawnSync(process.execPath, [import.meta.filename, '--child', String(c.jobs), '--epochs', String(epochs), '--batch', String(batch)], {
          encoding: 'utf8', env: { ...process.env, NORMLAB_THREADS: c.threads },
        });
        if (r.status !== 0) throw new Error(`${c.name} failed: ${r.stderr}`);
        const line = JSON.parse(r.stdout.trim().split('\n').pop());
        runs.get(c.name).push(line);
        console.log(JSON.stringify({ bench: 'two-jobs', config: c.name, round, batch, epochs, loadavg: Math.round(os.loadavg()[0] * 100) / 100, ...line }));
      }
    }
    const agg = (name, field) => median(runs.get(name).map((l) => l[field]));
    const one = runs.has('one job') ? agg('one job', 'aggregateSamplesPerSec') : null;
    const machine = { cpu: os.cpus()[0]?.model, cores: os.cpus().length };
    if (runs.has('two jobs')) {
      const two = agg('two jobs', 'aggregateSamplesPerSec');
      const oneWall = agg('one job', 'wallSamplesPerSec');
      const twoWall = agg('two jobs', 'wallSamplesPerSec');
      console.log(JSON.stringify({
        bench: 'two-jobs', compare: 'two concurrent jobs / one job', batch, epochs, oneJob: one, twoJobs: two,
        ratio: Math.round((two / one) * 100) / 100, wallRatio: Math.round((twoWall / oneWall) * 100) / 100,
        goal: '>= 1.8x', met: two / one >= 1.8, machine, date: new Date().toISOString(),
      }));
    }
    if (runs.has('one job NORMLAB_THREADS=2') && one !== null) {
      const t2 = agg('one job NORMLAB_THREADS=2', 'aggregateSamplesPerSec');
      console.log(JSON.stringify({
        bench: 'two-jobs', compare: 'one job NORMLAB_THREADS=2 / =1', batch, epochs, threads1: one, threads2: t2,
        ratio: Math.round((t2 / one) * 100) / 100, machine, date: new Date().toISOString(),
      }));
    }
  }
}
