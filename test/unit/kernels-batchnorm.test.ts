/**
 * The batch-norm kernels the model no longer writes itself: the
 * running-statistics update (batchNormUpdateRunning), the shifted-moments
 * pass (channelShiftedSums, also under batchNormForwardTrain), backward with frozen
 * statistics (batchNormBackwardFrozen) and ghost batch norm's backward
 * (batchNormBackwardGhost). Against PyTorch (bn_frozen.json, bn_ghost.json,
 * bn1d/bn2d_train.json), finite differences, native against portable, and
 * their argument checks.
 */
import { describe, expect, it } from 'vitest';
import { portableKernels } from '../../src/core/kernels/portable.js';
import { activationCode, NO_ACTIVATION, type Kernels } from '../../src/core/kernels/types.js';
import { createRng } from '../../src/core/rng.js';
import { dot, expectClose, numericGrad, type Tolerance } from '../helpers/gradcheck.js';
import { f32, fixture, kernelSets, native, randn } from '../helpers/kernels.js';

const FIXTURE: Tolerance = { rtol: 1e-5, atol: 1e-6 };
const GRAD: Tolerance = { rtol: 1e-2, atol: 1e-3 };

interface Common {
  N: number; C: number; S: number; eps: number; gamma: number[]; beta: number[]; running_mean: number[]; running_var: number[];
  x: number[]; y: number[]; dy: number[]; dx: number[]; dgamma: number[]; dbeta: number[];
}
interface FrozenFixture { cases: Array<Common & { activation: 'relu' | 'tanh' | null }> }
interface GhostFixture { cases: Array<Common & { virtualBatch: number; momentum: number; new_running_mean: number[]; new_running_var: number[] }> }
interface BnTrainFixture {
  N: number; C: number; S: number; eps: number; momentum: number; running_mean: number[]; running_var: number[];
  steps: { x: number[]; running_mean: number[]; running_var: number[] }[];
}

const frozen = fixture<FrozenFixture>('bn_frozen.json');
const ghost = fixture<GhostFixture>('bn_ghost.json');

/** Mean and biased variance per channel in double, (N, C, S) layout. */
function moments(x: ArrayLike<number>, N: number, C: number, S: number): { mean: Float64Array; variance: Float64Array } {
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let q = 0; q < S; q++) s += x[(n * C + c) * S + q]!;
    mean[c] = s / (N * S);
    let v = 0;
    for (let n = 0; n < N; n++) for (let q = 0; q < S; q++) v += (x[(n * C + c) * S + q]! - mean[c]!) ** 2;
    variance[c] = v / (N * S);
  }
  return { mean, variance };
}

/** Ghost forward by the kernels: batchNormForwardTrain per virtual batch (no running update), as the model runs it. */
function ghostForward(k: Kernels, x: Float32Array, N: number, C: number, S: number, vb: number, gamma: Float32Array, beta: Float32Array) {
  const chunks = Math.floor(N / vb);
  const y = new Float32Array(x.length);
  const saveMean = new Float32Array(chunks * C);
  const saveRstd = new Float32Array(chunks * C);
  const unused = new Float32Array(C);
  for (let i = 0; i < chunks; i++) {
    const first = i * vb;
    const rows = i === chunks - 1 ? N - first : vb;
    const v = (a: Float32Array) => a.subarray(first * C * S, (first + rows) * C * S);
    k.batchNormForwardTrain(v(x), v(y), rows, C, S, gamma, beta, unused, unused, 0, 1e-3, false,
      saveMean.subarray(i * C, (i + 1) * C), saveRstd.subarray(i * C, (i + 1) * C));
  }
  return { y, saveMean, saveRstd, chunks };
}

