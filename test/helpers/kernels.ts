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

/**
 * Whether the native kernels compute this conv2d as Winograd F(2x2, 3x3) (native/winograd.cc
 * conv2d_winograd): a 3x3 kernel at stride 1 with at least 8 channels in and out.
 */
export function takesWinograd(c: { KH: number; KW: number; C: number; F: number }, strideH: number, strideW: number): boolean {
  return c.KH === 3 && c.KW === 3 && strideH === 1 && strideW === 1 && c.C >= 8 && c.F >= 8;
}

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
