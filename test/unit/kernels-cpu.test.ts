// Run-time CPU dispatch of the native kernels: the addon is built without
// -march, reports the instruction set it picked, can be forced down to the
// baseline (NORMLAB_CPU), and every path gives the fast path's results within
// rounding (FMA or not), each one batch-invariant on its own.
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { kernelsInfo } from '../../src/core/kernels/index.js';
import { CPU_PATHS, cpuSetting, nativeAddonPath, tryLoadNativeKernels, type CpuPath } from '../../src/core/kernels/native.js';
import { packedDenseSize } from '../../src/core/kernels/types.js';
import { createRng } from '../../src/core/rng.js';
import { expectClose } from '../helpers/gradcheck.js';
import { native, randn } from '../helpers/kernels.js';

const [N, IN, OUT] = [70, 300, 45];
const rng = createRng(17);
const x = randn(rng, N * IN);
const w = randn(rng, OUT * IN, 0.1);
const bias = randn(rng, OUT);
const A = randn(rng, 37 * 300);
const B = randn(rng, 300 * 29);
// A conv of the Winograd path (3x3, stride 1, 8 channels in and out) over 9x7 planes: its
// inference form runs chunks of samples, and each path must stay batch-invariant on its own.
const CONV = { N: 80, C: 8, H: 9, W: 7, F: 8 };
const convX = randn(rng, CONV.N * CONV.C * CONV.H * CONV.W);
const convW = randn(rng, CONV.F * CONV.C * 9, 0.1);

/**
 * In a worker thread (its own addon instance): setCpuPath(path), then denseInfer on all N rows,
 * on each row alone, the built-in gemm, and conv2dInfer on all CONV.N samples and on each alone.
 * Returns the path in use and the outputs.
 */
function runOn(path: string): Promise<{
  path: string; all: Float32Array; alone: Float32Array; gemm: Float32Array; conv: Float32Array; convAlone: Float32Array;
}> {
  const code = `
    const { parentPort, workerData: d } = require('node:worker_threads');
    const addon = require(d.addon);
    const path = addon.setCpuPath(d.path);
    const packed = new Float32Array(d.packedSize);
    addon.packDense(d.w, d.OUT, d.IN, packed);
    const all = new Float32Array(d.N * d.OUT);
    addon.denseInfer(d.x, packed, d.bias, all, d.N, d.IN, d.OUT, 0, 0);
    const alone = new Float32Array(d.N * d.OUT);
    for (let r = 0; r < d.N; r++) {
      addon.denseInfer(d.x.subarray(r * d.IN, (r + 1) * d.IN), packed, d.bias, alone.subarray(r * d.OUT, (r + 1) * d.OUT), 1, d.IN, d.OUT, 0, 0);
    }
    const gemm = new Float32Array(37 * 29);
    addon.gemmBuiltin(false, false, 37, 29, 300, 1, d.A, d.B, 0, gemm);
    const c = d.CONV, plane = c.C * c.H * c.W, out = c.F * c.H * c.W;
    const convPacked = addon.packConv(d.convW, c.F, c.C, 3, 3, 1, 1);
    const col = new Float32Array(c.C * 9 * c.H * c.W);
    const conv = new Float32Array(c.N * out);
    addon.conv2dInfer(d.convX, convPacked, null, conv, c.N, c.C, c.H, c.W, c.F, 3, 3, 1, 1, 1, 1, col, 0, 0);
    const convAlone = new Float32Array(c.N * out);
    for (let n = 0; n < c.N; n++) {
      addon.conv2dInfer(d.convX.subarray(n * plane, (n + 1) * plane), convPacked, null, convAlone.subarray(n * out, (n + 1) * out),
        1, c.C, c.H, c.W, c.F, 3, 3, 1, 1, 1, 1, col, 0, 0);
    }
    parentPort.postMessage({ path, all, alone, gemm, conv, convAlone });
  `;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, {
      eval: true,
      workerData: { addon: nativeAddonPath(), path, x, w, bias, A, B, N, IN, OUT, packedSize: packedDenseSize(OUT, IN), CONV, convX, convW },
    });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

