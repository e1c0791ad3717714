/** What the kernel and model tests share: the kernel sets to run on, fixtures, random data. */
import { readFileSync } from 'node:fs';
import { loadNativeKernels } from '../../src/core/kernels/native.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import type { Kernels } from '../../src/core/kernels/types.js';
import { nextNormal } from '../../src/core/rng.js';

/** The native addon (its default GEMM) when it loads; kernels-native.test.ts fails when it does not. */
export const native = loadNativeKernels();

/** Portable kernels, and the native ones when the addon loads. */
export const kernelSets: Array<[string, Kernels]> = [['portable', portableKernels]];
if (native) kernelSets.push(['native', native]);

/** A JSON file of test/fixtures (made by make_fixtures.py). */
export function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')) as T;
}

export const f32 = (a: number[]) => Float32Array.from(a);

/** n normal draws from the PRNG state, scaled and shifted. */
export function randn(rng: Uint32Array, n: number, scale = 1, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = nextNormal(rng) * scale + shift;
  return a;
}