for (const [name, k] of kernelSets) {
  describe(`batch-norm kernels: ${name}`, () => {
    it('batchNormUpdateRunning: the running statistics PyTorch keeps over training steps (biased variance of the batch in)', () => {
      for (const file of ['bn1d_train.json', 'bn2d_train.json']) {
        const f = fixture<BnTrainFixture>(file);
        const rm = f32(f.running_mean);
        const rv = f32(f.running_var);
        for (const step of f.steps) {
          const { mean, variance } = moments(step.x, f.N, f.C, f.S);
          k.batchNormUpdateRunning(rm, rv, mean, variance, f.C, f.momentum, f.N * f.S);
          expectClose(rm, step.running_mean, FIXTURE, `${file} running mean`);
          expectClose(rv, step.running_var, FIXTURE, `${file} running var`);
        }
      }
    });

    it('batchNormUpdateRunning with count 0 takes the variance as unbiased; the same update as batchNormForwardTrain', () => {
      const rng = createRng(3);
      const [N, C, S] = [5, 3, 4];
      const x = randn(rng, N * C * S, 2, 1);
      const viaForward = { rm: f32([0.1, -0.2, 0.3]), rv: f32([1, 2, 0.5]) };
      k.batchNormForwardTrain(x, new Float32Array(x.length), N, C, S, null, null, viaForward.rm, viaForward.rv, 0.8, 1e-3, true,
        new Float32Array(C), new Float32Array(C));
      const { mean, variance } = moments(x, N, C, S);
      const direct = { rm: f32([0.1, -0.2, 0.3]), rv: f32([1, 2, 0.5]) };
      k.batchNormUpdateRunning(direct.rm, direct.rv, mean, variance, C, 0.8, N * S);
      expectClose(direct.rm, viaForward.rm, { rtol: 1e-6, atol: 1e-7 }, 'running mean');
      expectClose(direct.rv, viaForward.rv, { rtol: 1e-6, atol: 1e-7 }, 'running var');
      const unbiased = variance.map((v) => (v * N * S) / (N * S - 1));
      const asIs = { rm: f32([0.1, -0.2, 0.3]), rv: f32([1, 2, 0.5]) };
      k.batchNormUpdateRunning(asIs.rm, asIs.rv, mean, unbiased, C, 0.8, 0);
      expectClose(asIs.rv, direct.rv, { rtol: 1e-6, atol: 1e-7 }, 'count 0');
      // Momentum 0 replaces (population statistics).
      k.batchNormUpdateRunning(asIs.rm, asIs.rv, mean, unbiased, C, 0, 0);
      expect(Array.from(asIs.rm)).toEqual(Array.from(Float32Array.from(mean)));
      expect(Array.from(asIs.rv)).toEqual(Array.from(Float32Array.from(unbiased)));
    });

    it.each(frozen.cases.map((c, i) => [i, c] as const))('batchNormBackwardFrozen matches PyTorch in eval mode (case %i)', (_i, c) => {
      const act = c.activation === null ? NO_ACTIVATION : activationCode(c.activation);
      const dx = new Float32Array(c.x.length);
      const dgamma = new Float32Array(c.C);
      const dbeta = new Float32Array(c.C);
      k.batchNormBackwardFrozen(f32(c.x), f32(c.dy), dx, c.N, c.C, c.S, f32(c.gamma), f32(c.running_mean), f32(c.running_var), c.eps,
        dgamma, dbeta, act, 0, act === NO_ACTIVATION ? null : f32(c.y));
      expectClose(dx, c.dx, FIXTURE, 'dx');
      expectClose(dgamma, c.dgamma, FIXTURE, 'dgamma');
      expectClose(dbeta, c.dbeta, FIXTURE, 'dbeta');
    });

    it('batchNormBackwardFrozen against finite differences of batchNormForwardInfer (+ elu), dx aliasing dy', () => {
      const rng = createRng(5);
      const [N, C, S] = [3, 2, 3];
      const x = randn(rng, N * C * S, 1.5, 0.5);
      const gamma = f32([0.7, 1.3]);
      const beta = f32([0.2, -0.1]);
      const rm = f32([0.4, -0.3]);
      const rv = f32([0.8, 2.5]);
      const w = randn(rng, x.length);
      const elu = activationCode('elu');
      const y = new Float32Array(x.length);
      const loss = () => {
        k.batchNormForwardInfer(x, y, N, C, S, gamma, beta, rm, rv, 1e-3);
        k.activationForward(elu, y, y, y.length, 1);
        return dot(w, y);
      };
      loss();
      const g = w.slice(); // dx aliases dy
      const dgamma = new Float32Array(C);
      const dbeta = new Float32Array(C);
      k.batchNormBackwardFrozen(x, g, g, N, C, S, gamma, rm, rv, 1e-3, dgamma, dbeta, elu, 1, y);
      expectClose(g, numericGrad(loss, x), GRAD, 'dx');
      expectClose(dgamma, numericGrad(loss, gamma), GRAD, 'dgamma');
      expectClose(dbeta, numericGrad(loss, beta), GRAD, 'dbeta');
    });

    it.each(ghost.cases.map((c, i) => [i, c] as const))('ghost batch norm: forward, running update and batchNormBackwardGhost match PyTorch (case %i)', (_i, c) => {
      const gamma = f32(c.gamma);
      const beta = f32(c.beta);
      const { y, saveMean, saveRstd, chunks } = ghostForward(k, f32(c.x), c.N, c.C, c.S, c.virtualBatch, gamma, beta);
      expectClose(y, c.y, FIXTURE, 'y');
      // The model's running update: mean over virtual batches of mean and unbiased variance, then the kernel with count 0.
      const mean = new Float64Array(c.C);
      const variance = new Float64Array(c.C);
      for (let i = 0; i < chunks; i++) {
        const count = (i === chunks - 1 ? c.N - i * c.virtualBatch : c.virtualBatch) * c.S;
        for (let j = 0; j < c.C; j++) {
          const rstd = saveRstd[i * c.C + j]!;
          mean[j] += saveMean[i * c.C + j]! / chunks;
          variance[j] += (((1 / (rstd * rstd) - c.eps) * count) / (count - 1)) / chunks;
        }
      }
      const rm = f32(c.running_mean);
      const rv = f32(c.running_var);
      k.batchNormUpdateRunning(rm, rv, mean, variance, c.C, c.momentum, 0);
      expectClose(rm, c.new_running_mean, FIXTURE, 'running mean');
      expectClose(rv, c.new_running_var, { rtol: 1e-4, atol: 1e-5 }, 'running var'); // variance recovered from rstd
      const dx = new Float32Array(c.x.length);
      const dgamma = new Float32Array(c.C);
      const dbeta = new Float32Array(c.C);
      k.batchNormBackwardGhost(f32(c.x), f32(c.dy), dx, c.N, c.C, c.S, c.virtualBatch, gamma, saveMean, saveRstd, null, null,
        dgamma, dbeta, new Float32Array(2 * c.C));
      expectClose(dx, c.dx, FIXTURE, 'dx');
      expectClose(dgamma, c.dgamma, FIXTURE, 'dgamma');
      expectClose(dbeta, c.dbeta, FIXTURE, 'dbeta');
    });

    it('batchNormBackwardGhost against finite differences, with a fused relu, with and without renormalization', () => {
      const rng = createRng(8);
      const [N, C, S, vb] = [7, 2, 2, 3];
      const x = randn(rng, N * C * S, 1, 0.3);
      const gamma = f32([0.9, 1.2]);
      const beta = f32([0.1, -0.2]);
      const w = randn(rng, x.length);
      const relu = activationCode('relu');
      const chunks = Math.floor(N / vb);
      const stats = () => ({ mean: new Float32Array(chunks * C), rstd: new Float32Array(chunks * C), r: new Float32Array(chunks * C), d: new Float32Array(chunks * C) });
      const y = new Float32Array(x.length);
      const run = (renorm: boolean, s: ReturnType<typeof stats>) => {
        for (let i = 0; i < chunks; i++) {
          const first = i * vb;
          const rows = i === chunks - 1 ? N - first : vb;
          const v = (a: Float32Array) => a.subarray(first * C * S, (first + rows) * C * S);
          const at = (a: Float32Array) => a.subarray(i * C, (i + 1) * C);
          // Renorm with running statistics far off, so r and d are clipped (constants, as the backward assumes).
          if (renorm) {
            k.batchRenormForwardTrain(v(x), v(y), rows, C, S, gamma, beta, f32([50, -5]), f32([100, 0.01]), 0, 1e-3, 1.5, 0.5, false,
              at(s.mean), at(s.rstd), at(s.r), at(s.d), relu, 0);
          } else {
            k.batchNormForwardTrain(v(x), v(y), rows, C, S, gamma, beta, new Float32Array(C), new Float32Array(C), 0, 1e-3, false,
              at(s.mean), at(s.rstd), relu, 0);
          }
        }
        return dot(w, y);
      };
      for (const renorm of [false, true]) {
        const s = stats();
        run(renorm, s);
        const dx = new Float32Array(x.length);
        const dgamma = new Float32Array(C);
        const dbeta = new Float32Array(C);
        k.batchNormBackwardGhost(x, w, dx, N, C, S, vb, gamma, s.mean, s.rstd, renorm ? s.r : null, renorm ? s.d : null, dgamma, dbeta,
          new Float32Array(2 * C), relu, 0, y);
        const loss = () => run(renorm, stats());
        expectClose(dx, numericGrad(loss, x), GRAD, `dx (renorm ${renorm})`);
        expectClose(dgamma, numericGrad(loss, gamma), GRAD, `dgamma (renorm ${renorm})`);
        expectClose(dbeta, numericGrad(loss, beta), GRAD, `dbeta (renorm ${renorm})`);
      }
    });

    it.each([[1], [5]])('channelShiftedSums adds the shifted sums of every channel (S = %i, C = 70: two channel blocks)', (S) => {
      const rng = createRng(30 + S);
      const [N, C] = [6, 70];
      const batches = [randn(rng, N * C * S, 2, 40), randn(rng, N * C * S, 2, 40)]; // |mean| >> std
      const shift = Float64Array.from({ length: C }, (_, c) => batches[0]![c * S]!);
      const sums = new Float64Array(2 * C);
      for (const x of batches) k.channelShiftedSums(x, N, C, S, shift, sums);
      // Reference in double, value by value.
      const want = new Float64Array(2 * C);
      for (const x of batches) {
        for (let c = 0; c < C; c++) {
          for (let n = 0; n < N; n++) {
            for (let q = 0; q < S; q++) {
              const d = x[(n * C + c) * S + q]! - shift[c]!;
              want[2 * c] += d;
              want[2 * c + 1] += d * d;
            }
          }
        }
      }
      expectClose(sums, want, { rtol: 1e-12, atol: 1e-12 }, 'sums');
      // The forward's statistics come from the same pass: its mean is the shifted mean of one batch.
      const one = new Float64Array(2 * C);
      const first = Float64Array.from({ length: C }, (_, c) => batches[1]![c * S]!);
      k.channelShiftedSums(batches[1]!, N, C, S, first, one);
      const mean = new Float32Array(C);
      k.batchNormForwardTrain(batches[1]!, new Float32Array(N * C * S), N, C, S, null, null, new Float32Array(C), new Float32Array(C),
        0, 1e-3, false, mean, new Float32Array(C));
      expect(Array.from(mean)).toEqual(Array.from(first, (f, c) => Math.fround(f + one[2 * c]! / (N * S))));
    });

    it('argument checks', () => {
      const a = new Float32Array(8);
      const d = new Float64Array(2);
      expect(() => k.batchNormUpdateRunning(a, a, d, d, 2, 0.9, 1)).toThrow(/count must be 0/);
      expect(() => k.batchNormUpdateRunning(a, a, d, d, 3, 0.9, 4)).toThrow(/mean is too short/);
      expect(() => k.batchNormBackwardFrozen(a, a, a, 2, 2, 2, null, a, a, 1e-3, null, null, activationCode('relu'), 0, null)).toThrow(/y must be|y is too short/);
      expect(() => k.batchNormBackwardGhost(a, a, a, 2, 2, 2, 3, null, a, a, null, null, null, null, a)).toThrow(/virtualBatch/);
      expect(() => k.batchNormBackwardGhost(a, a, a, 2, 2, 2, 1, null, a, a, a, null, null, null, a)).toThrow(/saveR and saveD/);
      expect(() => k.channelShiftedSums(a, 2, 2, 2, new Float64Array(1), new Float64Array(4))).toThrow(/shift is too short/);
      expect(() => k.channelShiftedSums(a, 2, 2, 2, d, new Float64Array(3))).toThrow(/sums is too short/);
      expect(() => k.channelShiftedSums(a, 3, 2, 2, d, new Float64Array(4))).toThrow(/x is too short/);
    });
  });
}