describe.skipIf(native === null)('native kernels: CPU dispatch at run time', () => {
  const best = native!.cpu as CpuPath;
  const paths = CPU_PATHS.slice(0, CPU_PATHS.indexOf(best) + 1);

  it('the build has no -march (one binary for every CPU of the architecture)', () => {
    const gyp = readFileSync(new URL('../../binding.gyp', import.meta.url), 'utf8');
    expect(gyp).not.toMatch(/-march=|-mavx|-mfma/);
  });

  it('reports the path it picked: the best this CPU runs, unless NORMLAB_CPU says otherwise', () => {
    expect(CPU_PATHS).toContain(best);
    if (cpuSetting() === 'auto') {
      const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1]?.split(/\s+/) ?? [];
      if (process.arch === 'x64' && flags.length > 0) {
        const expected = flags.includes('avx512f') ? 'avx512' : flags.includes('avx2') && flags.includes('fma') ? 'avx2' : 'baseline';
        expect(best).toBe(expected);
      }
    }
    if (kernelsInfo().kernels === 'native') expect(kernelsInfo().cpu).toBe(best);
  });

  it('NORMLAB_CPU: auto or a path; anything else, or a path this CPU lacks, is an error', async () => {
    expect(cpuSetting(undefined)).toBe('auto');
    expect(cpuSetting('baseline')).toBe('baseline');
    expect(() => cpuSetting('sse9')).toThrow(/NORMLAB_CPU must be auto, baseline, avx2, avx512/);
    if (best !== 'avx512') {
      await expect(runOn('avx512')).rejects.toThrow(/cannot run the avx512 kernels/);
    }
    await expect(runOn('fast')).rejects.toThrow(/unknown CPU path "fast"/);
  });

  it('every path this CPU runs matches the fast path within rounding, and is batch-invariant on its own', async () => {
    const results = await Promise.all(paths.map((p) => runOn(p)));
    const fast = results[results.length - 1]!;
    results.forEach((r, i) => {
      expect(r.path).toBe(paths[i]);
      expect(r.alone, `${r.path}: rows alone = rows in one batch, bytes and all`).toEqual(r.all);
      expectClose(r.all, fast.all, { rtol: 1e-5, atol: 1e-5 }, `${r.path} vs ${fast.path}: denseInfer`);
      expectClose(r.gemm, fast.gemm, { rtol: 1e-5, atol: 1e-4 }, `${r.path} vs ${fast.path}: built-in gemm`);
      expect(r.convAlone, `${r.path}: conv2dInfer samples alone = samples in one batch, bytes and all`).toEqual(r.conv);
      expectClose(r.conv, fast.conv, { rtol: 1e-5, atol: 1e-5 }, `${r.path} vs ${fast.path}: conv2dInfer`);
    });
    // AVX2 and AVX-512 run the same fused multiply-add chains: the same bytes on either machine.
    const avx2 = results.find((r) => r.path === 'avx2');
    const avx512 = results.find((r) => r.path === 'avx512');
    if (avx2 && avx512) {
      expect(avx512.all).toEqual(avx2.all);
      expect(avx512.gemm).toEqual(avx2.gemm);
      expect(avx512.conv).toEqual(avx2.conv);
    }
    // The main thread's own instance runs the best path: the same bytes as the worker's.
    const main = tryLoadNativeKernels().kernels!;
    const packed = new Float32Array(packedDenseSize(OUT, IN));
    main.packDense(w, OUT, IN, packed);
    const y = new Float32Array(N * OUT);
    main.denseInfer(x, packed, bias, y, N, IN, OUT, 0, 0);
    if (main.cpu === fast.path) expect(y).toEqual(fast.all);
  });
});
