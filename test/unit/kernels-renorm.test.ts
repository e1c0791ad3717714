/**
 * Batch renormalization kernels: against the paper's equations in PyTorch
 * (test/fixtures/make_fixtures.py: batch_renorm.json, r and d clipped and
 * not, plain and followed by tanh or relu), equal to plain batch norm at rMax = 1, dMax = 0, against finite
 * differences where r and d are constants (clipped; also with a fused
 * activation), native against portable, and their argument checks. The
 * backward is batch norm's (batchNormBackward with saveR, saveD).
 */
import { f32, fixture, randn } from '../helpers/kernels.js';
import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/core/kernels/native.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import { activationCode, NO_ACTIVATION, type Kernels } from '../../src/core/kernels/types.js';
import { createRng } from '../../src/core/rng.js';
import { dot, expectClose, numericGrad, type Tolerance } from '../helpers/gradcheck.js';

const FIXTURE: Tolerance = { rtol: 1e-5, atol: 1e-6 };
const GRAD: Tolerance = { rtol: 1e-2, atol: 1e-3 };

const native = loadNativeKernels();
// Renorm does not use the gemm, so one native entry covers both builds.
const implementations: [string, Kernels | null][] = [['native', native], ['portable', portableKernels]];

interface RenormFixture {
  cases: {
    N: number; C: number; S: number; eps: number; momentum: number; rMax: number; dMax: number;
    activation: 'relu' | 'tanh' | null; gamma: number[]; beta: number[]; running_mean: number[]; running_var: number[];
    steps: {
      x: number[]; y: number[]; mean: number[]; rstd: number[]; r: number[]; d: number[];
      running_mean: number[]; running_var: number[]; dy: number[]; dx: number[]; dgamma: number[]; dbeta: number[];
    }[];
  }[];
}
interface BnTrainFixture {
  N: number; C: number; S: number; eps: number; momentum: number;
  gamma: number[]; beta: number[]; running_mean: number[]; running_var: number[];
  steps: {
    x: number[]; y: number[]; mean: number[]; rstd: number[]; running_mean: number[]; running_var: number[];
    dy?: number[]; dx?: number[]; dgamma?: number[]; dbeta?: number[];
  }[];
}

const renorm = fixture<RenormFixture>('batch_renorm.json');
const bn1d = fixture<BnTrainFixture>('bn1d_train.json');
const bn2d = fixture<BnTrainFixture>('bn2d_train.json');

/** The per-channel buffers of one batch-renorm layer. */
function state(C: number, runningMean: ArrayLike<number>, runningVar: ArrayLike<number>) {
  return {
    runningMean: Float32Array.from(runningMean), runningVar: Float32Array.from(runningVar),
    mean: new Float32Array(C), rstd: new Float32Array(C), r: new Float32Array(C), d: new Float32Array(C),
    dgamma: new Float32Array(C), dbeta: new Float32Array(C),
  };
}

