/**
 * The addon itself (loading, worker threads, argument checks), dropout's
 * shared random stream, and the kernel selection of index.ts.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nativeAddonPath, tryLoadNativeKernels } from '../../src/core/kernels/native.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import type { Kernels } from '../../src/core/kernels/types.js';
import { createRng, nextFloat } from '../../src/core/rng.js';

const load = tryLoadNativeKernels();
const native = load.kernels;
const implementations: [string, Kernels | null][] = [['native', native], ['portable', portableKernels]];

describe('native addon', () => {
  it.skipIf(process.env.NORMLAB_KERNELS === 'portable')('loads (build it with `node scripts/build-native.mjs`)', () => {
    expect(load.reason).toBeUndefined();
    expect(native?.name).toBe('native');
    expect(['openblas', 'builtin', 'direct+openblas', 'direct+builtin']).toContain(native?.gemmBackend);
  });

  it.skipIf(native === null)('offers the built-in gemm whatever it was built with', () => {
    expect(tryLoadNativeKernels({ gemm: 'builtin' }).kernels?.gemmBackend).toBe('builtin');
  });

  it.skipIf(native === null)('loads and runs in worker threads alongside the main thread', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      const C = new Float32Array(4);
      addon.gemm(false, false, 2, 2, 2, 1, Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8), 0, C);
      const D = new Float32Array(4);
      addon.gemmBuiltin(false, false, 2, 2, 2, 1, Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8), 0, D);
      parentPort.postMessage([Array.from(C), Array.from(D)]);
    `;
    const run = () =>
      new Promise<number[][]>((resolve, reject) => {
        const worker = new Worker(code, { eval: true, workerData: { path: nativeAddonPath() } });
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    const results = await Promise.all([run(), run()]);
    for (const r of results) expect(r).toEqual([[19, 22, 43, 50], [19, 22, 43, 50]]);
    // The main thread's instance still works after the workers' went away.
    const C = new Float32Array(1);
    native!.gemm(false, false, 1, 1, 1, 1, Float32Array.of(2), Float32Array.of(3), 0, C);
    expect(C[0]).toBe(6);
  });

  it.skipIf(native === null)('rejects arrays of the wrong type and malformed sizes', () => {
    const k = native!;
    const A = new Float32Array(4);
    expect(() => k.gemm(false, false, 2, 2, 2, 1, new Float64Array(4) as unknown as Float32Array, A, 0, A))
      .toThrow(/gemm: A must be a Float32Array/);
    expect(() => k.gemm(false, false, -1, 2, 2, 1, A, A, 0, A)).toThrow(RangeError);
    expect(() => k.gemm(false, false, 1.5, 2, 2, 1, A, A, 0, A)).toThrow(/M must be an integer/);
    expect(() => k.gemm(0 as unknown as boolean, false, 2, 2, 2, 1, A, A, 0, A)).toThrow(/transA must be a boolean/);
    // Each argument is read with one N-API call, which must fail on every other kind of value.
    for (const notArray of [[1, 2, 3, 4], new DataView(new ArrayBuffer(16)), 4, null, undefined]) {
      expect(() => k.gemm(false, false, 2, 2, 2, 1, notArray as unknown as Float32Array, A, 0, A)).toThrow(/gemm: A must be a Float32Array/);
    }
    expect(() => k.gemm(false, false, '2' as unknown as number, 2, 2, 1, A, A, 0, A)).toThrow(/M must be a number/);
    expect(() => k.gemm(false, false, 2, 2, 2, 1, A, A, null as unknown as number, A)).toThrow(/beta must be a number/);
    expect(() => k.gemm(false, 'true' as unknown as boolean, 2, 2, 2, 1, A, A, 0, A)).toThrow(/transB must be a boolean/);
    // gatherRows reads its source's length from the same call.
    expect(() => k.gatherRows([0, 1, 2] as unknown as Float32Array, Int32Array.of(0), Int32Array.of(0), 0, 1, 3, A, Int32Array.of(0)))
      .toThrow(/gatherRows: src must be a Float32Array/);
    expect(() => k.gatherRows(A, Int32Array.of(0, 0), Int32Array.of(2), 0, 1, 2, A, Int32Array.of(0)))
      .toThrow(/row 2 is outside the 2 source rows/);
    // A nullable argument takes null, undefined or a typed array of its kind, and nothing else.
    const dg = new Float32Array(2);
    k.batchNormBackward(A, A, new Float32Array(4), 2, 2, 1, null, A, A, null, undefined as unknown as null, dg, null);
    expect(() => k.batchNormBackward(A, A, A, 2, 2, 1, [1, 1] as unknown as Float32Array, A, A, null, null, dg, null))
      .toThrow(/gamma must be a Float32Array or null/);
    // A view's data starts at its byteOffset.
    const C = new Float32Array(3);
    k.gemm(false, false, 1, 1, 1, 1, Float32Array.of(9, 2).subarray(1), Float32Array.of(9, 9, 3).subarray(2), 0, C.subarray(2));
    expect(Array.from(C)).toEqual([0, 0, 6]);
    expect(() => k.dropoutForward(A, A, A, 4, 0.5, new Int32Array(4) as unknown as Uint32Array))
      .toThrow(/rngState must be a Uint32Array/);
    expect(() => k.activationForward(9, A, A, 4, 0)).toThrow(/unknown activation kind 9/);
  });
});

for (const [name, k] of implementations) {
  describe.skipIf(k === null)(`argument checks: ${name}`, () => {
    const K = k!;
    const short = new Float32Array(3);
    const ok = new Float32Array(64);

    it('throws a TypeError naming a too-short array', () => {
      expect(() => K.gemm(false, false, 2, 2, 2, 1, ok, ok, 0, short)).toThrow(TypeError);
      expect(() => K.gemm(false, false, 2, 2, 2, 1, ok, ok, 0, short)).toThrow(/gemm: C is too short: 3 elements, the sizes need 4/);
      expect(() => K.gemm(true, false, 3, 2, 2, 1, short, ok, 0, ok)).toThrow(/A is too short/);
      // The length of a view counts, not the size of its buffer.
      expect(() => K.gemm(false, false, 2, 2, 2, 1, ok, ok.subarray(0, 3), 0, ok)).toThrow(/B is too short/);
      expect(() => K.addBias(ok, short, 2, 4, 1)).toThrow(/addBias: bias is too short/);
      expect(() => K.biasGrad(short, ok, 2, 2, 1)).toThrow(/dy is too short/);
      expect(() => K.batchNormForwardTrain(ok, short, 2, 2, 1, null, null, ok, ok, 0.9, 1e-3, true, ok, ok))
        .toThrow(/batchNormForwardTrain: y is too short/);
      expect(() => K.batchNormForwardTrain(ok, ok, 2, 4, 1, short, null, ok, ok, 0.9, 1e-3, true, ok, ok))
        .toThrow(/gamma is too short/);
      expect(() => K.batchNormForwardInfer(ok, ok, 2, 4, 1, null, null, ok, short, 1e-3)).toThrow(/runningVar is too short/);
      expect(() => K.batchNormBackward(ok, ok, ok, 2, 4, 1, null, ok, ok, null, null, short, null)).toThrow(/dgamma is too short/);
      expect(() => K.activationForward(0, short, ok, 4, 0)).toThrow(/activationForward: x is too short/);
      expect(() => K.activationBackward(0, ok, ok, ok, short, 4, 0)).toThrow(/dx is too short/);
      expect(() => K.dropoutForward(ok, ok, short, 4, 0.5, createRng(1))).toThrow(/mask is too short/);
      expect(() => K.dropoutForward(ok, ok, ok, 4, 0.5, new Uint32Array(3))).toThrow(/rngState is too short/);
      expect(() => K.multiply(ok, short, ok, 4)).toThrow(/multiply: b is too short/);
      expect(() => K.softmaxCrossEntropy(ok, new Int32Array(1), ok, 2, 2, null)).toThrow(/labels is too short/);
      expect(() => K.softmaxCrossEntropy(ok, new Int32Array(2), ok, 2, 2, new Int32Array(0))).toThrow(/correct is too short/);
      expect(() => K.softmaxCrossEntropyBackward(ok, new Int32Array(2), short, 2, 2)).toThrow(/dlogits is too short/);
      expect(() => K.sgdStep(ok, ok, short, 4, 0.1, 0.9, false, 0)).toThrow(/sgdStep: velocity is too short/);
      expect(() => K.adamStep(ok, ok, ok, short, 4, 1e-3, 0.9, 0.999, 1e-8, 0, 1)).toThrow(/adamStep: v is too short/);
    });

    it('throws a RangeError for values no kernel can work with', () => {
      const labels = Int32Array.of(0, 2);
      expect(() => K.softmaxCrossEntropy(ok, labels, ok, 2, 2, null)).toThrow(/labels\[1\] = 2 is outside \[0, 2\)/);
      expect(() => K.softmaxCrossEntropyBackward(ok, Int32Array.of(-1, 0), ok, 2, 2)).toThrow(RangeError);
      // One value per channel has no unbiased variance to update the running statistics with.
      expect(() => K.batchNormForwardTrain(ok, ok, 1, 4, 1, null, null, ok, ok, 0.9, 1e-3, true, ok, ok))
        .toThrow(/needs two values per channel/);
      expect(() => K.batchNormBackward(ok, ok, ok, 0, 4, 1, null, ok, ok, null, null, null, null)).toThrow(RangeError);
      expect(() => K.dropoutForward(ok, ok, ok, 4, 1, createRng(1))).toThrow(/rate must be in \[0, 1\)/);
      expect(() => K.adamStep(ok, ok, ok, ok, 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0)).toThrow(/step counts from 1/);
    });
  });
}

describe.skipIf(native === null)('dropout', () => {
  it('native and portable draw the masks of src/core/rng.ts and advance the state alike', () => {
    const n = 1000;
    const rate = 0.3;
    const x = Float32Array.from({ length: n }, (_, i) => i - 500.5);
    const expectedState = createRng(42);
    const expectedMask = Float32Array.from({ length: n }, () => (nextFloat(expectedState) < rate ? 0 : 1 / (1 - rate)));
    for (const k of [native!, portableKernels]) {
      const state = createRng(42);
      const y = new Float32Array(n);
      const mask = new Float32Array(n);
      k.dropoutForward(x, y, mask, n, rate, state);
      expect(Array.from(mask), k.name).toEqual(Array.from(expectedMask));
      expect(Array.from(state), k.name).toEqual(Array.from(expectedState));
      expect(Array.from(y), k.name).toEqual(Array.from(x, (v, i) => Math.fround(v * mask[i]!)));
      const dropped = mask.filter((m) => m === 0).length / n;
      expect(dropped).toBeGreaterThan(0.25);
      expect(dropped).toBeLessThan(0.35);
      // Backward: dx = dy * mask, in place.
      const dy = x.slice();
      k.multiply(dy, mask, dy, n);
      expect(Array.from(dy)).toEqual(Array.from(y));
    }
  });

  it('rate 0 keeps everything but still advances the state, one draw per element', () => {
    const expectedState = createRng(7);
    for (let i = 0; i < 5; i++) nextFloat(expectedState);
    for (const k of [native!, portableKernels]) {
      const state = createRng(7);
      const mask = new Float32Array(5);
      const y = new Float32Array(5);
      k.dropoutForward(Float32Array.of(1, 2, 3, 4, 5), y, mask, 5, 0, state);
      expect(Array.from(mask)).toEqual([1, 1, 1, 1, 1]);
      expect(Array.from(y)).toEqual([1, 2, 3, 4, 5]);
      expect(Array.from(state)).toEqual(Array.from(expectedState));
    }
  });
});

describe('getKernels / kernelsInfo', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.doUnmock('../../src/core/kernels/native.js');
    vi.resetModules();
    vi.restoreAllMocks();
  });

  async function freshIndex() {
    vi.resetModules();
    return import('../../src/core/kernels/index.js');
  }

  it.skipIf(native === null)('uses the native kernels by default and caches them', async () => {
    vi.stubEnv('NORMLAB_KERNELS', '');
    vi.stubEnv('NORMLAB_INFER_THREADS', '');
    const index = await freshIndex();
    expect(index.getKernels()).toBe(index.getKernels());
    expect(index.getKernels().name).toBe('native');
    expect(index.kernelsInfo()).toEqual({ kernels: 'native', gemm: native!.gemmBackend, cpu: native!.cpu, inferThreads: 1 });
  });

  it.skipIf(native === null)('NORMLAB_INFER_THREADS=2 gives two-thread dense chains; another value is an error naming the allowed ones', async () => {
    vi.stubEnv('NORMLAB_KERNELS', '');
    vi.stubEnv('NORMLAB_INFER_THREADS', '2');
    expect((await freshIndex()).kernelsInfo()).toMatchObject({ kernels: 'native', inferThreads: 2 });
    vi.stubEnv('NORMLAB_INFER_THREADS', 'two');
    expect(() => tryLoadNativeKernels()).toThrow('NORMLAB_INFER_THREADS must be 1, 2 or unset, got "two"');
  });

  it('NORMLAB_KERNELS=portable forces the portable kernels', async () => {
    vi.stubEnv('NORMLAB_KERNELS', 'portable');
    const index = await freshIndex();
    expect(index.getKernels().name).toBe('portable');
    expect(index.kernelsInfo()).toEqual({ kernels: 'portable', gemm: 'portable', cpu: 'portable', inferThreads: 1, reason: 'NORMLAB_KERNELS=portable' });
  });

  it('falls back to portable with one warning when the addon does not load', async () => {
    vi.stubEnv('NORMLAB_KERNELS', '');
    vi.doMock('../../src/core/kernels/native.js', () => ({
      tryLoadNativeKernels: () => ({ kernels: null, reason: 'no addon here' }),
    }));
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const index = await freshIndex();
    expect(index.getKernels().name).toBe('portable');
    index.getKernels();
    expect(index.kernelsInfo()).toEqual({ kernels: 'portable', gemm: 'portable', cpu: 'portable', inferThreads: 1, reason: 'no addon here' });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![1]).toMatchObject({ code: 'NORMLAB_PORTABLE_KERNELS' });
  });

  it('NORMLAB_KERNELS=native turns a load failure into an error; other values are rejected', async () => {
    vi.doMock('../../src/core/kernels/native.js', () => ({
      tryLoadNativeKernels: () => ({ kernels: null, reason: 'no addon here' }),
    }));
    vi.stubEnv('NORMLAB_KERNELS', 'native');
    expect((await freshIndex()).getKernels).toThrow(/NORMLAB_KERNELS=native.*no addon here/);
    vi.stubEnv('NORMLAB_KERNELS', 'fast');
    expect((await freshIndex()).getKernels).toThrow(/NORMLAB_KERNELS must be/);
  });
});
