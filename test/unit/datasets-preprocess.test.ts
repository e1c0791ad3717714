import { describe, it, expect } from 'vitest';
import { applyPreprocess, fitPreprocess, type Preprocess } from '../../src/datasets/index.js';

// 5 rows × 3 features; the last two rows are "validation" rows with extreme values that must not leak into the fit.
const X = Float32Array.from([
  1, 10, 7,
  2, 20, 7,
  3, 40, 7,
  -100, 1000, 50,
  100, -1000, -50,
]);
const FIT_ROWS = Int32Array.from([0, 1, 2]);

function applied(p: Preprocess, x = X, n = 5): Float32Array {
  const out = new Float32Array(x.length);
  applyPreprocess(p, x, out, n, 3);
  return out;
}

describe('fitPreprocess / applyPreprocess', () => {
  it('scale with a value range maps lo..hi to 0..1 for every feature', () => {
    const p = fitPreprocess('scale', X, 5, 3, [0, 255]);
    expect(p).toEqual({ kind: 'scale', offset: [0, 0, 0], factor: [1 / 255, 1 / 255, 1 / 255] });
    const out = applied(p, Float32Array.from([0, 255, 51]), 1);
    expect(Array.from(out)).toEqual([0, 1, Math.fround(0.2)]);
  });

  it('scale without a range fits min/max on the fitted rows only', () => {
    const p = fitPreprocess('scale', X, 5, 3, null, FIT_ROWS);
    expect(p).toEqual({ kind: 'scale', offset: [1, 10, 7], factor: [0.5, 1 / 30, 1] }); // constant feature: factor 1
    const out = applied(p);
    expect(Array.from(out.subarray(0, 9))).toEqual([0, 0, 0, 0.5, Math.fround(1 / 3), 0, 1, 1, 0]);
    expect(out[9]).toBeLessThan(0); // a held-out row may fall outside [0, 1]
  });

  it('standardize fits the population mean and std on the fitted rows only', () => {
    const p = fitPreprocess('standardize', X, 5, 3, [0, 255], FIT_ROWS); // the value range is irrelevant here
    if (p.kind !== 'standardize') throw new Error('wrong kind');
    expect(p.offset[0]).toBeCloseTo(2, 12);
    expect(p.factor[0]).toBeCloseTo(1 / Math.sqrt(2 / 3), 12); // population std of 1, 2, 3
    expect(p.offset[1]).toBeCloseTo(70 / 3, 12);
    expect(p.offset[2]).toBe(7);
    expect(p.factor[2]).toBe(1); // constant feature
    const out = applied(p);
    for (let j = 0; j < 2; j++) {
      const col = [0, 1, 2].map((r) => out[r * 3 + j]!);
      const mean = col.reduce((a, b) => a + b) / 3;
      const variance = col.reduce((a, b) => a + (b - mean) ** 2, 0) / 3;
      expect(mean).toBeCloseTo(0, 6);
      expect(variance).toBeCloseTo(1, 5);
    }
  });

  it('fitting on the first n rows equals fitting on the index list 0..n−1', () => {
    for (const kind of ['scale', 'standardize'] as const) {
      expect(fitPreprocess(kind, X, 3, 3, null)).toEqual(fitPreprocess(kind, X, 5, 3, null, FIT_ROWS));
    }
  });

  it('applies in place exactly as out of place, and after a JSON round trip', () => {
    const p = fitPreprocess('standardize', X, 5, 3, null);
    const expected = applied(p);
    const inPlace = Float32Array.from(X);
    applyPreprocess(p, inPlace, inPlace, 5, 3);
    expect(inPlace).toEqual(expected);
    expect(applied(JSON.parse(JSON.stringify(p)) as Preprocess)).toEqual(expected);
  });

  it('applies only the first n rows', () => {
    const p = fitPreprocess('scale', X, 5, 3, [0, 10]);
    const out = new Float32Array(X.length).fill(-1);
    applyPreprocess(p, X, out, 2, 3);
    expect(out[5]).toBeCloseTo(0.7, 6);
    expect(out[6]).toBe(-1);
  });

  it("'none' keeps the values (copying when dst differs)", () => {
    const p = fitPreprocess('none', X, 5, 3, null);
    expect(p).toEqual({ kind: 'none' });
    expect(applied(p)).toEqual(X);
  });

  it('refuses to fit on zero rows', () => {
    expect(() => fitPreprocess('standardize', X, 0, 3, null)).toThrow(RangeError);
    expect(() => fitPreprocess('scale', X, 5, 3, null, new Int32Array(0))).toThrow(RangeError);
  });
});
