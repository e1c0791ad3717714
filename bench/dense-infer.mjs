// denseInfer alone (the inference kernel of dense layers) on the MLP's first
// layer, 784 -> 256, random weights packed once: best µs per call and GFLOPS
// at batch 1 and 64, for every CPU path this machine runs, best of --samples
// blocks of ~300 rows (short blocks: on a shared machine the best block is the
// one least disturbed). One JSON line per path and batch.
// Usage: node bench/dense-infer.mjs [--samples 40]
import { createRequire } from 'node:module';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { CPU_PATHS, nativeAddonPath } from '../dist/src/core/kernels/native.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '40' } } });
const addon = createRequire(import.meta.url)(nativeAddonPath());
const [IN, OUT] = [784, 256];
const weight = Float32Array.from({ length: IN * OUT }, (_, i) => (((i * 7919) % 1000) / 1000 - 0.5) * 0.1);
const packed = addon.alignedFloat32Array(Math.ceil(OUT / 16) * 16 * IN);
addon.packDense(weight, OUT, IN, packed);
const bias = new Float32Array(OUT);
for (const path of CPU_PATHS.slice(0, CPU_PATHS.indexOf(addon.cpuBest) + 1)) {
  addon.setCpuPath(path);
  for (const n of [1, 64]) {
    const x = Float32Array.from({ length: n * IN }, (_, i) => ((i * 31) % 97) / 97);
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