describe.skipIf(native === null)('batch-norm kernels: native = portable', () => {
  it('channelShiftedSums on planes: each row in 16 double lanes, combined in lane order, then its tail, bit for bit', () => {
    // The order of operations the native kernel promises, in JS doubles (the
    // same IEEE operations; x86-64 clones contract no multiply-add).
    const reference = (x: Float32Array, N: number, C: number, S: number, shift: Float64Array, sums: Float64Array) => {
      for (let c = 0; c < C; c++) {
        for (let n = 0; n < N; n++) {
          const row = (n * C + c) * S;
          let s1 = 0;
          let s2 = 0;
          let s = 0;
          if (S > 1) {
            const v1 = new Float64Array(16);
            const v2 = new Float64Array(16);
            for (; s + 16 <= S; s += 16) {
              for (let l = 0; l < 16; l++) {
                const d = x[row + s + l]! - shift[c]!;
                v1[l] += d;
                v2[l] += d * d;
              }
            }
            for (let l = 0; l < 16; l++) {
              s1 += v1[l]!;
              s2 += v2[l]!;
            }
          }
          for (; s < S; s++) {
            const d = x[row + s]! - shift[c]!;
            s1 += d;
            s2 += d * d;
          }
          sums[2 * c] += s1;
          sums[2 * c + 1] += s2;
        }
      }
    };
    const rng = createRng(23);
    // S = 1 (dense layers): channels in groups of 8 through all rows, a group's tail, blocks of 64.
    const shapes = [[3, 2, 16], [4, 3, 17], [2, 70, 31], [5, 2, 196], [2, 3, 784], [6, 4, 7], [32, 256, 1], [7, 13, 1], [4, 70, 1], [1, 9, 1]] as const;
    for (const [N, C, S] of shapes) {
      // Magnitudes from 2^-12 to 2^12 around 100, so that sums round and their order shows.
      const x = randn(rng, N * C * S).map((v, i) => 100 + v * 2 ** ((i * 7) % 25 - 12));
      const shift = Float64Array.from({ length: C }, (_, c) => x[c * S]!);
      const got = Float64Array.from({ length: 2 * C }, (_, i) => i * 0.25);
      const want = got.slice();
      native!.channelShiftedSums(x, N, C, S, shift, got);
      reference(x, N, C, S, shift, want);
      expect(Array.from(got), `N=${N} C=${C} S=${S}`).toEqual(Array.from(want));
    }
  });

  it('batchNormBackward on dense rows (S = 1): dγ and dβ are each channel\'s sums in row order, in double, bit for bit', () => {
    const rng = createRng(29);
    for (const [N, C] of [[32, 256], [5, 13], [3, 70], [1, 9]] as const) {
      for (const [kind, alpha] of [[null, 0], ['relu', 0], ['leaky_relu', 0.1], ['elu', 0.7], ['tanh', 0], ['sigmoid', 0]] as const) {
        const activation = kind === null ? NO_ACTIVATION : activationCode(kind);
        // f'(z) from y = f(z), as float operations (act_grad in batchnorm.cc).
        const slope = (v: number): number => {
          switch (kind) {
            case null: return 1;
            case 'relu': return v > 0 ? 1 : 0;
            case 'leaky_relu': return v > 0 ? 1 : Math.fround(alpha);
            case 'elu': return v > 0 ? 1 : Math.fround(v + Math.fround(alpha));
            case 'tanh': return Math.fround(1 - Math.fround(v * v));
            case 'sigmoid': return Math.fround(v * Math.fround(1 - v));
          }
        };
        const x = randn(rng, N * C, 3, 1);
        const dy = randn(rng, N * C);
        const gamma = randn(rng, C, 0.5, 1);
        const beta = randn(rng, C);
        const y = new Float32Array(N * C);
        const mean = new Float32Array(C);
        const rstd = new Float32Array(C);
        const unused = new Float32Array(C);
        native!.batchNormForwardTrain(x, y, N, C, 1, gamma, beta, unused, unused, 0, 1e-5, false, mean, rstd, activation, alpha);
        const dx = new Float32Array(N * C);
        const dgamma = new Float32Array(C);
        const dbeta = new Float32Array(C);
        native!.batchNormBackward(x, dy, dx, N, C, 1, gamma, mean, rstd, null, null, dgamma, dbeta, activation, alpha, y);
        const wantGamma = new Float32Array(C);
        const wantBeta = new Float32Array(C);
        for (let c = 0; c < C; c++) {
          let gs = 0;
          let gx = 0;
          for (let n = 0; n < N; n++) {
            const i = n * C + c;
            const g = kind === null ? dy[i]! : Math.fround(dy[i]! * slope(y[i]!));
            gs += g;
            gx += Math.fround(g * Math.fround(Math.fround(x[i]! - mean[c]!) * rstd[c]!));
          }
          wantGamma[c] = gx;
          wantBeta[c] = gs;
        }
        const label = `N=${N} C=${C} ${kind ?? 'no activation'}`;
        expect(Array.from(dgamma), label).toEqual(Array.from(wantGamma));
        expect(Array.from(dbeta), label).toEqual(Array.from(wantBeta));
      }
    }
  });

  it('frozen and ghost backward and the running update give the same bytes (no activation)', () => {
    const rng = createRng(21);
    const [N, C, S, vb] = [9, 3, 5, 4];
    const x = randn(rng, N * C * S, 2, -1);
    const dy = randn(rng, x.length);
    const gamma = f32([0.8, 1.1, 1.4]);
    const rm = f32([0.3, -0.4, 1]);
    const rv = f32([0.6, 1.7, 3]);
    const out = (k: Kernels) => {
      const dx = new Float32Array(x.length);
      const dg = new Float32Array(C);
      const db = new Float32Array(C);
      k.batchNormBackwardFrozen(x, dy, dx, N, C, S, gamma, rm, rv, 1e-3, dg, db);
      const { saveMean, saveRstd } = ghostForward(k, x, N, C, S, vb, gamma, f32([0, 0, 0]));
      const gx = new Float32Array(x.length);
      const gg = new Float32Array(C);
      const gb = new Float32Array(C);
      k.batchNormBackwardGhost(x, dy, gx, N, C, S, vb, gamma, saveMean, saveRstd, null, null, gg, gb, new Float32Array(2 * C));
      const r = { m: rm.slice(), v: rv.slice() };
      k.batchNormUpdateRunning(r.m, r.v, Float64Array.from([0.1, 0.2, 0.3]), Float64Array.from([1.5, 0.25, 2]), C, 0.99, 45);
      return { dx, dg, db, gx, gg, gb, m: r.m, v: r.v };
    };
    const n = out(native!);
    const p = out(portableKernels);
    for (const key of ['dx', 'dg', 'db', 'm', 'v'] as const) expect(Array.from(n[key]), key).toEqual(Array.from(p[key]));
    // Ghost backward runs batchNormBackward per virtual batch, which agrees to float rounding across the two sets.
    for (const key of ['gx', 'gg', 'gb'] as const) expectClose(n[key], p[key], { rtol: 1e-5, atol: 1e-6 }, key);
  });
});
