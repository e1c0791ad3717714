/**
 * Every kernel against the PyTorch fixtures (test/fixtures/make_fixtures.py),
 * for the native addon (OpenBLAS and built-in gemm) and the portable
 * kernels, and native against portable on larger random shapes.
 *
 * Fixture references are float64 computations on float32 inputs, so a
 * float32 kernel matches them to float32 rounding: FIXTURE tolerance.
 */
import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/core/kernels/native.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import { activationCode, type ActivationKind, type Kernels } from '../../src/core/kernels/types.js';
import { createRng } from '../../src/core/rng.js';
import { f32, fixture, randn } from '../helpers/kernels.js';
import { expectClose, type Tolerance } from '../helpers/gradcheck.js';

const FIXTURE: Tolerance = { rtol: 1e-5, atol: 1e-6 };

const native = loadNativeKernels();
const nativeBuiltin = loadNativeKernels({ gemm: 'builtin' });
// A missing addon is reported by kernels-native.test.ts; here its cases are skipped.
const implementations: [string, Kernels | null][] = [
  [`native (${native?.gemmBackend} gemm)`, native],
  ['native (builtin gemm)', native?.gemmBackend === 'builtin' ? null : nativeBuiltin],
  ['portable', portableKernels],
];

interface BnTrainFixture {
  N: number; C: number; S: number; eps: number; momentum: number;
  gamma: number[]; beta: number[]; running_mean: number[]; running_var: number[];
  steps: {
    x: number[]; y: number[]; mean: number[]; rstd: number[]; running_mean: number[]; running_var: number[];
    dy?: number[]; dx?: number[]; dgamma?: number[]; dbeta?: number[];
  }[];
}
interface BnInferFixture {
  cases: {
    N: number; C: number; S: number; eps: number; gamma: number[]; beta: number[];
    running_mean: number[]; running_var: number[]; x: number[]; y: number[];
  }[];
}
interface ActivationFixture {
  cases: { kind: ActivationKind; alpha: number; x: number[]; y: number[]; dy: number[]; dx: number[] }[];
}
interface SoftmaxFixture {
  N: number; C: number; logits: number[]; labels: number[]; probs: number[]; loss: number;
  dlogits: number[]; correct: number;
}
interface SgdFixture {
  cases: {
    lr: number; momentum: number; nesterov: boolean; weight_decay: number; param: number[];
    steps: { grad: number[]; param: number[]; velocity: number[] | null }[];
  }[];
}
interface AdamFixture {
  lr: number; beta1: number; beta2: number; eps: number; weight_decay: number; param: number[];
  steps: { grad: number[]; param: number[]; m: number[]; v: number[] }[];
}
interface GemmFixture {
  M: number; N: number; K: number; alpha: number; beta: number;
  cases: { transA: boolean; transB: boolean; A: number[]; B: number[]; C0: number[]; AB: number[]; C: number[] }[];
}

const bn1d = fixture<BnTrainFixture>('bn1d_train.json');
const bn2d = fixture<BnTrainFixture>('bn2d_train.json');
const bnInfer = fixture<BnInferFixture>('bn_infer.json');
const activations = fixture<ActivationFixture>('activations.json');
const softmax = fixture<SoftmaxFixture>('softmax_ce.json');
const sgd = fixture<SgdFixture>('sgd.json');
const adam = fixture<AdamFixture>('adam.json');
const gemm = fixture<GemmFixture>('gemm.json');

/** op(A)·op(B) in float64, the reference for random gemm shapes. */
function gemmReference(transA: boolean, transB: boolean, M: number, N: number, K: number,
  A: Float32Array, B: Float32Array): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += (transA ? A[p * M + i]! : A[i * K + p]!) * (transB ? B[j * K + p]! : B[p * N + j]!);
      C[i * N + j] = s;
    }
  }
  return C;
}

