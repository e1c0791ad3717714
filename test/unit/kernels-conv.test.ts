/**
 * Convolution and pooling kernels: against the PyTorch fixtures
 * (test/fixtures/make_fixtures.py: conv2d.json, pool2d.json) for the native
 * addon (OpenBLAS and built-in gemm) and the portable kernels, against
 * finite differences of their own forward, native against portable at the
 * Fashion-MNIST conv layer shapes, and their argument checks.
 */
import { f32, fixture, randn, takesWinograd } from '../helpers/kernels.js';
import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/core/kernels/native.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import { conv2dColSize, convOutputSize, poolOutputSize, type Kernels } from '../../src/core/kernels/types.js';
import { createRng, nextFloat } from '../../src/core/rng.js';
import { dot, expectClose, numericGrad, type Tolerance } from '../helpers/gradcheck.js';

// Fixture references are float64 computations on float32 inputs, so a
// float32 kernel matches them to float32 rounding (the fixture sums are short).
const FIXTURE: Tolerance = { rtol: 1e-5, atol: 1e-6 };
/**
 * The native Winograd path (3x3 at stride 1, >= 8 channels in and out; native/winograd.cc) sums
 * transformed values up to 16x the size of the products, so its rounding error scales with the
 * terms, not with each result: atol relative to the array's largest value. bench/conv-error.mjs
 * at [32, 32, 14, 14] → 64: 2.3e-7 (y), 3.9e-7 (dx), 5.3e-7 (dweight) of it; im2col gave 6.6e-7,
 * 2.1e-7, 3.0e-7.
 */
const winogradTol = (expected: ArrayLike<number>): Tolerance => {
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(expected[i]!));
  return { rtol: 1e-5, atol: 2e-6 * max };
};
const GRAD: Tolerance = { rtol: 1e-2, atol: 1e-3 };

const native = loadNativeKernels();
const nativeBuiltin = loadNativeKernels({ gemm: 'builtin' });
// A missing addon is reported by kernels-native.test.ts; here its cases are skipped.
const implementations: [string, Kernels | null][] = [
  [`native (${native?.gemmBackend} gemm)`, native],
  ['native (builtin gemm)', native?.gemmBackend === 'builtin' ? null : nativeBuiltin],
  ['portable', portableKernels],
];

interface ConvCase {
  N: number; C: number; H: number; W: number; F: number; KH: number; KW: number;
  strideH: number; strideW: number; padH: number; padW: number; OH: number; OW: number;
  x: number[]; weight: number[]; bias: number[] | null; y: number[]; dy: number[];
  dx: number[]; dweight: number[]; dbias: number[] | null;
}
interface PoolCase {
  N: number; C: number; H: number; W: number; size: number; stride: number; OH: number; OW: number;
  x: number[]; y: number[]; argmax?: number[]; dy: number[]; dx: number[];
}
interface PoolFixture {
  maxpool: PoolCase[];
  avgpool: PoolCase[];
  global: { N: number; C: number; S: number; x: number[]; y: number[]; dy: number[]; dx: number[] };
}

const conv2d = fixture<{ cases: ConvCase[] }>('conv2d.json');
const pool2d = fixture<PoolFixture>('pool2d.json');

/** One conv2d geometry, with buffers sized from it. */
class Conv {
  readonly OH: number;
  readonly OW: number;
  readonly col: Float32Array;
  constructor(
    readonly N: number, readonly C: number, readonly H: number, readonly W: number, readonly F: number,
    readonly KH: number, readonly KW: number, readonly sh = 1, readonly sw = 1, readonly ph = 0, readonly pw = 0,
  ) {
    this.OH = convOutputSize(H, KH, sh, ph);
    this.OW = convOutputSize(W, KW, sw, pw);
    this.col = new Float32Array(conv2dColSize(C, KH, KW, this.OH, this.OW));
  }
  static of(c: ConvCase): Conv {
    return new Conv(c.N, c.C, c.H, c.W, c.F, c.KH, c.KW, c.strideH, c.strideW, c.padH, c.padW);
  }
  get inSize() { return this.N * this.C * this.H * this.W; }
  get outSize() { return this.N * this.F * this.OH * this.OW; }
  get weightSize() { return this.F * this.C * this.KH * this.KW; }
  forward(k: Kernels, x: Float32Array, weight: Float32Array, bias: Float32Array | null, y: Float32Array): void {
    k.conv2dForward(x, weight, bias, y, this.N, this.C, this.H, this.W, this.F, this.KH, this.KW,
      this.sh, this.sw, this.ph, this.pw, this.col);
  }
  backward(k: Kernels, x: Float32Array, weight: Float32Array, dy: Float32Array, dx: Float32Array | null,
    dweight: Float32Array, dbias: Float32Array | null): void {
    k.conv2dBackward(x, weight, dy, dx, dweight, dbias, this.N, this.C, this.H, this.W, this.F, this.KH, this.KW,
      this.sh, this.sw, this.ph, this.pw, this.col);
  }
}

