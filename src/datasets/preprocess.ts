/**
 * Feature preprocessing, fitted on the training rows only (never the
 * validation or test rows) and stored as x' = (x − offset)·factor per feature
 * so the same numbers can be saved in the model artifact and applied at
 * inference.
 */
import type { Preprocess } from './types.js';

export type PreprocessKind = Preprocess['kind'];

/**
 * Fit preprocessing on rows 0..n−1 of the row-major [*, features] `x`, or on
 * the row indices in `rows` when given (to skip validation rows without a copy).
 * `scale` uses `valueRange` when the data has one, else the fitted min/max.
 */
export function fitPreprocess(
  kind: PreprocessKind,
  x: Float32Array,
  n: number,
  features: number,
  valueRange: [number, number] | null,
  rows?: Int32Array,
): Preprocess {
  if (kind === 'none') return { kind };
  if (kind === 'scale' && valueRange) {
    const [lo, hi] = valueRange;
    const factor = hi > lo ? 1 / (hi - lo) : 1;
    return { kind, offset: new Array<number>(features).fill(lo), factor: new Array<number>(features).fill(factor) };
  }

  const count = rows ? rows.length : n;
  if (count === 0) throw new RangeError('fitPreprocess needs at least one row');
  const rowAt = rows ? (r: number) => rows[r]! : (r: number) => r;
  const offset = new Array<number>(features);
  const factor = new Array<number>(features);

  if (kind === 'scale') {
    const min = new Float64Array(features).fill(Infinity);
    const max = new Float64Array(features).fill(-Infinity);
    for (let r = 0; r < count; r++) {
      const base = rowAt(r) * features;
      for (let j = 0; j < features; j++) {
        const v = x[base + j]!;
        if (v < min[j]!) min[j] = v;
        if (v > max[j]!) max[j] = v;
      }
    }
    for (let j = 0; j < features; j++) {
      const range = max[j]! - min[j]!;
      offset[j] = min[j]!;
      factor[j] = range > 0 ? 1 / range : 1;
    }
    return { kind, offset, factor };
  }

  // standardize: two passes (mean, then squared deviations) for accuracy on large offsets.
  const mean = new Float64Array(features);
  for (let r = 0; r < count; r++) {
    const base = rowAt(r) * features;
    for (let j = 0; j < features; j++) mean[j]! += x[base + j]!;
  }
  for (let j = 0; j < features; j++) mean[j]! /= count;
  const sumSq = new Float64Array(features);
  for (let r = 0; r < count; r++) {
    const base = rowAt(r) * features;
    for (let j = 0; j < features; j++) {
      const d = x[base + j]! - mean[j]!;
      sumSq[j]! += d * d;
    }
  }
  for (let j = 0; j < features; j++) {
    const std = Math.sqrt(sumSq[j]! / count); // population std
    offset[j] = mean[j]!;
    factor[j] = std < 1e-8 ? 1 : 1 / std;
  }
  return { kind, offset, factor };
}

/** Apply fitted preprocessing to n rows of `src` into `dst` (which may be `src`). */
export function applyPreprocess(p: Preprocess, src: Float32Array, dst: Float32Array, n: number, features: number): void {
  const size = n * features;
  if (p.kind === 'none') {
    if (dst !== src) dst.set(src.subarray(0, size));
    return;
  }
  const { offset, factor } = p;
  for (let base = 0; base < size; base += features) {
    for (let j = 0; j < features; j++) dst[base + j] = (src[base + j]! - offset[j]!) * factor[j]!;
  }
}
