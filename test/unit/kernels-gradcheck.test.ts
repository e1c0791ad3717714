/**
 * Every backward kernel against central finite differences of its own
 * forward kernel (float32 data, float64 differences, h = 1e-2), for the
 * native and the portable kernels. The scalar loss is Σ w·y with random w,
 * so the upstream gradient is w.
 */
import { randn } from '../helpers/kernels.js';
import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/core/kernels/native.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import { ACTIVATIONS, activationCode, type Kernels } from '../../src/core/kernels/types.js';
import { createRng } from '../../src/core/rng.js';
import { dot, expectClose, numericGrad, type Tolerance } from '../helpers/gradcheck.js';

const GRAD: Tolerance = { rtol: 1e-2, atol: 1e-3 };

const implementations: [string, Kernels | null][] = [['native', loadNativeKernels()], ['portable', portableKernels]];

for (const [name, k] of implementations) {
  describe.skipIf(k === null)(`gradient checks: ${name}`, () => {
    const K = k!;

    // S = 37: the native kernels sum a plane in 16 lanes plus a tail.
    for (const [N, C, S] of [[5, 3, 1], [3, 2, 4], [2, 3, 37]] as const) {
      it(`batch norm backward: dx, dgamma, dbeta (N=${N} C=${C} S=${S})`, () => {
        const rng = createRng(100 + S);
        const size = N * C * S;
        const x = randn(rng, size, 2, 1);
        const gamma = randn(rng, C, 0.3, 1);
        const beta = randn(rng, C);
        const w = randn(rng, size);
        const y = new Float32Array(size);
        const mean = new Float32Array(C);
        const rstd = new Float32Array(C);
        const unused = new Float32Array(C);
        const forward = () => {
          K.batchNormForwardTrain(x, y, N, C, S, gamma, beta, unused, unused, 0.9, 1e-3, false, mean, rstd);
          return dot(w, y);
        };
        forward();
        const dx = new Float32Array(size);
        const dgamma = new Float32Array(C);
        const dbeta = new Float32Array(C);
        K.batchNormBackward(x, w, dx, N, C, S, gamma, mean, rstd, null, null, dgamma, dbeta);
        const numericDx = numericGrad(forward, x);
        expectClose(dx, numericDx, GRAD, 'dx');
        expectClose(dgamma, numericGrad(forward, gamma), GRAD, 'dgamma');
        expectClose(dbeta, numericGrad(forward, beta), GRAD, 'dbeta');

        // The check has teeth: dropping the xhat·Σ(dy·xhat) term must fail it.
        const wrong = new Float32Array(size);
        for (let c = 0; c < C; c++) {
          let sum = 0;
          for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) sum += w[(n * C + c) * S + s]!;
          for (let n = 0; n < N; n++) {
            for (let s = 0; s < S; s++) {
              const i = (n * C + c) * S + s;
              wrong[i] = gamma[c]! * rstd[c]! * (w[i]! - sum / (N * S));
            }
          }
        }
        expect(() => expectClose(wrong, numericDx, GRAD, 'wrong dx')).toThrow(/outside/);
      });
    }

    for (const kind of ACTIVATIONS) {
      it(`${kind} backward`, () => {
        const rng = createRng(200 + activationCode(kind));
        const n = 40;
        // Keep x at least 5h from the kinks of relu, leaky_relu and elu at 0.
        const x = randn(rng, n, 2).map((v) => (Math.abs(v) < 0.05 ? v + Math.sign(v || 1) * 0.1 : v));
        const w = randn(rng, n);
        const y = new Float32Array(n);
        const code = activationCode(kind);
        const alpha = kind === 'leaky_relu' ? 0.1 : 1.0;
        const forward = () => {
          K.activationForward(code, x, y, n, alpha);
          return dot(w, y);
        };
        forward();
        const dx = new Float32Array(n);
        K.activationBackward(code, x, y, w, dx, n, alpha);
        expectClose(dx, numericGrad(forward, x), GRAD, kind);
      });
    }

    it('softmax cross-entropy backward', () => {
      const rng = createRng(300);
      const [N, C] = [4, 5];
      const logits = randn(rng, N * C, 2);
      const labels = Int32Array.of(0, 3, 4, 3);
      const probs = new Float32Array(N * C);
      const forward = () => K.softmaxCrossEntropy(logits, labels, probs, N, C, null);
      forward();
      const dlogits = new Float32Array(N * C);
      K.softmaxCrossEntropyBackward(probs, labels, dlogits, N, C);
      // The loss is already a mean, so the gradients are small: a tighter atol.
      expectClose(dlogits, numericGrad(forward, logits), { rtol: 1e-2, atol: 1e-4 }, 'dlogits');
    });

    it('bias gradient is the gradient of addBias', () => {
      const rng = createRng(400);
      const [N, C, S] = [3, 4, 2];
      const x0 = randn(rng, N * C * S);
      const bias = randn(rng, C);
      const w = randn(rng, N * C * S);
      const x = new Float32Array(x0.length);
      const forward = () => {
        x.set(x0);
        K.addBias(x, bias, N, C, S);
        return dot(w, x);
      };
      const dbias = new Float32Array(C);
      K.biasGrad(w, dbias, N, C, S);
      expectClose(dbias, numericGrad(forward, bias), GRAD, 'dbias');
    });
  });
}