/** conv2d forward and backward straight from the definitions in types.ts, in float64. */
function convReference(g: Conv, x: Float32Array, weight: Float32Array, bias: Float32Array, dy: Float32Array) {
  const y = new Float64Array(g.outSize);
  const dx = new Float64Array(g.inSize);
  const dweight = new Float64Array(g.weightSize);
  const dbias = new Float64Array(g.F);
  for (let n = 0; n < g.N; n++) {
    for (let f = 0; f < g.F; f++) {
      for (let oh = 0; oh < g.OH; oh++) {
        for (let ow = 0; ow < g.OW; ow++) {
          const o = ((n * g.F + f) * g.OH + oh) * g.OW + ow;
          let sum = bias[f]!;
          dbias[f]! += dy[o]!;
          for (let c = 0; c < g.C; c++) {
            for (let kh = 0; kh < g.KH; kh++) {
              const h = oh * g.sh - g.ph + kh;
              if (h < 0 || h >= g.H) continue;
              for (let kw = 0; kw < g.KW; kw++) {
                const w = ow * g.sw - g.pw + kw;
                if (w < 0 || w >= g.W) continue;
                const xi = ((n * g.C + c) * g.H + h) * g.W + w;
                const wi = ((f * g.C + c) * g.KH + kh) * g.KW + kw;
                sum += weight[wi]! * x[xi]!;
                dx[xi]! += dy[o]! * weight[wi]!;
                dweight[wi]! += dy[o]! * x[xi]!;
              }
            }
          }
          y[o] = sum;
        }
      }
    }
  }
  return { y, dx, dweight, dbias };
}

