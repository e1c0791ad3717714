/**
 * Finite-difference gradient checks and a closeness assertion that names the
 * worst element. Forward passes run in float32, so use a step large enough
 * that rounding does not swamp the difference (h ~ 1e-2) and compare with a
 * relative tolerance ~1e-2.
 */
import { expect } from 'vitest';

/**
 * d f / d x by central differences, perturbing x in place (and restoring it).
 * The step is measured after rounding x ± h to float32, so it is exact.
 */
export function numericGrad(f: () => number, x: Float32Array, h = 1e-2): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const orig = x[i]!;
    x[i] = orig + h;
    const xp = x[i]!;
    const fp = f();
    x[i] = orig - h;
    const xm = x[i]!;
    const fm = f();
    x[i] = orig;
    grad[i] = (fp - fm) / (xp - xm);
  }
  return grad;
}

/** Σ w[i]·y[i] in double: a scalar loss whose gradient with respect to y is w. */
export function dot(w: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i]! * y[i]!;
  return s;
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * Asserts |actual[i] - expected[i]| <= atol + rtol·|expected[i]| for every i
 * (equal lengths; NaN only matches NaN, Inf only the same Inf) and reports the worst element.
 */
export function expectClose(
  actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label = 'values',
): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1;
  let worstRatio = 0;
  let failures = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const same = a === e || (Number.isNaN(a) && Number.isNaN(e));
    const ratio = same ? 0 : Math.abs(a - e) / (tol.atol + tol.rtol * Math.abs(e));
    const r = Number.isNaN(ratio) ? Infinity : ratio; // NaN on one side only
    if (r > 1) {
      failures++;
      if (r > worstRatio) {
        worst = i;
        worstRatio = r;
      }
    }
  }
  if (failures > 0) {
    const a = actual[worst]!;
    const e = expected[worst]!;
    expect.fail(
      `${label}: ${failures} of ${expected.length} elements outside rtol ${tol.rtol}, atol ${tol.atol}; ` +
        `worst [${worst}]: actual ${a}, expected ${e}, |diff| ${Math.abs(a - e)}`,
    );
  }
}