for (const [name, k] of implementations) {
  describe.skipIf(k === null)(`batch renorm kernels: ${name}`, () => {
    const K = k!;

    it('forward, saved r and d, running statistics and backward match the paper over 2 steps', () => {
      const clipped = { r: 0, d: 0, rFree: 0, dFree: 0 };
      for (const c of renorm.cases) {
        const { N, C, S, eps, momentum, rMax, dMax } = c;
        const act = c.activation === null ? NO_ACTIVATION : activationCode(c.activation);
        const gamma = f32(c.gamma);
        const beta = f32(c.beta);
        const st = state(C, c.running_mean, c.running_var);
        c.steps.forEach((step, i) => {
          const label = `rMax=${rMax} dMax=${dMax} ${c.activation ?? 'no activation'} step ${i}`;
          const x = f32(step.x);
          const y = new Float32Array(x.length);
          K.batchRenormForwardTrain(x, y, N, C, S, gamma, beta, st.runningMean, st.runningVar, momentum, eps, rMax, dMax,
            true, st.mean, st.rstd, st.r, st.d, act, 0);
          expectClose(y, step.y, FIXTURE, `${label} y`);
          expectClose(st.mean, step.mean, FIXTURE, `${label} saveMean`);
          expectClose(st.rstd, step.rstd, FIXTURE, `${label} saveRstd`);
          expectClose(st.r, step.r, FIXTURE, `${label} saveR`);
          expectClose(st.d, step.d, FIXTURE, `${label} saveD`);
          expectClose(st.runningMean, step.running_mean, FIXTURE, `${label} runningMean`);
          expectClose(st.runningVar, step.running_var, FIXTURE, `${label} runningVar`);
          const dx = new Float32Array(x.length).fill(Number.NaN);
          K.batchNormBackward(x, f32(step.dy), dx, N, C, S, gamma, st.mean, st.rstd, st.r, st.d, st.dgamma, st.dbeta,
            act, 0, y);
          expectClose(dx, step.dx, FIXTURE, `${label} dx`);
          expectClose(st.dgamma, step.dgamma, FIXTURE, `${label} dgamma`);
          expectClose(st.dbeta, step.dbeta, FIXTURE, `${label} dbeta`);
          for (let ch = 0; ch < C; ch++) {
            if (step.r[ch] === rMax || step.r[ch] === Math.fround(1 / rMax)) clipped.r++;
            else clipped.rFree++;
            if (Math.abs(step.d[ch]!) === dMax) clipped.d++;
            else clipped.dFree++;
          }
        });
      }
      // The fixture covers r and d clipped at either bound and not clipped, with and without an activation.
      expect(Math.min(clipped.r, clipped.d, clipped.rFree, clipped.dFree)).toBeGreaterThan(0);
      expect(renorm.cases.map((c) => c.activation)).toEqual([null, null, 'tanh', 'relu']);
    });

    it('rMax = 1, dMax = 0 is plain batch norm: the BN fixtures and batchNormForwardTrain/Backward', () => {
      for (const [label, fx] of [['bn1d', bn1d], ['bn2d', bn2d]] as const) {
        const { N, C, S, eps, momentum } = fx;
        const gamma = f32(fx.gamma);
        const beta = f32(fx.beta);
        const st = state(C, fx.running_mean, fx.running_var);
        const bn = state(C, fx.running_mean, fx.running_var);
        fx.steps.forEach((step, i) => {
          const x = f32(step.x);
          const y = new Float32Array(x.length);
          const yBn = new Float32Array(x.length);
          K.batchRenormForwardTrain(x, y, N, C, S, gamma, beta, st.runningMean, st.runningVar, momentum, eps, 1, 0,
            true, st.mean, st.rstd, st.r, st.d);
          K.batchNormForwardTrain(x, yBn, N, C, S, gamma, beta, bn.runningMean, bn.runningVar, momentum, eps, true,
            bn.mean, bn.rstd);
          expect(Array.from(st.r)).toEqual(new Array(C).fill(1));
          expect(Array.from(st.d, Math.abs)).toEqual(new Array(C).fill(0));
          expectClose(y, step.y, FIXTURE, `${label} step ${i} y`);
          expectClose(st.runningMean, step.running_mean, FIXTURE, `${label} step ${i} runningMean`);
          expectClose(st.runningVar, step.running_var, FIXTURE, `${label} step ${i} runningVar`);
          // And the batch-norm kernel, to float32 rounding (the two may order the arithmetic differently).
          expectClose(y, yBn, FIXTURE, `${label} step ${i} y vs batchNormForwardTrain`);
          expectClose(st.mean, bn.mean, FIXTURE, `${label} step ${i} saveMean vs batchNormForwardTrain`);
          expectClose(st.rstd, bn.rstd, FIXTURE, `${label} step ${i} saveRstd vs batchNormForwardTrain`);
          expectClose(st.runningVar, bn.runningVar, FIXTURE, `${label} step ${i} runningVar vs batchNormForwardTrain`);
          if (step.dy) {
            const dy = f32(step.dy);
            const dx = new Float32Array(x.length);
            const dxBn = new Float32Array(x.length);
            K.batchNormBackward(x, dy, dx, N, C, S, gamma, st.mean, st.rstd, st.r, st.d, st.dgamma, st.dbeta);
            K.batchNormBackward(x, dy, dxBn, N, C, S, gamma, bn.mean, bn.rstd, null, null, bn.dgamma, bn.dbeta);
            expectClose(dx, step.dx!, FIXTURE, `${label} dx`);
            expectClose(st.dgamma, step.dgamma!, FIXTURE, `${label} dgamma`);
            expectClose(st.dbeta, step.dbeta!, FIXTURE, `${label} dbeta`);
            expectClose(dx, dxBn, FIXTURE, `${label} dx vs batchNormBackward`);
            expectClose(st.dgamma, bn.dgamma, FIXTURE, `${label} dgamma vs batchNormBackward`);
          }
        });
      }
    });

    it('null gamma/beta act as 1/0, y may alias x, dx may alias dy, updateRunning = false', () => {
      const c = renorm.cases[0]!;
      const { N, C, S, eps, momentum, rMax, dMax } = c;
      const x = f32(c.steps[0]!.x);
      const dy = f32(c.steps[0]!.dy);
      const ones = new Float32Array(C).fill(1);
      const zeros = new Float32Array(C);
      const a = state(C, c.running_mean, c.running_var);
      const b = state(C, c.running_mean, c.running_var);
      const y = new Float32Array(x.length);
      K.batchRenormForwardTrain(x, y, N, C, S, ones, zeros, a.runningMean, a.runningVar, momentum, eps, rMax, dMax, true,
        a.mean, a.rstd, a.r, a.d);
      const yAliased = x.slice();
      K.batchRenormForwardTrain(yAliased, yAliased, N, C, S, null, null, b.runningMean, b.runningVar, momentum, eps, rMax,
        dMax, true, b.mean, b.rstd, b.r, b.d);
      expect(Array.from(yAliased)).toEqual(Array.from(y));
      expect(Array.from(b.runningVar)).toEqual(Array.from(a.runningVar));
      expect(Array.from(b.d)).toEqual(Array.from(a.d));

      const dx = new Float32Array(x.length);
      K.batchNormBackward(x, dy, dx, N, C, S, ones, a.mean, a.rstd, a.r, a.d, null, null);
      const dxAliased = dy.slice();
      K.batchNormBackward(x, dxAliased, dxAliased, N, C, S, null, a.mean, a.rstd, a.r, a.d, null, null);
      expect(Array.from(dxAliased)).toEqual(Array.from(dx));

      // updateRunning = false leaves the running statistics alone; r and d still come from them.
      const before = b.runningMean.slice();
      K.batchRenormForwardTrain(x, y, N, C, S, null, null, b.runningMean, b.runningVar, momentum, eps, rMax, dMax, false,
        b.mean, b.rstd, b.r, b.d);
      expect(Array.from(b.runningMean)).toEqual(Array.from(before));
    });

    it('a NaN poisons its own channel only', () => {
      const x = Float32Array.of(1, 2, Number.NaN, 4, 5, 6); // N=3, C=2: channel 0 is [1, NaN, 5]
      const y = new Float32Array(6);
      const st = state(2, [0, 0], [1, 1]);
      K.batchRenormForwardTrain(x, y, 3, 2, 1, null, null, st.runningMean, st.runningVar, 0.9, 1e-3, 3, 5, true,
        st.mean, st.rstd, st.r, st.d);
      expect(y[0]).toBeNaN();
      expect(st.r[0]).toBeNaN();
      expect(st.d[0]).toBeNaN();
      expect(st.runningVar[0]).toBeNaN();
      expect(Number.isNaN(y[1]!) || Number.isNaN(st.runningVar[1]!)).toBe(false);
    });
  });

  describe.skipIf(k === null)(`batch renorm gradient checks: ${name}`, () => {
    const K = k!;
    const [N, C, S] = [4, 3, 2];
    const size = N * C * S;
    const eps = 1e-3;

    function setup(seed: number, runningMean: number[], runningVar: number[], activation = NO_ACTIVATION) {
      const rng = createRng(seed);
      const x = randn(rng, size, 1.5, 0.5);
      const gamma = randn(rng, C, 0.3, 1);
      const beta = randn(rng, C);
      const w = randn(rng, size);
      const st = state(C, runningMean, runningVar);
      const y = new Float32Array(size);
      // updateRunning false: every evaluation sees the same running statistics.
      const forward = () => {
        K.batchRenormForwardTrain(x, y, N, C, S, gamma, beta, st.runningMean, st.runningVar, 0.9, eps, 2, 1, false,
          st.mean, st.rstd, st.r, st.d, activation, 1);
        return dot(w, y);
      };
      forward();
      const dx = new Float32Array(size);
      K.batchNormBackward(x, w, dx, N, C, S, gamma, st.mean, st.rstd, st.r, st.d, st.dgamma, st.dbeta, activation, 1, y);
      return { x, gamma, beta, w, st, forward, dx };
    }

    it('r and d clipped (constant near x): dx, dgamma, dbeta match finite differences', () => {
      // Running statistics far from the batch's: r = 2 or 1/2 and d = ±1 on every channel.
      const { x, gamma, beta, w, st, forward, dx } = setup(700, [-10, 30, -10], [0.01, 100, 0.01]);
      expect(Array.from(st.r)).toEqual([2, 0.5, 2]);
      expect(Array.from(st.d)).toEqual([1, -1, 1]);
      const numericDx = numericGrad(forward, x);
      expectClose(dx, numericDx, GRAD, 'dx');
      expectClose(st.dgamma, numericGrad(forward, gamma), GRAD, 'dgamma');
      expectClose(st.dbeta, numericGrad(forward, beta), GRAD, 'dbeta');
      // Teeth: plain batch norm's backward (no r) must fail here.
      const wrong = new Float32Array(size);
      K.batchNormBackward(x, w, wrong, N, C, S, gamma, st.mean, st.rstd, null, null, null, null);
      expect(() => expectClose(wrong, numericDx, GRAD, 'wrong dx')).toThrow(/outside/);
    });

    it.each(['tanh', 'elu'] as const)('with a fused %s, r and d clipped: dx, dgamma, dbeta match finite differences', (kind) => {
      const { x, gamma, beta, st, forward, dx } = setup(702, [-10, 30, -10], [0.01, 100, 0.01], activationCode(kind));
      expect(Array.from(st.r)).toEqual([2, 0.5, 2]);
      expectClose(dx, numericGrad(forward, x), GRAD, 'dx');
      expectClose(st.dgamma, numericGrad(forward, gamma), GRAD, 'dgamma');
      expectClose(st.dbeta, numericGrad(forward, beta), GRAD, 'dbeta');
    });

    it('r and d not clipped: dgamma, dbeta match finite differences; dx is by design not the full gradient', () => {
      const { x, gamma, beta, st, forward, dx } = setup(701, [0.3, 0.6, 0.4], [2, 2.5, 3]);
      for (let c = 0; c < C; c++) {
        expect(st.r[c]).toBeGreaterThan(0.5);
        expect(st.r[c]).toBeLessThan(2);
        expect(Math.abs(st.d[c]!)).toBeLessThan(1);
      }
      expectClose(st.dgamma, numericGrad(forward, gamma), GRAD, 'dgamma');
      expectClose(st.dbeta, numericGrad(forward, beta), GRAD, 'dbeta');
      // r and d depend on x here, and the kernel treats them as constants (as the paper does).
      expect(() => expectClose(dx, numericGrad(forward, x), GRAD, 'dx')).toThrow(/outside/);
    });
  });

  describe.skipIf(k === null)(`batch renorm argument checks: ${name}`, () => {
    const K = k!;
    const ok = new Float32Array(64);
    const short = new Float32Array(3);

    it('throws a TypeError naming a too-short array', () => {
      const fwd = (y: Float32Array, saveR: Float32Array, saveD: Float32Array) =>
        K.batchRenormForwardTrain(ok, y, 2, 4, 1, null, null, ok, ok, 0.9, 1e-3, 3, 5, true, ok, ok, saveR, saveD);
      expect(() => fwd(short, ok, ok)).toThrow(TypeError);
      expect(() => fwd(short, ok, ok)).toThrow(/batchRenormForwardTrain: y is too short: 3 elements, the sizes need 8/);
      expect(() => fwd(ok, short, ok)).toThrow(/saveR is too short/);
      expect(() => fwd(ok, ok, short)).toThrow(/saveD is too short/);
      expect(() => K.batchRenormForwardTrain(ok, ok, 2, 4, 1, short, null, ok, ok, 0.9, 1e-3, 3, 5, true, ok, ok, ok, ok))
        .toThrow(/gamma is too short/);
      const back = (dx: Float32Array, saveR: Float32Array, saveD: Float32Array, dgamma: Float32Array | null) =>
        K.batchNormBackward(ok, ok, dx, 2, 4, 1, null, ok, ok, saveR, saveD, dgamma, null);
      expect(() => back(short, ok, ok, null)).toThrow(/batchNormBackward: dx is too short/);
      expect(() => back(ok, short, ok, null)).toThrow(/saveR is too short/);
      expect(() => back(ok, ok, short, null)).toThrow(/saveD is too short/);
      expect(() => back(ok, ok, ok, short)).toThrow(/dgamma is too short/);
    });

    it('throws a RangeError for rMax < 1, dMax < 0 and too few values per channel', () => {
      const fwd = (N: number, rMax: number, dMax: number) =>
        K.batchRenormForwardTrain(ok, ok, N, 4, 1, null, null, ok, ok, 0.9, 1e-3, rMax, dMax, true, ok, ok, ok, ok);
      expect(() => fwd(2, 0.5, 5)).toThrow(/batchRenormForwardTrain: rMax must be at least 1/);
      expect(() => fwd(2, Number.NaN, 5)).toThrow(RangeError);
      expect(() => fwd(2, 3, -1)).toThrow(/dMax must be at least 0/);
      expect(() => fwd(2, Infinity, Infinity)).not.toThrow();
      expect(() => fwd(1, 3, 5)).toThrow(/needs two values per channel/);
      expect(() => K.batchNormBackward(ok, ok, ok, 0, 4, 1, null, ok, ok, ok, ok, null, null)).toThrow(RangeError);
    });
  });
}