function checkBnTrain(k: Kernels, fx: BnTrainFixture): void {
  const { N, C, S, eps, momentum } = fx;
  const gamma = f32(fx.gamma);
  const beta = f32(fx.beta);
  const runningMean = f32(fx.running_mean);
  const runningVar = f32(fx.running_var);
  fx.steps.forEach((step, i) => {
    const x = f32(step.x);
    const y = new Float32Array(x.length);
    const mean = new Float32Array(C);
    const rstd = new Float32Array(C);
    k.batchNormForwardTrain(x, y, N, C, S, gamma, beta, runningMean, runningVar, momentum, eps, true, mean, rstd);
    expectClose(y, step.y, FIXTURE, `step ${i} y`);
    expectClose(mean, step.mean, FIXTURE, `step ${i} saveMean`);
    expectClose(rstd, step.rstd, FIXTURE, `step ${i} saveRstd`);
    expectClose(runningMean, step.running_mean, FIXTURE, `step ${i} runningMean`);
    expectClose(runningVar, step.running_var, FIXTURE, `step ${i} runningVar`);
    if (step.dy) {
      const dx = new Float32Array(x.length);
      const dgamma = new Float32Array(C);
      const dbeta = new Float32Array(C);
      k.batchNormBackward(x, f32(step.dy), dx, N, C, S, gamma, mean, rstd, null, null, dgamma, dbeta);
      expectClose(dx, step.dx!, FIXTURE, 'dx');
      expectClose(dgamma, step.dgamma!, FIXTURE, 'dgamma');
      expectClose(dbeta, step.dbeta!, FIXTURE, 'dbeta');
    }
  });
}

