// The activation fused into addBias/biasGrad and the batch-norm kernels must
// equal the separate kernels run one after the other.
import { describe, expect, it } from 'vitest';
import { ACTIVATIONS, activationCode } from '../../src/core/kernels/types.js';
import { createRng, nextNormal } from '../../src/core/rng.js';
import { kernelSets } from '../helpers/kernels.js';
import { expectClose } from '../helpers/gradcheck.js';


const rng = createRng(5);
const randn = (n: number) => Float32Array.from({ length: n }, () => nextNormal(rng));
const tol = { rtol: 1e-5, atol: 1e-6 };

describe.each(kernelSets)('fused activations (%s)', (_name, k) => {
  describe.each([[1], [6]])('S = %i', (S) => {
    const N = 9, C = 70; // C spans more than one channel block of the native kernels
    const size = N * C * S;
    it.each(ACTIVATIONS)('batch norm + %s forward and backward', (kind) => {
      const code = activationCode(kind);
      const alpha = kind === 'elu' ? 1 : 0.1;
      const x = randn(size), dy = randn(size), gamma = randn(C), beta = randn(C);
      const run = () => ({ mean: new Float32Array(C), rstd: new Float32Array(C), rm: new Float32Array(C), rv: new Float32Array(C).fill(1) });

      // separate: z = BN(x); y = f(z); backward through f, then BN
      const a = run();
      const z = new Float32Array(size), ySep = new Float32Array(size), dz = new Float32Array(size), dxSep = new Float32Array(size);
      const dgSep = new Float32Array(C), dbSep = new Float32Array(C);
      k.batchNormForwardTrain(x, z, N, C, S, gamma, beta, a.rm, a.rv, 0.9, 1e-3, true, a.mean, a.rstd);
      k.activationForward(code, z, ySep, size, alpha);
      k.activationBackward(code, z, ySep, dy, dz, size, alpha);
      k.batchNormBackward(x, dz, dxSep, N, C, S, gamma, a.mean, a.rstd, null, null, dgSep, dbSep);

      const b = run();
      const y = new Float32Array(size), dx = new Float32Array(size), dg = new Float32Array(C), db = new Float32Array(C);
      k.batchNormForwardTrain(x, y, N, C, S, gamma, beta, b.rm, b.rv, 0.9, 1e-3, true, b.mean, b.rstd, code, alpha);
      k.batchNormBackward(x, dy, dx, N, C, S, gamma, b.mean, b.rstd, null, null, dg, db, code, alpha, y);

      expectClose(y, ySep, tol, 'y');
      expectClose(b.rm, a.rm, tol, 'running mean');
      expectClose(b.rv, a.rv, tol, 'running var');
      expectClose(dx, dxSep, { rtol: 1e-4, atol: 1e-5 }, 'dx');
      expectClose(dg, dgSep, { rtol: 1e-4, atol: 1e-5 }, 'dgamma');
      expectClose(db, dbSep, { rtol: 1e-4, atol: 1e-5 }, 'dbeta');
    });

    it.each(ACTIVATIONS)('batch renorm + %s forward and backward', (kind) => {
      const code = activationCode(kind);
      const alpha = kind === 'elu' ? 1 : 0.1;
      const x = randn(size), dy = randn(size), gamma = randn(C), beta = randn(C);
      // Every other channel's running statistics far off, so r and d are clipped there and not elsewhere.
      const run = () => ({
        mean: new Float32Array(C), rstd: new Float32Array(C), r: new Float32Array(C), d: new Float32Array(C),
        rm: Float32Array.from({ length: C }, (_, c) => (c % 2 ? 4 : 0.1)), rv: Float32Array.from({ length: C }, (_, c) => (c % 2 ? 0.05 : 1.2)),
      });
      const forward = (st: ReturnType<typeof run>, y: Float32Array, act?: number) =>
        k.batchRenormForwardTrain(x, y, N, C, S, gamma, beta, st.rm, st.rv, 0.9, 1e-3, 2, 1, true, st.mean, st.rstd, st.r, st.d, act, alpha);

      const a = run();
      const z = new Float32Array(size), ySep = new Float32Array(size), dz = new Float32Array(size), dxSep = new Float32Array(size);
      const dgSep = new Float32Array(C), dbSep = new Float32Array(C);
      forward(a, z);
      k.activationForward(code, z, ySep, size, alpha);
      k.activationBackward(code, z, ySep, dy, dz, size, alpha);
      k.batchNormBackward(x, dz, dxSep, N, C, S, gamma, a.mean, a.rstd, a.r, a.d, dgSep, dbSep);

      const b = run();
      const y = new Float32Array(size), dx = new Float32Array(size), dg = new Float32Array(C), db = new Float32Array(C);
      forward(b, y, code);
      k.batchNormBackward(x, dy, dx, N, C, S, gamma, b.mean, b.rstd, b.r, b.d, dg, db, code, alpha, y);

      expect(a.r.some((r) => r === 2) && a.r.some((r) => r > 0.5 && r < 2), 'r clipped on some channels only').toBe(true);
      expect(Array.from(b.r)).toEqual(Array.from(a.r));
      expect(Array.from(b.d)).toEqual(Array.from(a.d));
      expectClose(y, ySep, tol, 'y');
      expectClose(b.rm, a.rm, tol, 'running mean');
      expectClose(b.rv, a.rv, tol, 'running var');
      expectClose(dx, dxSep, { rtol: 1e-4, atol: 1e-5 }, 'dx');
      expectClose(dg, dgSep, { rtol: 1e-4, atol: 1e-5 }, 'dgamma');
      expectClose(db, dbSep, { rtol: 1e-4, atol: 1e-5 }, 'dbeta');
    });

    it.each(ACTIVATIONS)('bias + %s forward and backward', (kind) => {
      const code = activationCode(kind);
      const alpha = kind === 'elu' ? 1 : 0.1;
      const x = randn(size), bias = randn(C), dy = randn(size);
      const z = x.slice(), ySep = new Float32Array(size), dz = new Float32Array(size), dbSep = new Float32Array(C);
      k.addBias(z, bias, N, C, S);
      k.activationForward(code, z, ySep, size, alpha);
      k.activationBackward(code, z, ySep, dy, dz, size, alpha);
      k.biasGrad(dz, dbSep, N, C, S);

      const y = x.slice(), g = dy.slice(), db = new Float32Array(C);
      k.addBias(y, bias, N, C, S, code, alpha);
      k.biasGrad(g, db, N, C, S, code, alpha, y);
      expectClose(y, ySep, tol, 'y');
      expectClose(g, dz, tol, 'dy replaced by the pre-activation gradient');
      expectClose(db, dbSep, { rtol: 1e-4, atol: 1e-5 }, 'dbias');
    });
  });

  it('a NaN input stays NaN through the fused batch norm', () => {
    const x = Float32Array.of(1, Number.NaN, 3, 4);
    const y = new Float32Array(4);
    const rm = new Float32Array(1), rv = Float32Array.of(1);
    k.batchNormForwardTrain(x, y, 4, 1, 1, null, null, rm, rv, 0.9, 1e-3, true, new Float32Array(1), new Float32Array(1), activationCode('relu'), 0);
    expect(y[0]).toBeNaN();
    expect(rv[0]).toBeNaN();
  });
});
