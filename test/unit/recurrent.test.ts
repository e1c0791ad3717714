/**
 * The recurrent layer (forward over a whole sequence, backpropagation through time, running
 * statistics, inference with frozen statistics) against PyTorch: nn.LSTM, nn.GRU and nn.RNN with
 * the same weights, and the sequence-wise (Deep Speech 2) and recurrent (Cooijmans et al.) batch
 * norm written out in torch (test/fixtures/make_fixtures.py), on the native and portable kernels.
 */
import { describe, expect, it } from 'vitest';
import {
  CELLS, RecurrentInference, recurrentInferenceWeights, RecurrentLayer, type CellKind, type ElmanNonlinearity, type RecurrentBatchNorm,
  type RecurrentInfo,
} from '../../src/core/layers/recurrent.js';
import { createRng, nextFloat } from '../../src/core/rng.js';
import { expectClose, type Tolerance } from '../helpers/gradcheck.js';
import { f32, fixture, kernelSets, randn } from '../helpers/kernels.js';
import { bnConfig } from '../helpers/recurrent.js';

interface RecurrentCase {
  cell: CellKind; nonlinearity?: ElmanNonlinearity; batchNorm: RecurrentBatchNorm; N: number; T: number; F: number; H: number; eps: number; momentum: number;
  params: Record<string, number[]>; x: number[]; y: number[]; dy: number[]; dx: number[];
  grads: Record<string, number[]>; running: Record<string, number[]>; infer: { x: number[]; y: number[] };
}