for (const [name, k] of implementations) {
  describe.skipIf(k === null)(`kernels: ${name}`, () => {
    const K = k!;

    it('gemm matches PyTorch in all four transpose cases', () => {
      const { M, N, K: depth, alpha, beta } = gemm;
      for (const c of gemm.cases) {
        const label = `transA=${c.transA} transB=${c.transB}`;
        const C = f32(c.C0);
        K.gemm(c.transA, c.transB, M, N, depth, alpha, f32(c.A), f32(c.B), beta, C);
        expectClose(C, c.C, FIXTURE, label);
        // beta = 0 overwrites C without reading it, NaN included.
        const D = new Float32Array(M * N).fill(Number.NaN);
        K.gemm(c.transA, c.transB, M, N, depth, 1, f32(c.A), f32(c.B), 0, D);
        expectClose(D, c.AB, FIXTURE, `${label} beta=0`);
      }
    });

    it('gemm handles several cache blocks, edge tiles, beta and K = 0', () => {
      const rng = createRng(7);
      // Larger than one block in every direction of the built-in gemm (MC 128, KC 256, NC 2048).
      for (const [M, N, depth] of [[150, 35, 270], [5, 2100, 3]] as const) {
        for (const [transA, transB] of [[false, false], [true, true]] as const) {
          const A = randn(rng, M * depth);
          const B = randn(rng, depth * N);
          const C0 = randn(rng, M * N);
          const C = C0.slice();
          K.gemm(transA, transB, M, N, depth, 0.5, A, B, 2, C);
          const ref = gemmReference(transA, transB, M, N, depth, A, B).map((v, i) => 0.5 * v + 2 * C0[i]!);
          expectClose(C, ref, { rtol: 1e-4, atol: 1e-4 }, `${M}x${N}x${depth} transA=${transA}`);
        }
      }
      const C = Float32Array.of(1, Number.NaN, 3, 4);
      K.gemm(false, false, 2, 2, 0, 1, new Float32Array(0), new Float32Array(0), 0, C);
      expect(Array.from(C)).toEqual([0, 0, 0, 0]);
      C.set([1, 2, 3, 4]);
      K.gemm(false, false, 2, 2, 0, 1, new Float32Array(0), new Float32Array(0), 0.5, C);
      expect(Array.from(C)).toEqual([0.5, 1, 1.5, 2]);
    });

    it('gemm writes through views at their byteOffset', () => {
      const buffer = new Float32Array(12).fill(-1);
      const C = buffer.subarray(3, 7); // 2x2
      K.gemm(false, false, 2, 2, 1, 1, Float32Array.of(1, 2), Float32Array.of(3, 4), 0, C);
      expect(Array.from(buffer)).toEqual([-1, -1, -1, 3, 4, 6, 8, -1, -1, -1, -1, -1]);
    });

    it('batch norm 1d training: forward, running statistics over 3 steps, backward', () => {
      checkBnTrain(K, bn1d);
    });

    it('batch norm 2d training (N, C, H*W): forward, running statistics, backward', () => {
      checkBnTrain(K, bn2d);
    });

    it('batch norm inference uses the running statistics', () => {
      for (const c of bnInfer.cases) {
        const y = new Float32Array(c.x.length);
        K.batchNormForwardInfer(f32(c.x), y, c.N, c.C, c.S, f32(c.gamma), f32(c.beta), f32(c.running_mean),
          f32(c.running_var), c.eps);
        expectClose(y, c.y, FIXTURE, `S=${c.S}`);
      }
    });

    it('batch norm: null gamma/beta act as 1/0, y may alias x, dx may alias dy', () => {
      const { N, C, S, eps, momentum } = bn2d;
      const x = f32(bn2d.steps[0]!.x);
      const dy = f32(bn2d.steps[0]!.dy!);
      const ones = new Float32Array(C).fill(1);
      const zeros = new Float32Array(C);
      const run = () => [new Float32Array(C), new Float32Array(C).fill(1)] as const;
      const [m1, v1] = run();
      const [m2, v2] = run();
      const mean = new Float32Array(C);
      const rstd = new Float32Array(C);
      const y = new Float32Array(x.length);
      K.batchNormForwardTrain(x, y, N, C, S, ones, zeros, m1, v1, momentum, eps, true, mean, rstd);
      const yAliased = x.slice();
      K.batchNormForwardTrain(yAliased, yAliased, N, C, S, null, null, m2, v2, momentum, eps, true, mean, rstd);
      expect(Array.from(yAliased)).toEqual(Array.from(y));
      expect(Array.from(m2)).toEqual(Array.from(m1));
      expect(Array.from(v2)).toEqual(Array.from(v1));

      const dx = new Float32Array(x.length);
      K.batchNormBackward(x, dy, dx, N, C, S, ones, mean, rstd, null, null, null, null);
      const dxAliased = dy.slice();
      K.batchNormBackward(x, dxAliased, dxAliased, N, C, S, null, mean, rstd, null, null, null, null);
      expect(Array.from(dxAliased)).toEqual(Array.from(dx));

      // updateRunning = false leaves the running statistics alone.
      K.batchNormForwardTrain(x, y, N, C, S, null, null, m2, v2, momentum, eps, false, mean, rstd);
      expect(Array.from(m2)).toEqual(Array.from(m1));
    });

    it('activations forward and backward match PyTorch', () => {
      for (const c of activations.cases) {
        const kind = activationCode(c.kind);
        const x = f32(c.x);
        const y = new Float32Array(x.length);
        K.activationForward(kind, x, y, x.length, c.alpha);
        expectClose(y, c.y, FIXTURE, `${c.kind} forward`);
        const dx = new Float32Array(x.length);
        K.activationBackward(kind, x, y, f32(c.dy), dx, x.length, c.alpha);
        expectClose(dx, c.dx, FIXTURE, `${c.kind} backward`);
        // In place: y may alias x, dx may alias dy.
        const inPlace = x.slice();
        K.activationForward(kind, inPlace, inPlace, x.length, c.alpha);
        expect(Array.from(inPlace)).toEqual(Array.from(y));
        const dyInPlace = f32(c.dy);
        K.activationBackward(kind, x, y, dyInPlace, dyInPlace, x.length, c.alpha);
        expect(Array.from(dyInPlace)).toEqual(Array.from(dx));
      }
    });

    it('softmax cross-entropy: probabilities, mean loss, correct count, dlogits', () => {
      const { N, C } = softmax;
      const labels = Int32Array.from(softmax.labels);
      const probs = new Float32Array(N * C);
      const correct = new Int32Array(1);
      const loss = K.softmaxCrossEntropy(f32(softmax.logits), labels, probs, N, C, correct);
      expect(Math.abs(loss - softmax.loss)).toBeLessThanOrEqual(FIXTURE.atol + FIXTURE.rtol * softmax.loss);
      expectClose(probs, softmax.probs, FIXTURE, 'probs');
      expect(correct[0]).toBe(softmax.correct);
      expect(K.softmaxCrossEntropy(f32(softmax.logits), labels, probs, N, C, null)).toBe(loss);
      K.softmaxCrossEntropyBackward(probs, labels, probs, N, C); // dlogits may alias probs
      expectClose(probs, softmax.dlogits, FIXTURE, 'dlogits');
    });

    it('SGD (momentum, nesterov, weight decay) matches PyTorch over 3 steps', () => {
      for (const c of sgd.cases) {
        const label = `momentum=${c.momentum} nesterov=${c.nesterov} wd=${c.weight_decay}`;
        const param = f32(c.param);
        // Without momentum the velocity is never touched, so it may be empty.
        const velocity = new Float32Array(c.momentum > 0 ? param.length : 0);
        c.steps.forEach((s, i) => {
          K.sgdStep(param, f32(s.grad), velocity, param.length, c.lr, c.momentum, c.nesterov, c.weight_decay);
          expectClose(param, s.param, FIXTURE, `${label} step ${i + 1} param`);
          if (s.velocity) expectClose(velocity, s.velocity, FIXTURE, `${label} step ${i + 1} velocity`);
        });
      }
    });

    it('Adam with weight decay matches PyTorch over 3 steps', () => {
      const param = f32(adam.param);
      const m = new Float32Array(param.length);
      const v = new Float32Array(param.length);
      adam.steps.forEach((s, i) => {
        K.adamStep(param, f32(s.grad), m, v, param.length, adam.lr, adam.beta1, adam.beta2, adam.eps,
          adam.weight_decay, i + 1);
        expectClose(param, s.param, FIXTURE, `step ${i + 1} param`);
        expectClose(m, s.m, FIXTURE, `step ${i + 1} m`);
        expectClose(v, s.v, FIXTURE, `step ${i + 1} v`);
      });
    });

    it('bias add and bias gradient', () => {
      const x = Float32Array.from({ length: 12 }, (_, i) => i); // N=2, C=3, S=2
      K.addBias(x, Float32Array.of(10, 20, 30), 2, 3, 2);
      expect(Array.from(x)).toEqual([10, 11, 22, 23, 34, 35, 16, 17, 28, 29, 40, 41]);
      const dbias = new Float32Array(3).fill(Number.NaN);
      K.biasGrad(Float32Array.from({ length: 12 }, (_, i) => i), dbias, 2, 3, 2);
      expect(Array.from(dbias)).toEqual([0 + 1 + 6 + 7, 2 + 3 + 8 + 9, 4 + 5 + 10 + 11]);
      const out = new Float32Array(3);
      K.multiply(Float32Array.of(1, 2, 3), Float32Array.of(0, 2, 0.5), out, 3);
      expect(Array.from(out)).toEqual([0, 4, 1.5]);
    });

    it('NaN and Inf propagate (no fast-math shortcuts)', () => {
      const nan = Number.NaN;
      const y = new Float32Array(2);
      for (const kind of ['relu', 'leaky_relu', 'elu', 'tanh', 'sigmoid'] as const) {
        K.activationForward(activationCode(kind), Float32Array.of(nan, 1), y, 2, 0.1);
        expect(y[0], kind).toBeNaN();
      }
      // One NaN poisons its channel's statistics, output and running stats, not the others.
      const x = Float32Array.of(1, 2, nan, 4, 5, 6); // N=3, C=2: channel 0 is [1, NaN, 5]
      const out = new Float32Array(6);
      const rm = new Float32Array(2);
      const rv = Float32Array.of(1, 1);
      const mean = new Float32Array(2);
      const rstd = new Float32Array(2);
      K.batchNormForwardTrain(x, out, 3, 2, 1, null, null, rm, rv, 0.9, 1e-3, true, mean, rstd);
      expect(out[0]).toBeNaN();
      expect(rm[0]).toBeNaN();
      expect(rv[0]).toBeNaN();
      expect(out[1]).toBeCloseTo(-2 / Math.sqrt(8 / 3 + 1e-3), 5);
      expect(rv[1]).toBeCloseTo(0.9 + 0.1 * 4, 5);
      const probs = new Float32Array(2);
      expect(K.softmaxCrossEntropy(Float32Array.of(nan, 0), Int32Array.of(1), probs, 1, 2, null)).toBeNaN();
      expect(K.softmaxCrossEntropy(Float32Array.of(Infinity, 0), Int32Array.of(1), probs, 1, 2, null)).toBeNaN();
      const param = Float32Array.of(1);
      K.sgdStep(param, Float32Array.of(Infinity), new Float32Array(1), 1, 0.1, 0.9, false, 0);
      expect(param[0]).toBe(-Infinity);
      const C = new Float32Array(1);
      K.gemm(false, false, 1, 1, 2, 1, Float32Array.of(1, nan), Float32Array.of(1, 1), 0, C);
      expect(C[0]).toBeNaN();
    });
  });
}

