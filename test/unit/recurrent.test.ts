/**
 * The recurrent layer (forward over a whole sequence, backpropagation through time, running
 * statistics, inference with frozen statistics) against PyTorch: nn.LSTM, nn.GRU and nn.RNN with
 * the same weights, and the sequence-wise (Deep Speech 2) and recurrent (Cooijmans et al.) batch
 * norm written out in torch (test/fixtures/make_fixtures.py), on the native and portable kernels.
 */
import { describe, expect, it } from 'vitest';
import { RecurrentLayer, type CellKind, type RecurrentBatchNorm, type RecurrentInfo } from '../../src/core/recurrent.js';
import { expectClose, type Tolerance } from '../helpers/gradcheck.js';
import { f32, fixture, kernelSets } from '../helpers/kernels.js';
import { bnConfig } from '../helpers/recurrent.js';

interface RecurrentCase {
  cell: CellKind; batchNorm: RecurrentBatchNorm; N: number; T: number; F: number; H: number; eps: number; momentum: number;
  params: Record<string, number[]>; x: number[]; y: number[]; dy: number[]; dx: number[];
  grads: Record<string, number[]>; running: Record<string, number[]>; infer: { x: number[]; y: number[] };
}

interface BidirectionalCase {
  cell: CellKind; N: number; T: number; F: number; H: number; x: number[]; y: number[]; dy: number[]; dx: number[];
  params: Record<string, number[]>; grads: Record<string, number[]>;
}

const { cases, bidirectional } = fixture<{ cases: RecurrentCase[]; bidirectional: BidirectionalCase[] }>('recurrent.json');
const TOL: Tolerance = { rtol: 1e-4, atol: 2e-5 };

/** The fixture's names without the _l0 suffix; running statistics are mean_ih / var_ih etc. there. */
function fixtureName(name: string): string {
  const plain = name.replace(/_l0$/, '');
  return plain.replace(/^running_(mean|var)_/, '$1_');
}

for (const [kname, k] of kernelSets) {
  describe(`recurrent layer against PyTorch: ${kname}`, () => {
    for (const c of cases) {
      it(`${c.cell}, batchNorm ${c.batchNorm}: outputs, every gradient, running statistics, inference`, () => {
        const info: RecurrentInfo = {
          index: 0, type: c.cell, steps: c.T, features: c.F, units: c.H, returnSequences: true, bidirectional: false, batchNorm: c.batchNorm,
        };
        const layer = new RecurrentLayer(info, k, c.N, true, bnConfig(c.momentum, c.eps), { updates: 1 });
        const tensors = layer.namedTensors();
        expect(tensors.filter((t) => !t.name.startsWith('running')).map((t) => fixtureName(t.name)).sort())
          .toEqual(Object.keys(c.params).sort());
        for (const t of tensors) {
          if (!t.name.startsWith('running')) t.value.set(c.params[fixtureName(t.name)]!);
        }
        const y = layer.forward(f32(c.x), c.N, true);
        expectClose(y.subarray(0, c.y.length), c.y, TOL, 'y');
        for (const t of tensors) {
          if (t.name.startsWith('running')) expectClose(t.value, c.running[fixtureName(t.name)]!, TOL, t.name);
        }
        const dx = layer.backward(f32(c.dy), c.N)!;
        expectClose(dx.subarray(0, c.dx.length), c.dx, TOL, 'dx');
        for (const p of layer.params) expectClose(p.grad, c.grads[fixtureName(p.name)]!, TOL, `d${p.name}`);
        const yInfer = layer.forward(f32(c.infer.x), 2, false);
        expectClose(yInfer.subarray(0, c.infer.y.length), c.infer.y, TOL, 'inference y');
      });
    }

    for (const c of bidirectional) {
      it(`${c.cell}, bidirectional (nn.${c.cell.toUpperCase()} bidirectional=True): every step's outputs, every gradient`, () => {
        const info: RecurrentInfo = {
          index: 0, type: c.cell, steps: c.T, features: c.F, units: c.H, returnSequences: true, bidirectional: true, batchNorm: 'none',
        };
        const layer = new RecurrentLayer(info, k, c.N, true, bnConfig(0.9, 1e-3), { updates: 1 });
        expect(layer.params.map((p) => p.name).sort()).toEqual(Object.keys(c.params).sort());
        for (const p of layer.params) p.value.set(c.params[p.name]!);
        const y = layer.forward(f32(c.x), c.N, true);
        expectClose(y.subarray(0, c.y.length), c.y, TOL, 'y');
        const dx = layer.backward(f32(c.dy), c.N)!;
        expectClose(dx.subarray(0, c.dx.length), c.dx, TOL, 'dx');
        for (const p of layer.params) expectClose(p.grad, c.grads[p.name]!, TOL, `d${p.name}`);
      });
    }
  });
}
