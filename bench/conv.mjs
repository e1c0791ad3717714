// conv2d forward + backward at the two conv layers of the Fashion-MNIST CNN
// (1x28x28 → 32 and 32x14x14 → 64, 3x3 'same', no bias: BN follows), batch
// 128, single thread, for the OpenBLAS and the built-in gemm: ms per batch
// (median of --reps after a warm-up) and GFLOPS (2·multiply-adds / time),
// and the inference form (conv2dInfer on packConv's weights, always the
// built-in gemm) at batch 1 and at --batch.
// One JSON line per layer and gemm. The first layer computes no dx.
// Usage: npx tsc -p tsconfig.json && node bench/conv.mjs [--batch 128] [--reps 15]
import { parseArgs } from 'node:util';
import { loadNativeKernels } from '../dist/src/core/kernels/native.js';
import { conv2dColSize, convOutputSize } from '../dist/src/core/kernels/types.js';

const { values } = parseArgs({
  options: { batch: { type: 'string', default: '128' }, reps: { type: 'string', default: '15' } },
});
const N = Number(values.batch);
const reps = Number(values.reps);

const layers = [
  { layer: 'conv1', C: 1, H: 28, W: 28, F: 32, K: 3, pad: 1, dx: false },
  { layer: 'conv2', C: 32, H: 14, W: 14, F: 64, K: 3, pad: 1, dx: true },
];

function filled(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 12.9898) * 0.5;
  return a;
}

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

const backends = ['openblas', 'builtin']
  .map((gemm) => loadNativeKernels({ gemm }))
  .filter((k) => k !== null);
if (backends.length === 0) throw new Error('the native kernels did not load (node scripts/build-native.mjs)');

for (const { layer, C, H, W, F, K, pad, dx: withDx } of layers) {
  const OH = convOutputSize(H, K, 1, pad);
  const OW = convOutputSize(W, K, 1, pad);
  const x = filled(N * C * H * W);
  const weight = filled(F * C * K * K);
  const y = new Float32Array(N * F * OH * OW);
  const dy = filled(y.length);
  const dx = withDx ? new Float32Array(x.length) : null;
  const dweight = new Float32Array(weight.length);
  const col = new Float32Array(conv2dColSize(C, K, K, OH, OW));
  const macs = N * F * OH * OW * C * K * K;
  for (const k of backends) {
    const fwd = [];
    const bwd = [];
    for (let r = 0; r < reps + 2; r++) {
      const t0 = process.hrtime.bigint();
      k.conv2dForward(x, weight, null, y, N, C, H, W, F, K, K, 1, 1, pad, pad, col);
      const t1 = process.hrtime.bigint();
      k.conv2dBackward(x, weight, dy, dx, dweight, null, N, C, H, W, F, K, K, 1, 1, pad, pad, col);
      const t2 = process.hrtime.bigint();
      if (r >= 2) {
        fwd.push(Number(t1 - t0) / 1e6);
        bwd.push(Number(t2 - t1) / 1e6);
      }
    }
    const packed = k.packConv(weight, F, C, K, K, 1, 1);
    const inferUs = (n, calls) => {
      const t = [];
      for (let r = 0; r < calls + 2; r++) {
        const t0 = process.hrtime.bigint();
        k.conv2dInfer(x, packed, null, y, n, C, H, W, F, K, K, 1, 1, pad, pad, col);
        if (r >= 2) t.push(Number(process.hrtime.bigint() - t0) / 1e3);
      }
      return median(t);
    };
    const infer1Us = inferUs(1, reps * 20);
    const inferBatchMs = inferUs(N, reps) / 1e3;
    const forwardMs = median(fwd);
    const backwardMs = median(bwd);
    const totalMs = median(fwd.map((f, i) => f + bwd[i]));
    const flops = 2 * macs * (withDx ? 3 : 2);
    console.log(JSON.stringify({
      bench: 'conv', layer, gemm: k.gemmBackend, batch: N, shape: [C, H, W], filters: F, kernel: K, dx: withDx,
      forwardMs: +forwardMs.toFixed(2), backwardMs: +backwardMs.toFixed(2), totalMs: +totalMs.toFixed(2),
      forwardGflops: +((2 * macs) / forwardMs / 1e6).toFixed(1),
      backwardGflops: +((flops - 2 * macs) / backwardMs / 1e6).toFixed(1),
      totalGflops: +(flops / totalMs / 1e6).toFixed(1),
      inferBatch1Us: +infer1Us.toFixed(1), inferMs: +inferBatchMs.toFixed(2),
    }));
  }
}