describe.skipIf(native === null)('native and portable agree on larger random shapes', () => {
  const kernels = [native!, ...(nativeBuiltin && native?.gemmBackend !== 'builtin' ? [nativeBuiltin] : []), portableKernels];

  it('gemm 64x300x70, all transposes, against a float64 reference', () => {
    const rng = createRng(11);
    const [M, N, K] = [64, 70, 300];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const A = randn(rng, M * K);
        const B = randn(rng, K * N);
        const ref = gemmReference(transA, transB, M, N, K, A, B);
        for (const k of kernels) {
          const C = new Float32Array(M * N);
          k.gemm(transA, transB, M, N, K, 1, A, B, 0, C);
          expectClose(C, ref, { rtol: 1e-4, atol: 1e-4 }, `${k.name}/${k.gemmBackend} transA=${transA} transB=${transB}`);
        }
      }
    }
  });

  it('batch norm N=128 C=33 (S=1 and S=5): forward, backward, inference', () => {
    const rng = createRng(12);
    for (const S of [1, 5]) {
      const [N, C] = [128, 33];
      const size = N * C * S;
      const x = randn(rng, size, 3, 5); // offset mean: exercises the shifted sums
      const dy = randn(rng, size);
      const gamma = randn(rng, C, 0.3, 1);
      const beta = randn(rng, C);
      const runs = [native!, portableKernels].map((k) => {
        const out = {
          y: new Float32Array(size), dx: new Float32Array(size), yInfer: new Float32Array(size),
          mean: new Float32Array(C), rstd: new Float32Array(C), dgamma: new Float32Array(C), dbeta: new Float32Array(C),
          rm: new Float32Array(C), rv: new Float32Array(C).fill(1),
        };
        k.batchNormForwardTrain(x, out.y, N, C, S, gamma, beta, out.rm, out.rv, 0.99, 1e-3, true, out.mean, out.rstd);
        k.batchNormBackward(x, dy, out.dx, N, C, S, gamma, out.mean, out.rstd, null, null, out.dgamma, out.dbeta);
        k.batchNormForwardInfer(x, out.yInfer, N, C, S, gamma, beta, out.rm, out.rv, 1e-3);
        return out;
      });
      const [a, b] = runs as [(typeof runs)[0], (typeof runs)[0]];
      const tol = { rtol: 1e-5, atol: 1e-5 };
      for (const key of Object.keys(a) as (keyof typeof a)[]) expectClose(a[key], b[key], tol, `S=${S} ${key}`);
    }
  });
});
