/**
 * Loads the native addon (native/, built by `npm install` into
 * build/Release/normlab_native.node) as Kernels. The addon's methods take
 * exactly the arguments of the Kernels interface, so they are used as they
 * are, with no JavaScript wrapper in between.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './types.js';

type KernelFunctions = Omit<Kernels, 'name' | 'gemmBackend'>;

/** What normlab_native.node exports (see native/addon.cc). */
export interface NativeAddon extends KernelFunctions {
  /** The gemm behind `gemm`: 'openblas' when OpenBLAS was found at build time. */
  readonly gemmBackend: 'openblas' | 'builtin';
  /** The built-in blocked sgemm, available even when `gemm` is OpenBLAS. */
  readonly gemmBuiltin: Kernels['gemm'];
  /** conv2dForward / conv2dBackward on the built-in sgemm, available even when `gemm` is OpenBLAS. */
  readonly conv2dForwardBuiltin: Kernels['conv2dForward'];
  readonly conv2dBackwardBuiltin: Kernels['conv2dBackward'];
  /** OpenBLAS threads (process-wide; the addon sets 1 when it loads). */
  setGemmThreads(n: number): void;
}

export interface NativeOptions {
  /** Force a gemm backend; 'openblas' fails to load when the addon was built without it. */
  gemm?: 'openblas' | 'builtin';
}

export type NativeLoad = { kernels: Kernels; reason?: undefined } | { kernels: null; reason: string };

/**
 * The package root: the nearest ancestor of this file holding package.json
 * and binding.gyp. (This file runs from src/core/kernels under vitest and
 * from dist/src/core/kernels when compiled; binding.gyp tells the root from
 * a package.json that tsc may copy into dist/.)
 */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('normlab: package root (package.json + binding.gyp) not found');
    dir = parent;
  }
}

/** Absolute path of the compiled addon. */
export function nativeAddonPath(): string {
  return path.join(packageRoot(), 'build', 'Release', 'normlab_native.node');
}

/** OpenBLAS threads per process from NORMLAB_THREADS; 1 by default, as jobs run in parallel. */
function gemmThreads(): number {
  const raw = process.env.NORMLAB_THREADS;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`NORMLAB_THREADS must be a positive integer, got "${raw}"`);
  return n;
}

/** Loads the addon, or says why it cannot be loaded. */
export function tryLoadNativeKernels(options: NativeOptions = {}): NativeLoad {
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(nativeAddonPath()) as NativeAddon;
  } catch (err) {
    return { kernels: null, reason: (err as Error).message };
  }
  if (options.gemm === 'openblas' && addon.gemmBackend !== 'openblas') {
    return { kernels: null, reason: 'the native addon was built without OpenBLAS' };
  }
  addon.setGemmThreads(gemmThreads());
  const builtin = options.gemm === 'builtin';
  const kernels: Kernels = {
    name: 'native',
    gemmBackend: builtin ? 'builtin' : addon.gemmBackend,
    gemm: builtin ? addon.gemmBuiltin : addon.gemm,
    addBias: addon.addBias,
    biasGrad: addon.biasGrad,
    batchNormForwardTrain: addon.batchNormForwardTrain,
    batchNormForwardInfer: addon.batchNormForwardInfer,
    batchNormBackward: addon.batchNormBackward,
    activationForward: addon.activationForward,
    activationBackward: addon.activationBackward,
    dropoutForward: addon.dropoutForward,
    multiply: addon.multiply,
    gatherRows: addon.gatherRows,
    softmaxCrossEntropy: addon.softmaxCrossEntropy,
    softmaxCrossEntropyBackward: addon.softmaxCrossEntropyBackward,
    sgdStep: addon.sgdStep,
    adamStep: addon.adamStep,
    conv2dForward: builtin ? addon.conv2dForwardBuiltin : addon.conv2dForward,
    conv2dBackward: builtin ? addon.conv2dBackwardBuiltin : addon.conv2dBackward,
    maxPool2dForward: addon.maxPool2dForward,
    maxPool2dBackward: addon.maxPool2dBackward,
    avgPool2dForward: addon.avgPool2dForward,
    avgPool2dBackward: addon.avgPool2dBackward,
    globalAvgPoolForward: addon.globalAvgPoolForward,
    globalAvgPoolBackward: addon.globalAvgPoolBackward,
    batchRenormForwardTrain: addon.batchRenormForwardTrain,
    batchRenormBackward: addon.batchRenormBackward,
  };
  return { kernels: Object.freeze(kernels) };
}

/** The native kernels, or null when the addon cannot be loaded. */
export function loadNativeKernels(options: NativeOptions = {}): Kernels | null {
  return tryLoadNativeKernels(options).kernels;
}
