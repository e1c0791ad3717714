/**
 * The recurrent cell kernels and the whole recurrent layer (every cell, every batch-norm
 * variant, one or two directions, last step or whole sequence) against central finite
 * differences of their own forward (float32 data, float64 differences, h = 1e-2), for the native
 * and the portable kernels. The scalar loss is Σ w·y with random w.
 */
import { describe, expect, it } from 'vitest';
import { activationCode } from '../../src/core/kernels/types.js';
import { CELLS, RecurrentLayer, type RecurrentBatchNorm, type RecurrentInfo } from '../../src/core/layers/recurrent.js';
import { createRng } from '../../src/core/rng.js';
import { dot, expectClose, numericGrad, type Tolerance } from '../helpers/gradcheck.js';
import { kernelSets, randn } from '../helpers/kernels.js';
import { bnConfig } from '../helpers/recurrent.js';

const GRAD: Tolerance = { rtol: 1e-2, atol: 1e-3 };
const [N, H] = [3, 4];

for (const [name, K] of kernelSets) {
  describe(`recurrent gradient checks: ${name}`, () => {
    it('LSTM cell and output: d(xg, hg), dcPrev, dz, with the upstream gradient split into dh + dhNext and dz + dcNext', () => {
      const rng = createRng(700);
      const xg = randn(rng, N * 4 * H, 1.5);
      const hg = randn(rng, N * 4 * H, 0.5);
      const cPrev = randn(rng, N * H);
      const z = randn(rng, N * H, 1.5);
      const [wh1, wh2, wc] = [randn(rng, N * H), randn(rng, N * H), randn(rng, N * H)];
      const wh = wh1.map((v, i) => v + wh2[i]!);
      const gates = new Float32Array(N * 4 * H);
      const c = new Float32Array(N * H);
      const h = new Float32Array(N * H);
      // h = o·tanh(c): both paths of c_t.
      const forward = () => {
        K.lstmCellForward(xg, hg, cPrev, gates, c, N, H);
        K.lstmOutputForward(gates, c, h, N, H);
        return dot(wh, h) + dot(wc, c);
      };
      forward();
      const dgates = new Float32Array(N * 4 * H);
      const dz = new Float32Array(N * H);
      const dcPrev = new Float32Array(N * H);
      K.lstmOutputBackward(gates, c, wh1, wh2, dz, dgates, N, H);
      K.lstmCellBackward(gates, cPrev, dz, wc, dgates, dcPrev, N, H);
      const numericXg = numericGrad(forward, xg);
      expectClose(dgates, numericXg, GRAD, 'dxg');
      expectClose(dgates, numericGrad(forward, hg), GRAD, 'dhg');
      expectClose(dcPrev, numericGrad(forward, cPrev), GRAD, 'dcPrev');
      // Teeth: without the dcNext term the gradients are wrong.
      K.lstmOutputBackward(gates, c, wh1, wh2, dz, dgates, N, H);
      K.lstmCellBackward(gates, cPrev, dz, null, dgates, dcPrev, N, H);
      expect(() => expectClose(dgates, numericXg, GRAD, 'without dcNext')).toThrow(/outside/);
      // h = o·tanh(z), z independent of c (the normalized cell of recurrent batch norm).
      const forwardZ = () => {
        K.lstmCellForward(xg, hg, cPrev, gates, c, N, H);
        K.lstmOutputForward(gates, z, h, N, H);
        return dot(wh, h);
      };
      forwardZ();
      K.lstmOutputBackward(gates, z, wh, null, dz, dgates, N, H);
      expectClose(dz, numericGrad(forwardZ, z), GRAD, 'dz');
      const numericO = numericGrad(forwardZ, xg);
      for (let n = 0; n < N; n++) {
        for (let j = 3 * H; j < 4 * H; j++) expect(dgates[n * 4 * H + j]).toBeCloseTo(numericO[n * 4 * H + j]!, 2);
      }
    });

    it('GRU cell: dxg, dhg (they differ in the n block), the direct dhPrev', () => {
      const rng = createRng(701);
      const xg = randn(rng, N * 3 * H, 1.5);
      const hg = randn(rng, N * 3 * H, 1.0);
      const hPrev = randn(rng, N * H);
      const [w1, w2] = [randn(rng, N * H), randn(rng, N * H)];
      const w = w1.map((v, i) => v + w2[i]!);
      const gates = new Float32Array(N * 3 * H);
      const h = new Float32Array(N * H);
      const forward = () => {
        K.gruCellForward(xg, hg, hPrev, gates, h, N, H);
        return dot(w, h);
      };
      forward();
      const dxg = new Float32Array(N * 3 * H);
      const dhg = new Float32Array(N * 3 * H);
      const dhPrev = w2.slice(); // aliases dhNext, as the layer does
      K.gruCellBackward(gates, hg, hPrev, w1, dhPrev, dxg, dhg, dhPrev, N, H);
      expectClose(dxg, numericGrad(forward, xg), GRAD, 'dxg');
      const numericHg = numericGrad(forward, hg);
      expectClose(dhg, numericHg, GRAD, 'dhg');
      expect(() => expectClose(dxg, numericHg, GRAD, 'dxg as dhg')).toThrow(/outside/);
      expectClose(dhPrev, numericGrad(forward, hPrev), GRAD, 'dhPrev');
    });

    for (const kind of ['tanh', 'relu'] as const) {
      it(`Elman cell (${kind}): d(xg + hg)`, () => {
        const rng = createRng(702);
        const xg = randn(rng, N * H, 1.5).map((v) => (Math.abs(v) < 0.05 ? v + 0.1 : v)); // away from relu's kink
        const hg = new Float32Array(N * H);
        const [w1, w2] = [randn(rng, N * H), randn(rng, N * H)];
        const w = w1.map((v, i) => v + w2[i]!);
        const h = new Float32Array(N * H);
        const code = activationCode(kind);
        const forward = () => {
          K.rnnCellForward(xg, hg, h, N, H, code);
          return dot(w, h);
        };
        forward();
        const da = new Float32Array(N * H);
        K.rnnCellBackward(h, w1, w2, da, N, H, code);
        expectClose(da, numericGrad(forward, xg), GRAD, 'da');
      });
    }

    const variants: Array<[RecurrentBatchNorm, boolean, boolean]> = [
      ['none', false, false], ['sequence', true, false], ['recurrent', false, true], ['recurrent', true, true],
    ];
    for (const cell of CELLS) {
      for (const [batchNorm, bidirectional, returnSequences] of variants) {
        it(`${cell} layer, batchNorm ${batchNorm}${bidirectional ? ', bidirectional' : ''}${returnSequences ? ', whole sequence' : ', last step'}: dx and every parameter`, () => {
          const rng = createRng(710 + CELLS.indexOf(cell));
          const info: RecurrentInfo = { index: 0, type: cell, steps: 3, features: 3, units: 3, returnSequences, bidirectional, batchNorm };
          const n = 8;
          const layer = new RecurrentLayer(info, K, n, true, bnConfig(0.9, 1e-3), { updates: 1 });
          layer.initialize(rng);
          // Biases, γ and β away from their initial values, so every term carries gradient.
          for (const p of layer.params) if (!p.name.startsWith('weight')) p.value.set(randn(rng, p.value.length, 0.3, p.name.startsWith('gamma') ? 1 : 0));
          const x = randn(rng, n * info.steps * info.features);
          const w = randn(rng, n * layer.outputSize);
          const forward = () => dot(w, layer.forward(x, n, true).subarray(0, n * layer.outputSize));
          forward();
          const dx = layer.backward(w, n)!.slice(0, x.length);
          const grads = layer.params.map((p) => p.grad.slice());
          // Batch norm over 8 rows curves the loss enough that h = 1e-2 leaves a truncation error of
          // about 1e-1 (it falls as h², so the analytic gradient is right); 1e-3 is still above float32 noise.
          const h = batchNorm === 'none' ? 1e-2 : 1e-3;
          expectClose(dx, numericGrad(forward, x, h), GRAD, 'dx');
          layer.params.forEach((p, i) => expectClose(grads[i]!, numericGrad(forward, p.value, h), GRAD, `d${p.name}`));
        });
      }
    }
  });
}
