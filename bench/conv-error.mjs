// Rounding error of the native conv2d kernels at the Fashion-MNIST CNN's
// second layer ([N, 32, 14, 14] -> 64, 3x3 'same'): forward y, dx and dweight
// against the portable kernels, which sum every product in float64. One JSON
// line per gemm: max |native - portable| / max |portable| for each output.
// It calls only conv2dForward / conv2dBackward, so the same file measures the
// im2col path of an addon built before the Winograd one (316ac87).
// Usage: npx tsc -p tsconfig.json && node bench/conv-error.mjs [--batch 32]
import { parseArgs } from 'node:util';
import { loadNativeKernels } from '../dist/src/core/kernels/native.js';
import { portableKernels } from '../dist/src/core/kernels/portable.js';
import { conv2dColSize } from '../dist/src/core/kernels/types.js';
import { createRng, nextNormal } from '../dist/src/core/rng.js';

const { values } = parseArgs({ options: { batch: { type: 'string', default: '32' } } });
const [N, C, H, W, F] = [Number(values.batch), 32, 14, 14, 64];
const rng = createRng(7);
const randn = (n, scale = 1) => Float32Array.from({ length: n }, () => nextNormal(rng) * scale);
const x = randn(N * C * H * W);
const weight = randn(F * C * 9, Math.sqrt(1 / (C * 9)));
const dy = randn(N * F * H * W);

function run(k) {
  const out = { y: new Float32Array(dy.length), dx: new Float32Array(x.length), dweight: new Float32Array(weight.length) };
  const col = new Float32Array(conv2dColSize(C, 3, 3, H, W));
  k.conv2dForward(x, weight, null, out.y, N, C, H, W, F, 3, 3, 1, 1, 1, 1, col);
  k.conv2dBackward(x, weight, dy, out.dx, out.dweight, null, N, C, H, W, F, 3, 3, 1, 1, 1, 1, col);
  return out;
}

const reference = run(portableKernels);
for (const gemm of ['openblas', 'builtin']) {
  const k = loadNativeKernels({ gemm });
  if (!k) continue;
  const actual = run(k);
  const error = {};
  for (const [name, ref] of Object.entries(reference)) {
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < ref.length; i++) {
      worst = Math.max(worst, Math.abs(actual[name][i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    error[name] = Number((worst / scale).toPrecision(2));
  }
  console.log(JSON.stringify({ bench: 'conv-error', gemm: k.gemmBackend, shape: [N, C, H, W], filters: F, relativeToMax: error }));
}
