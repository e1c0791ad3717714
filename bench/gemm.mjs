// GFLOPS of the native sgemm paths at every matrix multiply one training step
// of the MLP 784-256-256-10 makes, at batch 32, 128 and 512, single thread:
// the default `gemm` (on AVX-512 'direct+openblas': the direct kernel where it
// applies, native/gemm_direct.cc), OpenBLAS alone and the built-in blocked
// kernel. One JSON line per shape (median of --samples timed samples of ~--ms
// each, the paths interleaved sample by sample so machine noise hits them
// alike), then one line per batch with the GEMM time of a whole step and of a
// 60,000-sample epoch; speedupOverOpenblas is OpenBLAS's time over each path's.
//
// Shapes (M×N×K, as the trainer calls gemm; see src/core/model.ts Dense):
//   fwd   y = x·Wᵀ    gemm(false, true,  B,   out, in)
//   dW    dW = dyᵀ·x  gemm(true,  false, out, in,  B)
//   dx    dx = dy·W   gemm(false, false, B,   in,  out)   (not for the first layer)
// --shapes times the given multiplies instead, each as transA transB (n or t)
// and M x N x K: --shapes nt:3584x512x28,tn:256x784x32.
// Usage: npx tsc -p tsconfig.json && node bench/gemm.mjs [--batches 32,128,512] [--samples 9] [--ms 40] [--shapes ...]
import { parseArgs } from 'node:util';
import { loadNativeKernels } from '../dist/src/core/kernels/native.js';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '32,128,512' },
    samples: { type: 'string', default: '9' },
    ms: { type: 'string', default: '40' },
    shapes: { type: 'string' },
  },
});
const samples = Number(values.samples);
const sampleMs = Number(values.ms);
const widths = [784, 256, 256, 10];

const backends = [undefined, 'openblas', 'builtin'].map((gemm) => loadNativeKernels({ gemm })).filter((k) => k !== null)
  .filter((k, i, all) => all.findIndex((o) => o.gemmBackend === k.gemmBackend) === i);
if (backends.length === 0) throw new Error('the native kernels did not load (node scripts/build-native.mjs)');

function filled(n, seed) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin((i + seed) * 12.9898) * 0.5;
  return a;
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** The gemm calls of one training step at batch B: [{op, layer, transA, transB, M, N, K}]. */
function stepShapes(B) {
  const shapes = [];
  for (let l = 0; l + 1 < widths.length; l++) {
    const fanIn = widths[l];
    const out = widths[l + 1];
    shapes.push({ op: 'fwd', layer: l, transA: false, transB: true, M: B, N: out, K: fanIn });
    shapes.push({ op: 'dW', layer: l, transA: true, transB: false, M: out, N: fanIn, K: B });
    if (l > 0) shapes.push({ op: 'dx', layer: l, transA: false, transB: false, M: B, N: fanIn, K: out });
  }
  return shapes;
}

/** Seconds per call of one gemm shape on each backend: median of interleaved samples. */
function time(shape) {
  const { transA, transB, M, N, K } = shape;
  const A = filled(M * K, 1);
  const Bm = filled(K * N, 2);
  const C = new Float32Array(M * N);
  const call = (k) => k.gemm(transA, transB, M, N, K, 1, A, Bm, 0, C);
  // Calls per sample from a warm-up on the first backend.
  for (const k of backends) for (let i = 0; i < 20; i++) call(k);
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) call(backends[0]);
    const ms = performance.now() - t0;
    if (ms >= sampleMs / 4) {
      reps = Math.max(1, Math.round((reps * sampleMs) / ms));
      break;
    }
    reps *= 4;
  }
  const perBackend = backends.map(() => []);
  for (let s = 0; s < samples; s++) {
    backends.forEach((k, b) => {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) call(k);
      perBackend[b].push((performance.now() - t0) / 1000 / reps);
    });
  }
  return perBackend.map(median);
}

/** OpenBLAS's seconds over each other path's, by path name. */
function speedups(secs) {
  const blas = backends.findIndex((k) => k.gemmBackend === 'openblas');
  if (blas < 0) return undefined;
  return Object.fromEntries(backends.map((k, b) => [k.gemmBackend, Math.round((secs[blas] / secs[b]) * 100) / 100])
    .filter(([name]) => name !== 'openblas'));
}

const gflops = (flops, s) => Math.round((flops / s / 1e9) * 100) / 100;

/** Times one shape on every path and prints its line; returns the seconds per path. */
function report(shape, fields) {
  const secs = time(shape);
  const line = { bench: 'gemm', ...fields, transA: shape.transA, transB: shape.transB, M: shape.M, N: shape.N, K: shape.K };
  backends.forEach((k, b) => {
    line[k.gemmBackend] = { us: Math.round(secs[b] * 1e7) / 10, gflops: gflops(2 * shape.M * shape.N * shape.K, secs[b]) };
  });
  line.speedupOverOpenblas = speedups(secs);
  console.log(JSON.stringify(line));
  return secs;
}

if (values.shapes) {
  for (const spec of values.shapes.split(',')) {
    const m = /^([nt])([nt]):(\d+)x(\d+)x(\d+)$/.exec(spec);
    if (!m) throw new Error(`--shapes: "${spec}" is not like nt:32x256x784`);
    report({ transA: m[1] === 't', transB: m[2] === 't', M: Number(m[3]), N: Number(m[4]), K: Number(m[5]) }, {});
  }
  process.exit(0);
}

for (const B of values.batches.split(',').map(Number)) {
  const totals = backends.map(() => 0);
  let stepFlops = 0;
  for (const shape of stepShapes(B)) {
    stepFlops += 2 * shape.M * shape.N * shape.K;
    const secs = report(shape, { batch: B, op: shape.op, layer: shape.layer });
    secs.forEach((s, b) => { totals[b] += s; });
  }
  const summary = { bench: 'gemm-step', batch: B, stepGflop: Math.round(stepFlops / 1e6) / 1000 };
  backends.forEach((k, b) => {
    summary[k.gemmBackend] = {
      stepMs: Math.round(totals[b] * 1e5) / 100,
      epochSeconds: Math.round(totals[b] * Math.ceil(60000 / B) * 1000) / 1000,
      gflops: gflops(stepFlops, totals[b]),
    };
  });
  summary.speedupOverOpenblas = speedups(totals);
  console.log(JSON.stringify(summary));
}
