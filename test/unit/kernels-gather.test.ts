import { describe, expect, it } from 'vitest';
import { kernelSets } from '../helpers/kernels.js';
import { expectClose } from '../helpers/gradcheck.js';


describe.each(kernelSets)('gatherRows (%s)', (_name, k) => {
  const features = 3;
  const src = Float32Array.from({ length: 5 * features }, (_, i) => i);
  const labels = Int32Array.of(10, 11, 12, 13, 14);

  it('copies the chosen rows and their labels, starting at an offset of the index list', () => {
    const dst = new Float32Array(2 * features).fill(-1);
    const dstLabels = new Int32Array(2);
    k.gatherRows(src, labels, Int32Array.of(9, 4, 1, 9), 1, 2, features, dst, dstLabels);
    expect(Array.from(dst)).toEqual([12, 13, 14, 3, 4, 5]);
    expect(Array.from(dstLabels)).toEqual([14, 11]);
  });

  it('rejects a row outside the source', () => {
    expect(() => k.gatherRows(src, labels, Int32Array.of(5), 0, 1, features, new Float32Array(3), new Int32Array(1))).toThrow(RangeError);
    expect(() => k.gatherRows(src, labels, Int32Array.of(-1), 0, 1, features, new Float32Array(3), new Int32Array(1))).toThrow(RangeError);
  });
});

describe.each(kernelSets)('gemm with one row, the matrix-vector path (%s)', (_name, k) => {
  const K = 37, N = 19;
  const a = Float32Array.from({ length: K }, (_, i) => Math.sin(i));
  const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.7));
  it.each([[false, false], [false, true], [true, false], [true, true]])('transA %s, transB %s, beta 0 over NaN and beta 1', (transA, transB) => {
    const expected = new Float32Array(N);
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let q = 0; q < K; q++) s += a[q]! * (transB ? b[n * K + q]! : b[q * N + n]!);
      expected[n] = 2 * s;
    }
    const c = new Float32Array(N).fill(Number.NaN);
    k.gemm(transA, transB, 1, N, K, 2, a, b, 0, c);
    expectClose(c, expected, { rtol: 1e-5, atol: 1e-5 }, 'beta 0');
    k.gemm(transA, transB, 1, N, K, 2, a, b, 1, c);
    expectClose(c, expected.map((v) => 2 * v), { rtol: 1e-5, atol: 1e-5 }, 'beta 1');
  });
});
