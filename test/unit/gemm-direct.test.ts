/**
 * The direct AVX-512 sgemm (native/gemm_direct.cc) that `gemm` takes first:
 * which shapes it takes, its products against float64 sums, and that `gemm`
 * gives its bytes where it applies and the backend's elsewhere.
 */
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeAddonPath, type NativeAddon } from '../../src/core/kernels/native.js';
import { createRng } from '../../src/core/rng.js';
import { randn } from '../helpers/kernels.js';

let addon: NativeAddon | null = null;
try {
  addon = createRequire(import.meta.url)(nativeAddonPath()) as NativeAddon;
} catch {
  addon = null;
}
const avx512 = addon?.cpuBest === 'avx512';

type Case = [transA: boolean, transB: boolean, M: number, N: number, K: number];

/** Whether the rule in native/kernels.h (sgemm_direct) takes this shape on an AVX-512 path. */
function takes([transA, transB, M, N, K]: Case): boolean {
  if (K > 1024 || N < 16) return false;
  if (!transB) return K >= 16 && M * K <= 131072;
  return !transA && M >= 16 && K >= 16 && M * K <= 524288 && M * N <= 131072;
}

/** float64 sums, and each element's sum of |products| (the scale of its rounding error). */
function reference([transA, transB, M, N, K]: Case, A: Float32Array, B: Float32Array) {
  const sum = new Float64Array(M * N);
  const abs = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, a = 0;
      for (let t = 0; t < K; t++) {
        const p = (transA ? A[t * M + i]! : A[i * K + t]!) * (transB ? B[j * K + t]! : B[t * N + j]!);
        s += p;
        a += Math.abs(p);
      }
      sum[i * N + j] = s;
      abs[i * N + j] = a;
    }
  }
  return { sum, abs };
}

const rng = createRng(97);
// Row and column counts around the tiles (6 or 12 rows, 16-column vectors, 64-column blocks).
const shapes: Case[] = [];
for (const [M, N, K] of [[1, 16, 16], [5, 17, 17], [6, 48, 32], [7, 65, 100], [13, 100, 33], [32, 256, 784],
  [31, 63, 256], [33, 130, 64], [100, 256, 1024], [128, 16, 1024], [256, 784, 32], [10, 256, 32], [64, 31, 300]] as const) {
  shapes.push([false, false, M, N, K], [true, false, M, N, K]);
}
for (const [M, N, K] of [[16, 16, 16], [16, 256, 784], [17, 33, 17], [32, 256, 256], [33, 100, 65], [48, 17, 1024],
  [64, 130, 255], [97, 40, 300], [512, 16, 1024], [512, 256, 20]] as const) {
  shapes.push([false, true, M, N, K]);
}
// Outside the rule: each bound passed by one (the shapes above reach each bound).
const outside: Case[] = [[false, false, 32, 256, 1025], [false, false, 32, 15, 256], [false, false, 32, 256, 15],
  [true, false, 129, 256, 1024], [false, true, 15, 256, 256], [false, true, 513, 16, 1024], [false, true, 64, 256, 15], [false, true, 513, 256, 20], [false, true, 32, 10, 256],
  [true, true, 32, 256, 256]];

describe.skipIf(addon === null)('direct sgemm', () => {
  afterAll(() => { addon!.setCpuPath('auto'); addon!.setGemmThreads(1); });

  it('takes exactly the shapes of its rule, and none off the AVX-512 path', () => {
    for (const c of [...shapes, ...outside]) {
      const [ta, tb, M, N, K] = c;
      const C = new Float32Array(M * N).fill(7);
      const applied = addon!.gemmDirect(ta, tb, M, N, K, 1, randn(rng, M * K), randn(rng, K * N), 0, C);
      expect(applied, `${c}`).toBe(avx512 && takes(c));
      if (!applied) expect(C.every((v) => v === 7), `C untouched at ${c}`).toBe(true);
    }
    expect(shapes.every(takes) && !outside.some(takes)).toBe(true);
    if (addon!.gemmBackend === 'openblas') {
      // More OpenBLAS threads than the direct kernel's one: OpenBLAS takes every multiply.
      addon!.setGemmThreads(2);
      expect(addon!.gemmDirect(false, false, 32, 256, 256, 1, randn(rng, 32 * 256), randn(rng, 256 * 256), 0,
        new Float32Array(32 * 256))).toBe(false);
      addon!.setGemmThreads(1);
    }
    if (addon!.cpuBest !== 'baseline') {
      addon!.setCpuPath('avx2');
      expect(addon!.gemmDirect(false, false, 32, 256, 256, 1, randn(rng, 32 * 256), randn(rng, 256 * 256), 0,
        new Float32Array(32 * 256))).toBe(false);
      addon!.setCpuPath('auto');
    }
  });

  it.skipIf(!avx512)('agrees with float64 sums to the rounding of K sequential sums, for alpha and beta', () => {
    for (const c of shapes) {
      const [ta, tb, M, N, K] = c;
      const A = randn(rng, M * K), B = randn(rng, K * N), C0 = randn(rng, M * N);
      const { sum, abs } = reference(c, A, B);
      for (const [alpha, beta] of [[1, 0], [0.5, -2]] as const) {
        // beta = 0 must not read C: NaN there stays out of the result.
        const C = beta === 0 ? new Float32Array(M * N).fill(NaN) : C0.slice();
        expect(addon!.gemmDirect(ta, tb, M, N, K, alpha, A, B, beta, C)).toBe(true);
        let worst = 0;
        for (let e = 0; e < M * N; e++) {
          const want = alpha * sum[e]! + beta * C0[e]! * (beta === 0 ? 0 : 1);
          const bound = 1.2e-7 * (K + 2) * (Math.abs(alpha) * abs[e]! + Math.abs(beta * C0[e]!)) + 1e-30;
          const err = Math.abs(C[e]! - want) / bound;
          if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
        }
        expect(worst, `${c} alpha=${alpha} beta=${beta}`).toBeLessThanOrEqual(1);
      }
    }
  });

  it.skipIf(!avx512)('is what gemm runs where it applies; gemm runs the backend elsewhere', () => {
    const backend = addon!.gemmOpenblas ?? addon!.gemmBuiltin;
    for (const c of [...shapes.slice(0, 6), ...outside.slice(0, 3)]) {
      const [ta, tb, M, N, K] = c;
      const A = randn(rng, M * K), B = randn(rng, K * N);
      const viaGemm = new Float32Array(M * N), expected = new Float32Array(M * N);
      addon!.gemm(ta, tb, M, N, K, 1, A, B, 0, viaGemm);
      if (!addon!.gemmDirect(ta, tb, M, N, K, 1, A, B, 0, expected)) backend(ta, tb, M, N, K, 1, A, B, 0, expected);
      expect(viaGemm, `${c}`).toEqual(expected);
    }
  });
});