describe.skipIf(native === null)('batch renorm: native and portable agree', () => {
  // C = 70 spans two channel blocks of the native kernels.
  it.each([[8, 32, 784, null], [16, 70, 9, 'relu'], [33, 70, 1, 'sigmoid']] as const)('N=%i, C=%i, S=%i, fused %s: forward, running statistics, backward', (N, C, S, kind) => {
    const act = kind === null ? NO_ACTIVATION : activationCode(kind);
    const rng = createRng(710);
    const size = N * C * S;
    const x = randn(rng, size, 3, 5); // offset mean: exercises the shifted sums
    const dy = randn(rng, size);
    const gamma = randn(rng, C, 0.3, 1);
    const beta = randn(rng, C);
    // Half the channels' running statistics far off (clipped), half close.
    const runningMean = Array.from({ length: C }, (_, c) => (c % 2 ? 5.1 : -20));
    const runningVar = Array.from({ length: C }, (_, c) => (c % 2 ? 8 : 0.1));
    const runs = [native!, portableKernels].map((k) => {
      const st = state(C, runningMean, runningVar);
      const out = { y: new Float32Array(size), dx: new Float32Array(size) };
      k.batchRenormForwardTrain(x, out.y, N, C, S, gamma, beta, st.runningMean, st.runningVar, 0.99, 1e-3, 3, 5, true,
        st.mean, st.rstd, st.r, st.d, act, 0);
      k.batchNormBackward(x, dy, out.dx, N, C, S, gamma, st.mean, st.rstd, st.r, st.d, st.dgamma, st.dbeta, act, 0, out.y);
      return { ...out, ...st };
    });
    const [a, b] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(a.r.some((r) => r === 3) && a.r.some((r) => r < 3 && r > 1 / 3)).toBe(true);
    const tol = { rtol: 1e-5, atol: 1e-5 };
    // dgamma and dbeta are sums of N*S terms of size ~1 that the native kernel adds row by row in float
    // (batch norm's backward) and the portable one in double: apart by up to N*S float roundings.
    const sums = { rtol: 1e-5, atol: Math.max(1e-5, N * S * 2 ** -24) };
    for (const key of Object.keys(a) as (keyof typeof a)[]) {
      expectClose(a[key], b[key], key === 'dgamma' || key === 'dbeta' ? sums : tol, key);
    }
  });
});