interface BidirectionalCase {
  cell: CellKind; nonlinearity?: ElmanNonlinearity; N: number; T: number; F: number; H: number; x: number[]; y: number[]; dy: number[]; dx: number[];
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
      it(`${c.cell}${c.nonlinearity ? ` (${c.nonlinearity})` : ''}, batchNorm ${c.batchNorm}: outputs, every gradient, running statistics, inference`, () => {
        const info: RecurrentInfo = {
          index: 0, type: c.cell, steps: c.T, features: c.F, units: c.H, returnSequences: true, bidirectional: false, batchNorm: c.batchNorm,
          ...(c.nonlinearity ? { nonlinearity: c.nonlinearity } : {}),
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
      it(`${c.cell}${c.nonlinearity ? ` (${c.nonlinearity})` : ''}, bidirectional (nn.${c.cell.toUpperCase()} bidirectional=True): every step's outputs, every gradient`, () => {
        const info: RecurrentInfo = {
          index: 0, type: c.cell, steps: c.T, features: c.F, units: c.H, returnSequences: true, bidirectional: true, batchNorm: 'none',
          ...(c.nonlinearity ? { nonlinearity: c.nonlinearity } : {}),
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

for (const [kname, k] of kernelSets) {
  describe(`recurrent inference form: ${kname}`, () => {
    const variants: [CellKind, ElmanNonlinearity | undefined][] = [...CELLS.map((c) => [c, undefined] as [CellKind, undefined]), ['rnn', 'relu']];
    for (const [cell, nonlinearity] of variants) {
      for (const [batchNorm, bidirectional, returnSequences] of [['none', false, false], ['sequence', true, false], ['recurrent', false, true],
        ['recurrent', true, false]] as const) {
        it(`${cell}${nonlinearity ? ` (${nonlinearity})` : ''}, batchNorm ${batchNorm}${bidirectional ? ', bidirectional' : ''}: the training layer's inference output, the same bytes at any batch position and size`, () => {
          const info: RecurrentInfo = {
            index: 0, type: cell, steps: 5, features: 3, units: 4, returnSequences, bidirectional, batchNorm, ...(nonlinearity ? { nonlinearity } : {}),
          };
          const rng = createRng(800 + CELLS.indexOf(cell));
          const batch = 16;
          const layer = new RecurrentLayer(info, k, batch, false, bnConfig(0.5, 1e-3), { updates: 1 });
          layer.initialize(rng);
          for (const p of layer.params) if (!p.name.startsWith('weight')) p.value.set(randn(rng, p.value.length, 0.3, p.name.startsWith('gamma') ? 1 : 0));
          const features = info.steps * info.features;
          for (let i = 0; i < 3; i++) layer.forward(randn(rng, batch * features, 1.5, 0.3), batch, true); // statistics off their start
          const tensors = new Map(layer.namedTensors().map((t) => [t.name, t.value]));
          const op = new RecurrentInference(info, recurrentInferenceWeights(info, (name) => tensors.get(name) ?? null, 1e-3), k);
          const pool = 12;
          const x = randn(rng, pool * features, 1.5);
          const out = layer.outputSize;
          const alone = new Float32Array(pool * out);
          const one = new Float32Array(out);
          for (let r = 0; r < pool; r++) {
            op.run(x.subarray(r * features, (r + 1) * features), one, 1, 1e-3);
            alone.set(one, r * out);
          }
          expectClose(alone, layer.forward(x, pool, false).subarray(0, pool * out), { rtol: 1e-4, atol: 1e-5 }, 'inference op vs layer');
          const rows = new Float32Array(40 * features);
          const y = new Float32Array(40 * out);
          let mismatches = 0;
          for (let n = 1; n <= 40; n++) {
            const picks = Array.from({ length: n }, () => Math.floor(nextFloat(rng) * pool));
            picks.forEach((p, i) => rows.set(x.subarray(p * features, (p + 1) * features), i * features));
            op.run(rows, y, n, 1e-3);
            picks.forEach((p, i) => {
              for (let j = 0; j < out; j++) if (!Object.is(y[i * out + j], alone[p * out + j])) mismatches++;
            });
          }
          expect(mismatches).toBe(0);
        });
      }
    }
  });
}

describe('recurrent batch statistics', () => {
  const k = kernelSets[kernelSets.length - 1]![1];
  it('sequence: population statistics are the exact per-unit mean and unbiased variance of W_ih·x over every row and step', () => {
    const info: RecurrentInfo = { index: 2, type: 'gru', steps: 4, features: 3, units: 2, returnSequences: false, bidirectional: true, batchNorm: 'sequence' };
    const rng = createRng(900);
    const layer = new RecurrentLayer(info, k, 8, false, bnConfig(0.9, 1e-3), { updates: 1 });
    layer.initialize(rng);
    const rows = 13;
    const x = randn(rng, rows * 12, 2, 1);
    layer.beginPopulation();
    layer.accumulatePopulation(x.subarray(0, 8 * 12), 8);
    layer.accumulatePopulation(x.subarray(8 * 12), rows - 8);
    layer.finishPopulation();
    const sets = layer.statistics();
    expect(sets.map((s) => [s.kind, s.channels])).toEqual([['sequence-ih', 6], ['sequence-ih-reverse', 6]]);
    const w = layer.params.find((p) => p.name === 'weight_ih_l0')!.value;
    for (let j = 0; j < 6; j++) {
      const v: number[] = [];
      for (let r = 0; r < rows * 4; r++) v.push(w[j * 3]! * x[r * 3]! + w[j * 3 + 1]! * x[r * 3 + 1]! + w[j * 3 + 2]! * x[r * 3 + 2]!);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1);
      expect(sets[0]!.runningMean[j]).toBeCloseTo(mean, 4);
      expect(sets[0]!.runningVar[j]).toBeCloseTo(variance, 3);
    }
  });

  it('recurrent: one set per term with per-step channels; epoch sums average the batches; population leaves the moving averages', () => {
    const info: RecurrentInfo = { index: 0, type: 'lstm', steps: 3, features: 2, units: 2, returnSequences: false, bidirectional: false, batchNorm: 'recurrent' };
    const rng = createRng(901);
    const layer = new RecurrentLayer(info, k, 8, false, bnConfig(0.9, 1e-3), { updates: 1 });
    layer.initialize(rng);
    const x = randn(rng, 8 * 6, 1, 0.5);
    layer.resetEpochStatistics();
    expect(layer.statistics()[0]!.epochStatistics()).toBeNull();
    layer.forward(x, 8, true);
    layer.forward(x, 8, true);
    const sets = layer.statistics();
    expect(sets.map((s) => [s.kind, s.channels])).toEqual([['recurrent-ih', 24], ['recurrent-hh', 24], ['recurrent-c', 6]]);
    expect(sets[0]!.gamma!.every((g) => Math.abs(g - 0.1) < 1e-7)).toBe(true); // Cooijmans' initial γ, tiled per step
    const epoch = sets[0]!.epochStatistics()!;
    const w = layer.params.find((p) => p.name === 'weight_ih_l0')!.value;
    // Step 1, unit 0 of the input term: the mean over the 8 rows of W_ih·x_1 (the same batch twice).
    let sum = 0;
    for (let r = 0; r < 8; r++) sum += w[0]! * x[(r * 3 + 1) * 2]! + w[1]! * x[(r * 3 + 1) * 2 + 1]!;
    expect(epoch.mean[8]).toBeCloseTo(sum / 8, 5);
    const before = sets.map((s) => s.runningMean.slice());
    layer.beginPopulation();
    layer.accumulatePopulation(x, 8);
    layer.finishPopulation();
    sets.forEach((s, i) => expect(s.runningMean).toEqual(before[i]));
  });
});
