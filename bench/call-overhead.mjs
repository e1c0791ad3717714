// What one call into the native addon costs beyond its work: each kernel that
// a training step of the MLP calls, on the smallest sizes it takes, so the
// time is the N-API call and the reading of its arguments (typed arrays,
// numbers, flags). One JSON line per call: nanoseconds per call, the median
// of --samples samples of --calls calls each. A training step at batch 32
// makes about 25 such calls (gatherRows, 8 gemm, 4 batch-norm, 8 sgdStep, …).
// --addon times another build of the addon (a .node file), for an A/B.
// Usage: node bench/call-overhead.mjs [--samples 9] [--calls 100000] [--addon path/to/normlab_native.node]
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { nativeAddonPath } from '../dist/src/core/kernels/native.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '9' },
    calls: { type: 'string', default: '100000' },
    addon: { type: 'string' },
  },
});
const addonPath = values.addon ? path.resolve(values.addon) : nativeAddonPath();
const k = createRequire(import.meta.url)(addonPath);
const samples = Number(values.samples);
const calls = Number(values.calls);

const a = new Float32Array(64);
const b = new Float32Array(64);
const c = new Float32Array(64);
const d = new Float32Array(64);
const e = new Float32Array(64);
const rows = Int32Array.of(0, 1);
const labels = new Int32Array(8);
const cases = {
  'gemm 1x1x1': () => k.gemm(false, false, 1, 1, 1, 1, a, b, 0, c),
  'sgdStep n=1': () => k.sgdStep(a, b, c, 1, 0.1, 0.9, false, 0),
  'batchNormForwardTrain 2x8': () => k.batchNormForwardTrain(a, b, 2, 8, 1, c, d, e, e, 0.9, 1e-5, true, c, d, 0, 0),
  'batchNormBackward 2x8': () => k.batchNormBackward(a, b, c, 2, 8, 1, d, e, e, null, null, a, b, 0, 0, c),
  'gatherRows 2x8': () => k.gatherRows(a, labels, rows, 0, 2, 8, b, labels),
  'multiply n=1': () => k.multiply(a, b, c, 1),
};

for (const [call, fn] of Object.entries(cases)) {
  for (let i = 0; i < calls; i++) fn();
  const ns = [];
  for (let s = 0; s < samples; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn();
    ns.push(Number(process.hrtime.bigint() - t0) / calls);
  }
  ns.sort((x, y) => x - y);
  console.log(JSON.stringify({
    bench: 'call-overhead', call, nsPerCall: Math.round(ns[Math.floor(samples / 2)]), min: Math.round(ns[0]), addon: addonPath,
  }));
}
