/**
 * Summary statistics over seeds: mean, sample standard deviation, range and
 * a 95 % confidence interval of the mean with Student's t; and Welch's t
 * interval for the difference of two means (unequal variances,
 * Welch–Satterthwaite degrees of freedom).
 */
import jstat from 'jstat';

const tQuantile = (p: number, df: number): number => jstat.jStat.studentt.inv(p, df);

export interface Stats {
  n: number;
  mean: number | null;
  /** Sample standard deviation (n − 1); null below two values. */
  sd: number | null;
  min: number | null;
  max: number | null;
  /** mean ± t(0.975, n − 1)·sd/√n; null below two values. */
  ci95: [number, number] | null;
}

export function describe(values: number[]): Stats {
  const n = values.length;
  if (n === 0) return { n, mean: null, sd: null, min: null, max: null, ci95: null };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (n < 2) return { n, mean, sd: null, min, max, ci95: null };
  const sd = Math.sqrt(variance(values, mean));
  const half = tQuantile(0.975, n - 1) * sd / Math.sqrt(n);
  return { n, mean, sd, min, max, ci95: [mean - half, mean + half] };
}

/** Sample variance (n − 1 in the denominator). */
function variance(values: number[], mean: number): number {
  return values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
}

export interface Difference {
  /** mean(a) − mean(b) */
  difference: number;
  ci95: [number, number];
  /** Welch–Satterthwaite degrees of freedom (na + nb − 2 when both samples have no spread). */
  df: number;
}

/** Welch's t interval for mean(a) − mean(b); null unless both have at least two values. */
export function welch(a: number[], b: number[]): Difference | null {
  if (a.length < 2 || b.length < 2) return null;
  const ma = a.reduce((s, v) => s + v, 0) / a.length;
  const mb = b.reduce((s, v) => s + v, 0) / b.length;
  const qa = variance(a, ma) / a.length;
  const qb = variance(b, mb) / b.length;
  const se = Math.sqrt(qa + qb);
  const difference = ma - mb;
  if (se === 0) return { difference, ci95: [difference, difference], df: a.length + b.length - 2 };
  const df = (qa + qb) ** 2 / (qa ** 2 / (a.length - 1) + qb ** 2 / (b.length - 1));
  const half = tQuantile(0.975, df) * se;
  return { difference, ci95: [difference - half, difference + half], df };
}
