// denseInfer alone (the inference kernel of dense layers) on the MLP's first
// layer, 784 -> 256, random weights packed once: best µs per call and GFLOPS
// at batch 1 and 64, for every CPU path this machine runs, best of --samples
// blocks of ~300 rows (short blocks: on a shared machine the best block is the
// one least disturbed). One JSON line per path and batch.
// Then the whole Fashion-MNIST MLP, 784-256-256-10 (relu, relu, none), as one
// denseChain on the best path, on one thread and on two (NORMLAB_INFER_THREADS=2:
// native/infer_pool.h), the two alternating block by block: best µs per call,
// GFLOPS, and at batch 1 the rate at which the 1.07 MB of weights are read.
// Usage: node bench/dense-infer.mjs [--samples 40] [--chain-batches 1,4,8,16,64]
import { createRequire } from 'node:module';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { CPU_PATHS, nativeAddonPath } from '../dist/src/core/kernels/native.js';

const { values } = parseArgs({
  options: { samples: { type: 'string', default: '40' }, 'chain-batches': { type: 'string', default: '1,4,8,16,64' } },
});
const addon = createRequire(import.meta.url)(nativeAddonPath());
const [IN, OUT] = [784, 256];
/** A layer's weights [out, inputs] in a fixed pattern, packed once. */
function packedLayer(out, inputs) {
  const p = addon.alignedFloat32Array(Math.ceil(out / 16) * 16 * inputs);
  addon.packDense(Float32Array.from({ length: out * inputs }, (_, i) => (((i * 7919) % 1000) / 1000 - 0.5) * 0.1), out, inputs, p);
  return p;
}
/** n rows of the first layer's input, in [0, 1). */
const rowsOf = (n) => Float32Array.from({ length: n * IN }, (_, i) => ((i * 31) % 97) / 97);
const packed = packedLayer(OUT, IN);
const bias = new Float32Array(OUT);
for (const path of CPU_PATHS.slice(0, CPU_PATHS.indexOf(addon.cpuBest) + 1)) {
  addon.setCpuPath(path);
  for (const n of [1, 64]) {
    const x = rowsOf(n);
    const y = new Float32Array(n * OUT);
    const reps = Math.ceil(300 / n);
    for (let i = 0; i < 10 * reps; i++) addon.denseInfer(x, packed, bias, y, n, IN, OUT, 0, 0);
    let best = Infinity;
    for (let s = 0; s < Number(values.samples); s++) {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) addon.denseInfer(x, packed, bias, y, n, IN, OUT, 0, 0);
      best = Math.min(best, ((performance.now() - t0) * 1000) / reps);
    }
    console.log(JSON.stringify({ bench: 'dense-infer', layer: '784->256', cpu: path, batch: n, bestUs: Math.round(best * 100) / 100,
      gflops: Math.round(((2 * n * IN * OUT) / best / 1e3) * 10) / 10, load: os.loadavg()[0] }));
  }
}

// The whole MLP as one chain, one thread against two.
addon.setCpuPath('auto');
const sizes = [IN, 256, 256, 10];
const layers = sizes.slice(1).map((out, i) => packedLayer(out, sizes[i]));
const chainArgs = [layers, layers.map((_, i) => new Float32Array(sizes[i + 1])), Int32Array.from(sizes), Int32Array.of(0, 0, -1), new Float32Array(3)];
const chains = { 1: addon.denseChain(...chainArgs, 1), 2: addon.denseChain(...chainArgs, 2) };
const weightsPerRow = sizes.slice(1).reduce((sum, out, i) => sum + out * sizes[i], 0);
for (const n of values['chain-batches'].split(',').map(Number)) {
  const x = rowsOf(n);
  const y = new Float32Array(n * 10);
  const reps = Math.ceil(300 / n);
  const best = { 1: Infinity, 2: Infinity };
  for (let s = 0; s < Number(values.samples) + 3; s++) {
    for (const t of [1, 2]) {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) addon.denseChainRun(chains[t], x, n, y);
      if (s >= 3) best[t] = Math.min(best[t], ((performance.now() - t0) * 1000) / reps);
    }
  }
  for (const t of [1, 2]) {
    console.log(JSON.stringify({ bench: 'dense-infer', layer: '784-256-256-10 chain', cpu: addon.cpuBest, inferThreads: t, batch: n,
      bestUs: Math.round(best[t] * 100) / 100, gflops: Math.round(((2 * weightsPerRow * n) / best[t] / 1e3) * 10) / 10,
      ...(n === 1 ? { weightsGBps: Math.round((4 * weightsPerRow) / best[t] / 1e3 * 10) / 10 } : {}),
      ...(t === 2 ? { speedup: Math.round((best[1] / best[2]) * 100) / 100 } : {}), load: os.loadavg()[0] }));
  }
}