/** A random permutation of 0.1·i: values at least 0.1 apart, so a ±1e-2 step never changes a max. */
function distinct(rng: Uint32Array, n: number): Float32Array {
  const a = Float32Array.from({ length: n }, (_, i) => 0.1 * i - 0.05 * n);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(nextFloat(rng) * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

for (const [name, k] of implementations) {
  describe.skipIf(k === null)(`conv and pooling kernels: ${name}`, () => {
    const K = k!;

    it('conv2d forward and backward match PyTorch (stride 1 and 2, padding 0 to 2, 1x1, non-square, Winograd)', () => {
      for (const c of conv2d.cases) {
        const label = `C${c.C} F${c.F} ${c.KH}x${c.KW} stride ${c.strideH},${c.strideW} pad ${c.padH},${c.padW}` +
          ` bias=${c.bias !== null}`;
        const g = Conv.of(c);
        const tol = (e: number[]) => name !== 'portable' && takesWinograd(c, c.strideH, c.strideW) ? winogradTol(e) : FIXTURE;
        expect([g.OH, g.OW], label).toEqual([c.OH, c.OW]);
        const x = f32(c.x);
        const weight = f32(c.weight);
        const bias = c.bias ? f32(c.bias) : null;
        // Outputs are overwritten and col's contents never matter: NaN must not leak through.
        g.col.fill(Number.NaN);
        const y = new Float32Array(g.outSize).fill(Number.NaN);
        g.forward(K, x, weight, bias, y);
        expectClose(y, c.y, tol(c.y), `${label} y`);
        const dx = new Float32Array(g.inSize).fill(Number.NaN);
        const dweight = new Float32Array(g.weightSize).fill(Number.NaN);
        const dbias = bias ? new Float32Array(c.F).fill(Number.NaN) : null;
        g.col.fill(Number.NaN);
        g.backward(K, x, weight, f32(c.dy), dx, dweight, dbias);
        expectClose(dx, c.dx, tol(c.dx), `${label} dx`);
        expectClose(dweight, c.dweight, tol(c.dweight), `${label} dweight`);
        if (dbias) expectClose(dbias, c.dbias!, FIXTURE, `${label} dbias`);
        // Without dx (a first layer) the weight gradient is the same.
        const dweight2 = new Float32Array(g.weightSize);
        g.backward(K, x, weight, f32(c.dy), null, dweight2, null);
        expect(Array.from(dweight2), label).toEqual(Array.from(dweight));
      }
    });

    it('conv2d reads and writes views at their byteOffset', () => {
      const c = conv2d.cases[0]!;
      const g = Conv.of(c);
      const xBuffer = new Float32Array(g.inSize + 5).fill(1e6);
      xBuffer.set(c.x, 3);
      const yBuffer = new Float32Array(g.outSize + 4).fill(-1);
      const y = yBuffer.subarray(2, 2 + g.outSize);
      g.forward(K, xBuffer.subarray(3, 3 + g.inSize), f32(c.weight), f32(c.bias!), y);
      expectClose(y, c.y, FIXTURE, 'y');
      expect([yBuffer[0], yBuffer[1], yBuffer[g.outSize + 2], yBuffer[g.outSize + 3]]).toEqual([-1, -1, -1, -1]);
    });

    it('conv2d matches a float64 reference on 40 random geometries (padding up to the kernel size)', () => {
      const rng = createRng(520);
      const int = (lo: number, hi: number) => lo + Math.floor(nextFloat(rng) * (hi - lo + 1));
      for (let t = 0; t < 40; t++) {
        const [KH, KW] = [int(1, 4), int(1, 4)];
        const [sh, sw] = [int(1, 3), int(1, 3)];
        const [ph, pw] = [int(0, KH), int(0, KW)];
        // Every fourth case takes the stride-1 'same' width path of the native im2col (OW = W).
        const same = t % 4 === 0;
        const g = new Conv(int(1, 3), int(1, 3), int(Math.max(1, KH - 2 * ph), 7), int(Math.max(1, KW - 2 * pw), 7),
          int(1, 3), KH, same ? 2 * Math.floor(KW / 2) + 1 : KW, same ? 1 : sh, same ? 1 : sw, ph,
          same ? Math.floor(KW / 2) : pw);
        const label = `N${g.N} C${g.C} ${g.H}x${g.W} F${g.F} k${g.KH}x${g.KW} s${g.sh},${g.sw} p${g.ph},${g.pw}`;
        const x = randn(rng, g.inSize);
        const weight = randn(rng, g.weightSize);
        const bias = randn(rng, g.F);
        const dy = randn(rng, g.outSize);
        const ref = convReference(g, x, weight, bias, dy);
        const y = new Float32Array(g.outSize);
        g.forward(K, x, weight, bias, y);
        const dx = new Float32Array(g.inSize).fill(Number.NaN);
        const dweight = new Float32Array(g.weightSize);
        const dbias = new Float32Array(g.F);
        g.backward(K, x, weight, dy, dx, dweight, dbias);
        expectClose(y, ref.y, FIXTURE, `${label} y`);
        expectClose(dx, ref.dx, FIXTURE, `${label} dx`);
        expectClose(dweight, ref.dweight, FIXTURE, `${label} dweight`);
        expectClose(dbias, ref.dbias, FIXTURE, `${label} dbias`);
      }
    });

    it('conv2d matches a float64 reference on 3x3 stride-1 geometries of 8-12 channels (the Winograd path)', () => {
      const rng = createRng(521);
      const int = (lo: number, hi: number) => lo + Math.floor(nextFloat(rng) * (hi - lo + 1));
      const cases = Array.from({ length: 24 }, () => {
        const [ph, pw] = [int(0, 3), int(0, 3)];
        return new Conv(int(1, 4), int(8, 12), int(Math.max(1, 3 - 2 * ph), 9), int(Math.max(1, 3 - 2 * pw), 9),
          int(8, 12), 3, 3, 1, 1, ph, pw);
      });
      // Planes of 1024 tiles: one sample per chunk (about 1 MB of transforms), so five chunks.
      cases.push(new Conv(5, 8, 64, 63, 8, 3, 3, 1, 1, 1, 1));
      for (const g of cases) {
        const label = `N${g.N} C${g.C} ${g.H}x${g.W} F${g.F} p${g.ph},${g.pw}`;
        const x = randn(rng, g.inSize);
        const weight = randn(rng, g.weightSize, Math.sqrt(1 / (g.C * 9)));
        const bias = randn(rng, g.F);
        const dy = randn(rng, g.outSize);
        const ref = convReference(g, x, weight, bias, dy);
        const y = new Float32Array(g.outSize).fill(Number.NaN);
        g.forward(K, x, weight, bias, y);
        const dx = new Float32Array(g.inSize).fill(Number.NaN);
        const dweight = new Float32Array(g.weightSize).fill(Number.NaN);
        const dbias = new Float32Array(g.F);
        g.backward(K, x, weight, dy, dx, dweight, dbias);
        expectClose(y, ref.y, winogradTol(ref.y), `${label} y`);
        expectClose(dx, ref.dx, winogradTol(ref.dx), `${label} dx`);
        expectClose(dweight, ref.dweight, winogradTol(ref.dweight), `${label} dweight`);
        expectClose(dbias, ref.dbias, FIXTURE, `${label} dbias`);
      }
    });

    it('max pooling matches PyTorch: values, argmax indices (ties), backward', () => {
      for (const c of pool2d.maxpool) {
        const label = `size ${c.size} stride ${c.stride}`;
        expect([poolOutputSize(c.H, c.size, c.stride), poolOutputSize(c.W, c.size, c.stride)]).toEqual([c.OH, c.OW]);
        const y = new Float32Array(c.y.length).fill(Number.NaN);
        const argmax = new Int32Array(c.y.length).fill(-1);
        K.maxPool2dForward(f32(c.x), y, argmax, c.N, c.C, c.H, c.W, c.size, c.stride);
        expect(Array.from(y), label).toEqual(Array.from(f32(c.y)));
        expect(Array.from(argmax), label).toEqual(c.argmax);
        const dx = new Float32Array(c.x.length).fill(Number.NaN);
        K.maxPool2dBackward(f32(c.dy), argmax, dx, c.N, c.C, c.H, c.W, c.size, c.stride);
        expectClose(dx, c.dx, FIXTURE, `${label} dx`);
      }
    });

    it('max pooling: ties, NaN, -Infinity (2x2 at stride 2 and the general windows)', () => {
      // Four 2x2 planes: a NaN wins; all -Infinity; a tie of three; a tie of all four.
      const x = Float32Array.of(1, Number.NaN, 3, 2, -Infinity, -Infinity, -Infinity, -Infinity, 0, 2, 2, 2, 5, 5, 5, 5);
      for (const [size, stride] of [[2, 2], [2, 3]] as const) {
        const y = new Float32Array(4);
        const argmax = new Int32Array(4);
        K.maxPool2dForward(x, y, argmax, 2, 2, 2, 2, size, stride);
        expect(y[0]).toBeNaN();
        expect(Array.from(argmax)).toEqual([1, 0, 1, 0]);
        expect(Array.from(y.subarray(1))).toEqual([-Infinity, 2, 5]);
      }
    });

    it('pooling 2x2 at stride 2 writes every dx, also the row and column of an odd H and W no window covers', () => {
      const [N, C, H, W] = [1, 2, 5, 3];
      const x = Float32Array.from({ length: N * C * H * W }, (_, i) => (i * 7) % 11);
      const dy = Float32Array.from({ length: N * C * 2 * 1 }, (_, i) => i + 1);
      const y = new Float32Array(dy.length);
      const argmax = new Int32Array(dy.length);
      K.maxPool2dForward(x, y, argmax, N, C, H, W, 2, 2);
      const dmax = new Float32Array(x.length).fill(Number.NaN);
      K.maxPool2dBackward(dy, argmax, dmax, N, C, H, W, 2, 2);
      const davg = new Float32Array(x.length).fill(Number.NaN);
      K.avgPool2dBackward(dy, davg, N, C, H, W, 2, 2);
      const expected = new Float32Array(x.length);
      for (let pl = 0; pl < N * C; pl++) {
        for (let oh = 0; oh < 2; oh++) {
          for (const i of [0, 1, W, W + 1]) expected[pl * H * W + oh * 2 * W + i] = dy[pl * 2 + oh]! / 4;
        }
      }
      expect(Array.from(davg)).toEqual(Array.from(expected));
      expect(dmax.reduce((s, v) => s + v, 0)).toBe(dy.reduce((s, v) => s + v, 0));
      expect(dmax.filter((v) => v !== 0).length).toBe(dy.length);
    });

    it('average pooling matches PyTorch', () => {
      for (const c of pool2d.avgpool) {
        const label = `size ${c.size} stride ${c.stride}`;
        const y = new Float32Array(c.y.length).fill(Number.NaN);
        K.avgPool2dForward(f32(c.x), y, c.N, c.C, c.H, c.W, c.size, c.stride);
        expectClose(y, c.y, FIXTURE, `${label} y`);
        const dx = new Float32Array(c.x.length).fill(Number.NaN);
        K.avgPool2dBackward(f32(c.dy), dx, c.N, c.C, c.H, c.W, c.size, c.stride);
        expectClose(dx, c.dx, FIXTURE, `${label} dx`);
      }
    });

    it('global average pooling matches PyTorch', () => {
      const g = pool2d.global;
      const y = new Float32Array(g.N * g.C);
      K.globalAvgPoolForward(f32(g.x), y, g.N, g.C, g.S);
      expectClose(y, g.y, FIXTURE, 'y');
      const dx = new Float32Array(g.x.length).fill(Number.NaN);
      K.globalAvgPoolBackward(f32(g.dy), dx, g.N, g.C, g.S);
      expectClose(dx, g.dx, FIXTURE, 'dx');
    });
  });

  describe.skipIf(k === null)(`conv and pooling gradient checks: ${name}`, () => {
    const K = k!;

    for (const [label, g, seed, scale] of [
      ['stride 2, padding 1, non-square kernel', new Conv(2, 2, 5, 4, 3, 3, 2, 2, 1, 1, 1), 500, 0.5],
      ['3x3 at stride 1 with 8 channels: the native Winograd path', new Conv(2, 8, 5, 7, 8, 3, 3, 1, 1, 1, 1), 501, 0.3],
    ] as const) {
      it(`conv2d backward: dx, dweight, dbias (${label})`, () => {
        const rng = createRng(seed);
        const x = randn(rng, g.inSize);
        const weight = randn(rng, g.weightSize, scale);
        const bias = randn(rng, g.F);
        const w = randn(rng, g.outSize);
        const y = new Float32Array(g.outSize);
        const forward = () => {
          g.forward(K, x, weight, bias, y);
          return dot(w, y);
        };
        const dx = new Float32Array(g.inSize);
        const dweight = new Float32Array(g.weightSize);
        const dbias = new Float32Array(g.F);
        g.backward(K, x, weight, w, dx, dweight, dbias);
        const numericDx = numericGrad(forward, x);
        expectClose(dx, numericDx, GRAD, 'dx');
        expectClose(dweight, numericGrad(forward, weight), GRAD, 'dweight');
        expectClose(dbias, numericGrad(forward, bias), GRAD, 'dbias');

        // The check has teeth: the gradient of a convolution with the kernel
        // flipped (convolution instead of cross-correlation) must fail it.
        const flipped = weight.slice();
        for (let fc = 0; fc < g.F * g.C; fc++) {
          for (let i = 0; i < g.KH * g.KW; i++) flipped[fc * g.KH * g.KW + i] = weight[fc * g.KH * g.KW + g.KH * g.KW - 1 - i]!;
        }
        const wrong = new Float32Array(g.inSize);
        g.backward(K, x, flipped, w, wrong, new Float32Array(g.weightSize), null);
        expect(() => expectClose(wrong, numericDx, GRAD, 'wrong dx')).toThrow(/outside/);
      });
    }

    it('max pooling backward (overlapping windows)', () => {
      const rng = createRng(501);
      const [N, C, H, W, size, stride] = [2, 2, 7, 6, 3, 2];
      const OH = poolOutputSize(H, size, stride);
      const OW = poolOutputSize(W, size, stride);
      const x = distinct(rng, N * C * H * W);
      const w = randn(rng, N * C * OH * OW);
      const y = new Float32Array(w.length);
      const argmax = new Int32Array(w.length);
      const forward = () => {
        K.maxPool2dForward(x, y, argmax, N, C, H, W, size, stride);
        return dot(w, y);
      };
      forward();
      const dx = new Float32Array(x.length);
      K.maxPool2dBackward(w, argmax, dx, N, C, H, W, size, stride);
      const numericDx = numericGrad(forward, x);
      expectClose(dx, numericDx, GRAD, 'dx');
      // Teeth: spreading the gradient over the window (average pooling's) fails.
      const wrong = new Float32Array(x.length);
      K.avgPool2dBackward(w, wrong, N, C, H, W, size, stride);
      expect(() => expectClose(wrong, numericDx, GRAD, 'wrong dx')).toThrow(/outside/);
    });

    it('average pooling backward (overlapping windows)', () => {
      const rng = createRng(502);
      const [N, C, H, W, size, stride] = [2, 2, 7, 6, 3, 2];
      const outSize = N * C * poolOutputSize(H, size, stride) * poolOutputSize(W, size, stride);
      const x = randn(rng, N * C * H * W);
      const w = randn(rng, outSize);
      const y = new Float32Array(outSize);
      const forward = () => {
        K.avgPool2dForward(x, y, N, C, H, W, size, stride);
        return dot(w, y);
      };
      const dx = new Float32Array(x.length);
      K.avgPool2dBackward(w, dx, N, C, H, W, size, stride);
      const numericDx = numericGrad(forward, x);
      expectClose(dx, numericDx, GRAD, 'dx');
      // Teeth: without the division by size² it fails.
      expect(() => expectClose(dx.map((v) => v * size * size), numericDx, GRAD, 'wrong dx')).toThrow(/outside/);
    });

    it('global average pooling backward', () => {
      const rng = createRng(503);
      const [N, C, S] = [3, 2, 5];
      const x = randn(rng, N * C * S);
      const w = randn(rng, N * C);
      const y = new Float32Array(N * C);
      const forward = () => {
        K.globalAvgPoolForward(x, y, N, C, S);
        return dot(w, y);
      };
      const dx = new Float32Array(x.length);
      K.globalAvgPoolBackward(w, dx, N, C, S);
      const numericDx = numericGrad(forward, x);
      expectClose(dx, numericDx, GRAD, 'dx');
      expect(() => expectClose(dx.map((v) => v * S), numericDx, GRAD, 'wrong dx')).toThrow(/outside/);
    });
  });

  describe.skipIf(k === null)(`conv and pooling argument checks: ${name}`, () => {
    const K = k!;
    const ok = new Float32Array(4096);
    const short = new Float32Array(3);
    const idx = new Int32Array(4096);

    it('throws a TypeError naming a too-short array', () => {
      // x [2, 3, 5, 5], weight [4, 3, 3, 3], 'same': y [2, 4, 5, 5], col 27*25 = 675 floats.
      const conv = (x: Float32Array, weight: Float32Array, bias: Float32Array | null, y: Float32Array, col: Float32Array) =>
        K.conv2dForward(x, weight, bias, y, 2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, col);
      expect(() => conv(ok.subarray(0, 149), ok, null, ok, ok)).toThrow(TypeError);
      expect(() => conv(ok.subarray(0, 149), ok, null, ok, ok))
        .toThrow(/conv2dForward: x is too short: 149 elements, the sizes need 150/);
      expect(() => conv(ok, ok.subarray(0, 107), null, ok, ok)).toThrow(/weight is too short/);
      expect(() => conv(ok, ok, short, ok, ok)).toThrow(/bias is too short/);
      expect(() => conv(ok, ok, null, ok.subarray(0, 199), ok)).toThrow(/y is too short/);
      expect(() => conv(ok, ok, null, ok, ok.subarray(0, 674))).toThrow(/col is too short: 674 elements, the sizes need 675/);
      const back = (dx: Float32Array | null, dweight: Float32Array, dbias: Float32Array | null, col: Float32Array) =>
        K.conv2dBackward(ok, ok, ok, dx, dweight, dbias, 2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, col);
      expect(() => back(ok.subarray(0, 149), ok, null, ok)).toThrow(/conv2dBackward: dx is too short/);
      expect(() => back(null, ok.subarray(0, 107), null, ok)).toThrow(/dweight is too short/);
      expect(() => back(null, ok, short, ok)).toThrow(/dbias is too short/);
      expect(() => back(null, ok, null, short)).toThrow(/col is too short/);
      expect(() => K.conv2dBackward(ok, ok, ok.subarray(0, 199), null, ok, null, 2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, ok))
        .toThrow(/dy is too short/);
      // [2, 3, 5, 5] pooled 2/2 → [2, 3, 2, 2].
      expect(() => K.maxPool2dForward(ok, short, idx, 2, 3, 5, 5, 2, 2)).toThrow(/maxPool2dForward: y is too short/);
      expect(() => K.maxPool2dForward(ok, ok, idx.subarray(0, 23), 2, 3, 5, 5, 2, 2)).toThrow(/argmax is too short/);
      expect(() => K.maxPool2dBackward(ok, idx, ok.subarray(0, 149), 2, 3, 5, 5, 2, 2)).toThrow(/maxPool2dBackward: dx is too short/);
      expect(() => K.avgPool2dForward(ok.subarray(0, 149), ok, 2, 3, 5, 5, 2, 2)).toThrow(/avgPool2dForward: x is too short/);
      expect(() => K.avgPool2dBackward(short, ok, 2, 3, 5, 5, 2, 2)).toThrow(/avgPool2dBackward: dy is too short/);
      expect(() => K.globalAvgPoolForward(ok, short, 2, 3, 5)).toThrow(/globalAvgPoolForward: y is too short/);
      expect(() => K.globalAvgPoolBackward(ok, short, 2, 3, 5)).toThrow(/globalAvgPoolBackward: dx is too short/);
    });

    it('throws a RangeError for geometry no kernel can work with', () => {
      const conv = (H: number, W: number, KH: number, KW: number, sh: number, sw: number, ph: number, pw: number) =>
        K.conv2dForward(ok, ok, null, ok, 1, 1, H, W, 1, KH, KW, sh, sw, ph, pw, ok);
      expect(() => conv(2, 5, 3, 3, 1, 1, 0, 0)).toThrow(RangeError);
      expect(() => conv(2, 5, 3, 3, 1, 1, 0, 0)).toThrow(/the 3x3 kernel does not fit the padded 2x5 input/);
      expect(() => conv(5, 5, 3, 3, 0, 1, 0, 0)).toThrow(/strides must be at least 1/);
      expect(() => conv(5, 5, 0, 3, 1, 1, 0, 0)).toThrow(/kernel must be at least 1x1/);
      expect(() => conv(5, 5, 3, 3, 1, 1, -1, 0)).toThrow(/padH must be an integer/);
      expect(() => K.conv2dBackward(ok, ok, ok, null, ok, null, 1, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0, ok))
        .toThrow(/conv2dBackward: the 3x3 kernel does not fit/);
      expect(() => K.maxPool2dForward(ok, ok, idx, 1, 1, 1, 5, 2, 2)).toThrow(/the 2x2 window does not fit the 1x5 input/);
      expect(() => K.avgPool2dForward(ok, ok, 1, 1, 4, 4, 2, 0)).toThrow(/size and stride must be at least 1/);
      expect(() => K.globalAvgPoolForward(ok, ok, 2, 3, 0)).toThrow(/needs a value per plane/);
      // argmax entries index memory, so they are checked.
      const argmax = Int32Array.of(0, 3, 4, 1); // a 2x2 plane has indices 0..3
      expect(() => K.maxPool2dBackward(ok, argmax, ok, 1, 1, 4, 4, 2, 2)).not.toThrow();
      expect(() => K.maxPool2dBackward(ok, argmax, ok, 1, 1, 2, 2, 1, 1)).toThrow(/argmax\[2\] = 4 is outside \[0, 4\)/);
      expect(() => K.maxPool2dBackward(ok, Int32Array.of(-1), ok, 1, 1, 1, 1, 1, 1)).toThrow(RangeError);
    });
  });
}

describe.skipIf(native === null)('conv and pooling: native and portable agree at the Fashion-MNIST shapes (N=8)', () => {
  const kernels = [native!, ...(nativeBuiltin && native?.gemmBackend !== 'builtin' ? [nativeBuiltin] : [])];
  // Portable sums each gemm in float64, native in float32 over up to
  // C*KH*KW = 288 products (dweight: N*OH*OW = 1568), so the rounding error
  // scales with the magnitude of the terms, not of the result: atol is
  // relative to the array's largest value (measured worst: 4e-7 of it).
  const tolFor = (expected: Float32Array): Tolerance => ({
    rtol: 1e-5, atol: 2e-6 * expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
  });

  for (const [label, g, withDx] of [
    ['conv 1x28x28 → 32, 3x3 same (first layer: no dx)', new Conv(8, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1), false],
    ['conv 32x14x14 → 64, 3x3 same', new Conv(8, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1), true],
  ] as const) {
    it(label, () => {
      const rng = createRng(600 + g.C);
      const x = randn(rng, g.inSize);
      const weight = randn(rng, g.weightSize, Math.sqrt(2 / (g.C * 9)));
      const bias = randn(rng, g.F);
      const dy = randn(rng, g.outSize);
      const run = (k: Kernels) => {
        const out = {
          y: new Float32Array(g.outSize), dx: new Float32Array(g.inSize),
          dweight: new Float32Array(g.weightSize), dbias: new Float32Array(g.F),
        };
        g.forward(k, x, weight, bias, out.y);
        g.backward(k, x, weight, dy, withDx ? out.dx : null, out.dweight, out.dbias);
        return out;
      };
      const expected = run(portableKernels);
      for (const k of kernels) {
        const actual = run(k);
        for (const key of Object.keys(actual) as (keyof typeof actual)[]) {
          expectClose(actual[key], expected[key], tolFor(expected[key]), `${k.gemmBackend} ${key}`);
        }
      }
    });
  }

  it('max and average pooling 2/2 of [8, 32, 28, 28] and [8, 64, 14, 14]; global average', () => {
    const rng = createRng(610);
    for (const [N, C, H] of [[8, 32, 28], [8, 64, 14]] as const) {
      const x = randn(rng, N * C * H * H);
      const OH = poolOutputSize(H, 2, 2);
      const dy = randn(rng, N * C * OH * OH);
      const run = (k: Kernels) => {
        const out = {
          max: new Float32Array(dy.length), argmax: new Int32Array(dy.length), dmax: new Float32Array(x.length),
          avg: new Float32Array(dy.length), davg: new Float32Array(x.length),
          gap: new Float32Array(N * C), dgap: new Float32Array(x.length),
        };
        k.maxPool2dForward(x, out.max, out.argmax, N, C, H, H, 2, 2);
        k.maxPool2dBackward(dy, out.argmax, out.dmax, N, C, H, H, 2, 2);
        k.avgPool2dForward(x, out.avg, N, C, H, H, 2, 2);
        k.avgPool2dBackward(dy, out.davg, N, C, H, H, 2, 2);
        k.globalAvgPoolForward(x, out.gap, N, C, H * H);
        k.globalAvgPoolBackward(dy, out.dgap, N, C, H * H);
        return out;
      };
      const a = run(native!);
      const b = run(portableKernels);
      // Max pooling moves values: bit for bit. Averages are rounded once on both sides.
      const exact = { rtol: 0, atol: 0 };
      for (const key of ['max', 'argmax', 'dmax'] as const) expectClose(a[key], b[key], exact, `C=${C} ${key}`);
      for (const key of ['avg', 'davg', 'gap', 'dgap'] as const) expectClose(a[key], b[key], FIXTURE, `C=${C} ${key}`);
    }
  });

  it('max pooling 2x2 at stride 2: the same bytes as the portable loops for every row width, with ties, NaN, -0 and odd sizes', () => {
    // Output widths 1-3 (scalar), 4-7 (two 4-wide blocks), 8 and up (8-wide
    // blocks, the last overlapping), on odd and even H and W.
    const rng = createRng(611);
    const bytes = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    for (const W of [2, 3, 5, 7, 8, 9, 14, 15, 16, 17, 28, 33]) {
      const [N, C, H] = [2, 3, W % 2 === 0 ? 6 : 7];
      const OH = poolOutputSize(H, 2, 2), OW = poolOutputSize(W, 2, 2);
      // Small integers tie often; some NaNs; dy holds -0 (0 + -0 is +0 in dx, as dx = 0 then += dy gives).
      const x = Float32Array.from({ length: N * C * H * W }, () => {
        const u = nextFloat(rng);
        return u < 0.05 ? Number.NaN : Math.floor(u * 5) - 2;
      });
      const dy = Float32Array.from({ length: N * C * OH * OW }, () => (nextFloat(rng) < 0.2 ? -0 : nextFloat(rng) - 0.5));
      const run = (k: Kernels, argmaxIn?: Int32Array) => {
        const y = new Float32Array(dy.length), argmax = new Int32Array(dy.length), dx = new Float32Array(x.length).fill(Number.NaN);
        k.maxPool2dForward(x, y, argmax, N, C, H, W, 2, 2);
        k.maxPool2dBackward(dy, argmaxIn ?? argmax, dx, N, C, H, W, 2, 2);
        return { y, argmax, dx };
      };
      const a = run(native!), b = run(portableKernels);
      for (const key of ['y', 'argmax', 'dx'] as const) expect(bytes(a[key]).equals(bytes(b[key])), `W=${W} ${key}`).toBe(true);
      // An argmax inside the plane but outside its window (not what the forward
      // writes) still lands where it points, as the general loop puts it.
      const moved = a.argmax.slice();
      moved[moved.length - 1] = 0;
      const c = run(native!, moved), d = run(portableKernels, moved);
      expect(bytes(c.dx).equals(bytes(d.dx)), `W=${W} moved argmax`).toBe(true);
    }
  });
});
