/**
 * The kernels of this thread: the native addon when it loads, else the
 * portable TypeScript kernels with one warning. NORMLAB_KERNELS=portable
 * forces the portable ones; NORMLAB_KERNELS=native makes a load failure an
 * error. The choice is made once per thread (each worker thread has its own
 * module instance, hence its own addon instance). NORMLAB_CPU forces the
 * instruction set of the native kernels (see native.ts cpuSetting).
 */
import { tryLoadNativeKernels } from './native.js';
import { portableKernels } from './portable.js';
import type { Kernels } from './types.js';

export type { ActivationKind, Kernels } from './types.js';
export { ACTIVATIONS, activationCode } from './types.js';

export interface KernelsInfo {
  kernels: 'native' | 'portable';
  /** 'openblas', 'builtin', 'direct+openblas', 'direct+builtin' (the direct dense kernel first, on AVX-512) or 'portable'. */
  gemm: string;
  /** Instruction set the native kernels run: 'avx512', 'avx2', 'baseline' (or 'portable'). */
  cpu: string;
  /** Threads of one dense-layer prediction: 1, or 2 (NORMLAB_INFER_THREADS, native kernels only). */
  inferThreads: 1 | 2;
  /** Why the portable kernels are in use. */
  reason?: string;
}

let selected: { kernels: Kernels; info: KernelsInfo } | undefined;

function select(): { kernels: Kernels; info: KernelsInfo } {
  const mode = process.env.NORMLAB_KERNELS ?? '';
  if (mode === 'portable') {
    return { kernels: portableKernels, info: { kernels: 'portable', gemm: 'portable', cpu: 'portable', inferThreads: 1, reason: 'NORMLAB_KERNELS=portable' } };
  }
  if (mode !== '' && mode !== 'native') {
    throw new Error(`NORMLAB_KERNELS must be "native", "portable" or unset, got "${mode}"`);
  }
  const load = tryLoadNativeKernels();
  if (load.kernels) return { kernels: load.kernels, info: { kernels: 'native', gemm: load.kernels.gemmBackend, cpu: load.kernels.cpu, inferThreads: load.kernels.inferThreads } };
  if (mode === 'native') throw new Error(`NORMLAB_KERNELS=native, but the native kernels did not load: ${load.reason}`);
  process.emitWarning(`The native kernels did not load (${load.reason}); using the portable TypeScript kernels, which are slower.`, {
    code: 'NORMLAB_PORTABLE_KERNELS',
  });
  return { kernels: portableKernels, info: { kernels: 'portable', gemm: 'portable', cpu: 'portable', inferThreads: 1, reason: load.reason } };
}

/** The kernels every layer and optimizer of this thread uses. */
export function getKernels(): Kernels {
  selected ??= select();
  return selected.kernels;
}

/** Which kernels getKernels() gives, and why. */
export function kernelsInfo(): KernelsInfo {
  selected ??= select();
  return { ...selected.info };
}
