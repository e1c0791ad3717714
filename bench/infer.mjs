// In-process inference: µs per InferenceModel.predictInto call at batch 1 and
// 64 for the MLP 784-256-256-10 with batch norm before the activation, trained
// one epoch on Fashion-MNIST (batch 128) and loaded through the real artifact
// path (safetensors bytes + JSON manifest → InferenceModel.fromArtifact, BN
// folded), rows taken from the test split. Median of --samples samples of
// ~--ms each, after a warm-up. Allocation check: heap bytes per call and the
// garbage collections seen over --alloc-calls calls at batch 1. With the
// native kernels, also the single-thread sgemm peak of this machine in the
// same run (best of 5 square 1024³ multiplies, OpenBLAS and the built-in
// sgemm) and the fraction of it the inference reaches (GFLOPS of the three
// dense layers: 2·(784·256 + 256·256 + 256·10) flops per row).
// One JSON line per batch size.
// Usage: npx tsc -p tsconfig.json && node bench/infer.mjs [--batches 1,64] [--samples 15] [--ms 100] [--alloc-calls 100000]
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { InferenceModel } from '../dist/src/core/inference.js';
import { kernelsInfo } from '../dist/src/core/kernels/index.js';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset } from '../dist/src/datasets/index.js';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '1,64' },
    samples: { type: 'string', default: '15' },
    ms: { type: 'string', default: '100' },
    'alloc-calls': { type: 'string', default: '100000' },
    fold: { type: 'string', default: 'true' },
  },
});
const samples = Number(values.samples);
const sampleMs = Number(values.ms);
const allocCalls = Number(values['alloc-calls']);

const spec = resolveSpec({
  dataset: { id: 'fashion-mnist', validationSplit: 0 },
  model: { hidden: [256, 256], batchNorm: 'before' },
  training: { epochs: 1, batchSize: 128, seed: 42, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 } },
});
if (kernelsInfo().kernels !== 'native' && process.env.NORMLAB_KERNELS !== 'portable') {
  throw new Error(`the native kernels did not load (${kernelsInfo().reason})`);
}
const ds = await loadBuiltinDataset(spec.dataset, 42);
const { artifact, metrics } = await train(spec, ds);
// What a model store holds: the manifest as JSON and the weights bytes.
const stored = { manifest: JSON.parse(JSON.stringify(artifact.manifest)), weights: new Uint8Array(artifact.weights) };
const model = InferenceModel.fromArtifact(stored, { fold: values.fold === 'true' });

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const FLOPS_PER_ROW = 2 * (784 * 256 + 256 * 256 + 256 * 10);

/** Single-thread sgemm GFLOPS at 1024³, best of 5, per backend of the native kernels. */
async function sgemmPeak() {
  if (kernelsInfo().kernels !== 'native') return null;
  const { tryLoadNativeKernels } = await import('../dist/src/core/kernels/native.js');
  const n = 1024;
  const A = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const B = A.slice().reverse();
  const C = new Float32Array(n * n);
  const peak = {};
  for (const gemm of ['openblas', 'builtin']) {
    const k = tryLoadNativeKernels({ gemm }).kernels;
    if (!k) continue;
    let best = Infinity;
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      k.gemm(false, false, n, n, n, 1, A, B, 0, C);
      if (i > 0) best = Math.min(best, performance.now() - t0);
    }
    peak[gemm] = Math.round((2 * n ** 3) / best / 1e6 * 10) / 10;
  }
  return peak;
}
const test = ds.test;
const f = ds.features;

const peak = await sgemmPeak();
const peakGflops = peak ? Math.max(...Object.values(peak)) : null;
for (const n of values.batches.split(',').map(Number)) {
  // Distinct rows per call, cycling through the first 64·n test rows.
  const windows = 64;
  const rows = test.x.subarray(0, Math.min(test.n, windows * n) * f);
  const views = Array.from({ length: Math.floor(rows.length / (n * f)) }, (_, i) => rows.subarray(i * n * f, (i + 1) * n * f));
  const out = new Float32Array(n * model.classes);
  let w = 0;
  const call = () => {
    model.predictInto(views[w], n, out);
    w = w + 1 === views.length ? 0 : w + 1;
  };
  for (let i = 0; i < 2000; i++) call(); // warm-up: JIT and buffer growth
  let reps = 16;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) call();
    const ms = performance.now() - t0;
    if (ms >= sampleMs / 4) {
      reps = Math.max(1, Math.round((reps * sampleMs) / ms));
      break;
    }
    reps *= 4;
  }
  const us = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) call();
    us.push(((performance.now() - t0) * 1000) / reps);
  }
  us.sort((a, b) => a - b);

  // Allocation: heap growth and GC count over allocCalls calls (the closure above allocates nothing).
  let gcs = 0;
  const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
  obs.observe({ entryTypes: ['gc'] });
  const calls = n === 1 ? allocCalls : Math.max(1000, Math.round(allocCalls / 16));
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < calls; i++) call();
  const after = process.memoryUsage().heapUsed;
  await new Promise((r) => setImmediate(r)); // let the observer report
  obs.disconnect();

  console.log(JSON.stringify({
    bench: 'infer', peer: 'normlab', model: '784-256-256-10 bn-before', folded: model.folded, batch: n,
    usPerCall: Math.round(median(us) * 100) / 100, usPerRow: Math.round((median(us) / n) * 1000) / 1000,
    p10us: Math.round(us[Math.floor(us.length * 0.1)] * 100) / 100, p90us: Math.round(us[Math.floor(us.length * 0.9)] * 100) / 100,
    allocCheck: { calls, heapGrowthBytes: after - before, bytesPerCall: Math.round(((after - before) / calls) * 100) / 100, gcs },
    gflops: Math.round((FLOPS_PER_ROW * n) / median(us) / 1e3 * 10) / 10,
    sgemmPeakGflops: peak, fractionOfPeak: peakGflops ? Math.round((FLOPS_PER_ROW * n) / median(us) / 1e3 / peakGflops * 100) / 100 : null,
    testAccuracy: metrics.test?.accuracy, ...kernelsInfo(),
  }));
}
