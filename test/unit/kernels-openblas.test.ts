/** With libopenblas-dev installed the addon is built on OpenBLAS, and its gemm agrees with the built-in one. */
import { describe, expect, it } from 'vitest';
import { tryLoadNativeKernels } from '../../src/core/kernels/native.js';
import { createRng } from '../../src/core/rng.js';
import { expectClose } from '../helpers/gradcheck.js';
import { randn } from '../helpers/kernels.js';
import { optional } from '../helpers/optional.js';

const openblas = optional('libopenblas-dev');

describe.skipIf(openblas.skip)(`OpenBLAS gemm ${openblas.tag}`, () => {
  it('is what the addon was built with (rebuild with `node scripts/build-native.mjs` after installing it)', () => {
    const load = tryLoadNativeKernels({ gemm: 'openblas' });
    expect(load.reason).toBeUndefined();
    expect(load.kernels?.gemmBackend).toBe('openblas');
  });

  it('agrees with the built-in gemm in all four transpose cases', () => {
    const blas = tryLoadNativeKernels({ gemm: 'openblas' }).kernels!;
    const builtin = tryLoadNativeKernels({ gemm: 'builtin' }).kernels!;
    const rng = createRng(7);
    const [m, n, k] = [37, 29, 53];
    const a = randn(rng, m * k);
    const b = randn(rng, k * n);
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const c1 = new Float32Array(m * n);
        const c2 = new Float32Array(m * n);
        blas.gemm(ta, tb, m, n, k, 1, a, b, 0, c1);
        builtin.gemm(ta, tb, m, n, k, 1, a, b, 0, c2);
        expectClose(c1, c2, { rtol: 1e-5, atol: 1e-5 }, `gemm ta=${ta} tb=${tb}`);
      }
    }
  });
});
