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

type KernelFunctions = Omit<Kernels, 'name' | 'gemmBackend' | 'cpu' | 'inferThreads' | 'denseChain'>;

/** What normlab_native.node exports (see native/addon.cc). */
export interface NativeAddon extends KernelFunctions {
  /** The gemm behind `gemm`: 'openblas' when OpenBLAS was found at build time. */
  readonly gemmBackend: 'openblas' | 'builtin';
  /** The built-in blocked sgemm for every shape, available even when `gemm` is OpenBLAS. */
  readonly gemmBuiltin: Kernels['gemm'];
  /** OpenBLAS for every shape (only when the addon was built with it). */
  readonly gemmOpenblas?: Kernels['gemm'];
  /**
   * The direct AVX-512 kernel that `gemm` takes first (native/gemm_direct.cc): true when it
   * applied to this shape on this thread's CPU path, false (C untouched) when `gemm` would
   * have gone to the backend.
   */
  gemmDirect(...args: Parameters<Kernels['gemm']>): boolean;
  /** conv2dForward / conv2dBackward on the built-in sgemm, available even when `gemm` is OpenBLAS. */
  readonly conv2dForwardBuiltin: Kernels['conv2dForward'];
  readonly conv2dBackwardBuiltin: Kernels['conv2dBackward'];
  /** OpenBLAS threads (process-wide; the addon sets 1 when it loads). */
  setGemmThreads(n: number): void;
  /** The best kernels this CPU runs: 'avx512', 'avx2' or 'baseline'. */
  readonly cpuBest: CpuPath;
  /**
   * Which kernels the built-in sgemm and the inference kernels of this addon instance (this
   * thread) run: 'auto' is cpuBest; a named path the CPU lacks throws. Returns the path in use.
   */
  setCpuPath(path: 'auto' | CpuPath): CpuPath;
  /**
   * Kernels.denseChain's native half: layer i maps sizes[i] inputs to sizes[i + 1] outputs;
   * threads 2 shares each run with the addon instance's helper thread (native/infer_pool.h).
   */
  denseChain(packed: Float32Array[], bias: (Float32Array | null)[], sizes: Int32Array, activations: Int32Array,
    alphas: Float32Array, threads: 1 | 2): DenseChainHandle;
  denseChainRun(chain: DenseChainHandle, x: Float32Array, N: number, y: Float32Array): void;
  /**
   * Parts that two-thread chain runs of this instance handed to its helper thread, and how many
   * of them the helper ran (the caller ran the rest); zeros before the helper starts.
   */
  inferPoolParts(): { posted: number; helper: number };
}

/** A native dense chain (an External the addon owns). */
declare const denseChainBrand: unique symbol;
type DenseChainHandle = { readonly [denseChainBrand]: true };

/** The instruction sets the hand-written native kernels come in (native/cpu.h). */
export const CPU_PATHS = ['baseline', 'avx2', 'avx512'] as const;
export type CpuPath = (typeof CPU_PATHS)[number];

export interface NativeOptions {
  /**
   * One gemm for every shape. By default `gemm` takes the direct AVX-512 kernel where it
   * applies (most dense and recurrent multiplies: native/kernels.h) and the build's backend elsewhere;
   * 'openblas' fails to load when the addon was built without it.
   */
  gemm?: 'openblas' | 'builtin';
  /** Instruction set of this thread's addon instance; default NORMLAB_CPU, else 'auto'. */
  cpu?: 'auto' | CpuPath;
  /** Threads of one denseChain run; default NORMLAB_INFER_THREADS, else 1. */
  inferThreads?: 1 | 2;
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

/** NORMLAB_INFER_THREADS: 1 (unset) or 2, the threads of one dense prediction. */
export function inferThreadsSetting(raw = process.env.NORMLAB_INFER_THREADS): 1 | 2 {
  if (raw === undefined || raw === '' || raw === '1') return 1;
  if (raw === '2') return 2;
  throw new Error(`NORMLAB_INFER_THREADS must be 1, 2 or unset, got "${raw}"`);
}

/** NORMLAB_CPU: unset or 'auto' for the best the CPU runs, else a path to force. */
export function cpuSetting(raw = process.env.NORMLAB_CPU): 'auto' | CpuPath {
  if (raw === undefined || raw === '' || raw === 'auto') return 'auto';
  if (!(CPU_PATHS as readonly string[]).includes(raw)) {
    throw new Error(`NORMLAB_CPU must be auto, ${CPU_PATHS.join(', ')} or unset, got "${raw}"`);
  }
  return raw as CpuPath;
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
  const threads = gemmThreads();
  addon.setGemmThreads(threads);
  // Thrown rather than reported: a forced path this CPU lacks is a configuration error.
  const cpu = addon.setCpuPath(options.cpu ?? cpuSetting());
  const inferThreads = options.inferThreads ?? inferThreadsSetting();
  const builtin = options.gemm === 'builtin';
  const forced = builtin ? addon.gemmBuiltin : options.gemm === 'openblas' ? addon.gemmOpenblas! : null;
  const kernels: Kernels = {
    name: 'native',
    cpu,
    // The direct kernel exists on the AVX-512 path only, and runs on one thread: with more
    // OpenBLAS threads every multiply is OpenBLAS's (gemm_direct.cc).
    gemmBackend: options.gemm ?? (cpu === 'avx512' && (threads === 1 || addon.gemmBackend !== 'openblas')
      ? `direct+${addon.gemmBackend}` : addon.gemmBackend),
    inferThreads,
    gemm: forced ?? addon.gemm,
    addBias: addon.addBias,
    biasGrad: addon.biasGrad,
    batchNormForwardTrain: addon.batchNormForwardTrain,
    batchNormForwardInfer: addon.batchNormForwardInfer,
    batchNormBackward: addon.batchNormBackward,
    batchNormUpdateRunning: addon.batchNormUpdateRunning,
    channelShiftedSums: addon.channelShiftedSums,
    batchNormBackwardFrozen: addon.batchNormBackwardFrozen,
    batchNormBackwardGhost: addon.batchNormBackwardGhost,
    activationForward: addon.activationForward,
    activationBackward: addon.activationBackward,
    dropoutForward: addon.dropoutForward,
    multiply: addon.multiply,
    gatherRows: addon.gatherRows,
    softmaxRows: addon.softmaxRows,
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
    packDense: addon.packDense,
    alignedFloat32Array: addon.alignedFloat32Array,
    denseInfer: addon.denseInfer,
    denseChain(layers) {
      const chain = addon.denseChain(layers.map((l) => l.packed), layers.map((l) => l.bias),
        Int32Array.from([layers[0]?.in ?? 0, ...layers.map((l) => l.out)]), Int32Array.from(layers.map((l) => l.activation)),
        Float32Array.from(layers.map((l) => l.alpha)), inferThreads);
      return { run: (x, N, y) => addon.denseChainRun(chain, x, N, y) };
    },
    packConv: addon.packConv,
    conv2dInfer: addon.conv2dInfer,
    lstmCellForward: addon.lstmCellForward,
    lstmOutputForward: addon.lstmOutputForward,
    lstmOutputBackward: addon.lstmOutputBackward,
    lstmCellBackward: addon.lstmCellBackward,
    gruCellForward: addon.gruCellForward,
    gruCellBackward: addon.gruCellBackward,
    rnnCellForward: addon.rnnCellForward,
    rnnCellBackward: addon.rnnCellBackward,
  };
  return { kernels: Object.freeze(kernels) };
}

/** The native kernels, or null when the addon cannot be loaded. */
export function loadNativeKernels(options: NativeOptions = {}): Kernels | null {
  return tryLoadNativeKernels(options).kernels;
}
