/**
 * Batch-norm diagnostics: the batch-statistics forward behind the
 * train/inference gap, per-channel statistics averaged over an epoch's
 * batches, the misuse warnings (each fires on its case, none on a clean
 * spec) and BN_STATS_LAG with inferenceStats auto.
 */
import { describe, expect, it } from 'vitest';
import { batchNormEpoch, miniBatchMetrics } from '../../src/core/diagnostics.js';
import type { TrainEvent } from '../../src/core/events.js';
import { expandLayers } from '../../src/core/layers.js';
import { Sequential } from '../../src/core/model.js';
import { createRng } from '../../src/core/rng.js';
import { resolveSpec } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import { inputSkewWarning, specWarnings } from '../../src/core/warnings.js';
import { loadBuiltinDataset } from '../../src/datasets/index.js';
import { kernelSets } from '../helpers/kernels.js';

function randomRows(n: number, f: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n * f }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 4 - 1);
}

function modelFor(modelSpec: object, features: number, classes: number, maxBatch: number, k: any, bn: object = {}) {
  const spec = resolveSpec({ dataset: { id: 'spirals' }, model: modelSpec, batchNorm: bn });
  const rng = createRng(3);
  const model = new Sequential(expandLayers(spec.model, [features], classes), k, maxBatch, features, spec.batchNorm, rng);
  model.initialize('he', rng);
  return model;
}

describe.each(kernelSets)('batch statistics forward (%s kernels)', (_name, k) => {
  // Renormalization starts as plain batch norm (its clip limits grow from 1 and 0 over the warm-up).
  it.each([['plain', {}], ['ghost', { virtualBatchSize: 4 }], ['renorm', { renorm: {} }]])('gives the training-mode output and leaves the running statistics alone (%s)', (_label, bn) => {
    const x = randomRows(16, 5, 1);
    const a = modelFor({ hidden: [8, 6], batchNorm: 'before' }, 5, 3, 16, k, bn);
    const b = modelFor({ hidden: [8, 6], batchNorm: 'before' }, 5, 3, 16, k, bn);
    const before = a.batchNorms().map((bn) => [...bn.runningMean, ...bn.runningVar]);
    const probe = a.forwardBatchStatistics(x, 16).slice();
    expect(a.batchNorms().map((bn) => [...bn.runningMean, ...bn.runningVar])).toEqual(before);
    const trained = b.forward(x, 16, true);
    for (let i = 0; i < probe.length; i++) expect(probe[i]).toBeCloseTo(trained[i]!, 5);
    // …and differs from the frozen (inference) output while the running statistics are still at their start.
    expect(Math.max(...a.forward(x, 16, false).map((v, i) => Math.abs(v - probe[i]!)))).toBeGreaterThan(1e-3);
  });

  it('normalizes conv channels over N·H·W the same way (batchnorm2d)', () => {
    const spec = resolveSpec({ dataset: { id: 'spirals' }, model: { architecture: 'cnn', conv: [4], dense: [6], batchNorm: 'before' } });
    const build = () => {
      const rng = createRng(4);
      const model = new Sequential(expandLayers(spec.model, [1, 6, 6], 3), k, 8, 36, spec.batchNorm, rng);
      model.initialize('he', rng);
      return model;
    };
    const x = randomRows(8, 36, 3);
    const a = build();
    const probe = a.forwardBatchStatistics(x, 8).slice();
    const b = build();
    b.batchNorms().forEach((bn) => bn.resetEpochStatistics());
    const trained = b.forward(x, 8, true);
    for (let i = 0; i < probe.length; i++) expect(probe[i]).toBeCloseTo(trained[i]!, 4);
    const record = batchNormEpoch(b).channels[0]!;
    expect(record).toMatchObject({ kind: 'batchnorm2d', channels: 4, frozen: false });
    expect(record.batchMean).toHaveLength(4);
  });

  it('leaves dropout out', () => {
    const x = randomRows(12, 4, 2);
    const withDropout = modelFor({ hidden: [8], batchNorm: 'before', dropout: 0.5 }, 4, 2, 12, k);
    const without = modelFor({ hidden: [8], batchNorm: 'before' }, 4, 2, 12, k);
    expect([...withDropout.forwardBatchStatistics(x, 12)]).toEqual([...without.forwardBatchStatistics(x, 12)]);
  });

  it('averages per-channel batch statistics over the epoch, and has none while frozen', () => {
    const f = 3;
    const model = modelFor({ hidden: [4], batchNorm: 'input' }, f, 2, 8, k);
    const inputBn = model.batchNorms()[0]!;
    inputBn.resetEpochStatistics();
    const batches = [randomRows(8, f, 5), randomRows(6, f, 6)];
    const expectedMean = new Array(f).fill(0);
    const expectedVar = new Array(f).fill(0);
    for (const xb of batches) {
      const n = xb.length / f;
      model.forward(xb, n, true);
      for (let j = 0; j < f; j++) {
        const col = Array.from({ length: n }, (_, r) => xb[r * f + j]!);
        const m = col.reduce((s, v) => s + v, 0) / n;
        expectedMean[j] += m / batches.length;
        expectedVar[j] += col.reduce((s, v) => s + (v - m) ** 2, 0) / (n - 1) / batches.length;
      }
    }
    const stats = inputBn.epochStatistics()!;
    for (let j = 0; j < f; j++) {
      expect(stats.mean[j]).toBeCloseTo(expectedMean[j], 5);
      expect(stats.variance[j]).toBeCloseTo(expectedVar[j], 4);
    }
    const record = batchNormEpoch(model).channels[0]!;
    expect(record).toMatchObject({ layer: 0, kind: 'batchnorm1d', channels: f, frozen: false });
    expect(record.batchMean).toHaveLength(f);
    model.freezeBatchNorm();
    inputBn.resetEpochStatistics();
    model.forward(batches[0]!, 8, true);
    const frozen = batchNormEpoch(model);
    expect(frozen.channels[0]).toMatchObject({ frozen: true, batchMean: null, batchVar: null });
    expect(frozen.summary[0]).toMatchObject({ batchMean: null, batchVar: null, meanDistance: null });
  });

  it('measures mini-batches in order, a last batch of one row joining the one before', () => {
    const model = modelFor({ hidden: [6], batchNorm: 'before' }, 4, 3, 64, k);
    const n = 9;
    const x = randomRows(n, 4, 9);
    const y = Int32Array.from({ length: n }, (_, i) => i % 3);
    const rows = { x, y, n };
    const all = miniBatchMetrics(model, rows, null, 4, 3, false); // batches of 4 and 5
    const idx = Int32Array.from({ length: n }, (_, i) => i);
    expect(miniBatchMetrics(model, rows, idx, 4, 3, false)).toEqual(all);
    const firstFour = miniBatchMetrics(model, { x: x.subarray(0, 16), y: y.subarray(0, 4), n: 4 }, null, 4, 3, false);
    const lastFive = miniBatchMetrics(model, { x: x.subarray(16), y: y.subarray(4), n: 5 }, null, 5, 3, false);
    expect(all.loss).toBeCloseTo((firstFour.loss * 4 + lastFive.loss * 5) / 9, 6);
  });
});

describe('warnings', () => {
  const layersOf = (spec: ReturnType<typeof resolveSpec>) => expandLayers(spec.model, [2], 2);
  const codes = (input: Record<string, unknown>) => {
    const spec = resolveSpec({ dataset: { id: 'spirals' }, ...input });
    return specWarnings(spec, layersOf(spec)).map((w) => w.code);
  };

  it('stays silent on a clean spec', () => {
    expect(codes({})).toEqual([]);
    expect(codes({ model: { layers: [{ type: 'dense', units: 8 }, { type: 'batchnorm' }, { type: 'relu' }] }, training: { batchSize: 8 } })).toEqual([]);
    expect(codes({ batchNorm: { momentum: 0.9 }, training: { epochs: 5, freezeBatchNormAfterEpoch: 4 } })).toEqual([]);
    // Without batch norm none of them applies.
    expect(codes({ model: { batchNorm: 'none', dropout: 0.5 }, batchNorm: { momentum: 0.1 }, training: { batchSize: 2 } })).toEqual([]);
  });

  const CASES: Array<[string, Record<string, unknown>]> = [
    ['BN_WITH_DROPOUT', { model: { dropout: 0.3 } }],
    ['BN_MOMENTUM_CONVENTION', { batchNorm: { momentum: 0.1 } }],
    ['BN_FREEZE_NEVER', { training: { epochs: 5, freezeBatchNormAfterEpoch: 5 } }],
    ['BN_SMALL_BATCH', { training: { batchSize: 4 } }],
    ['BN_SMALL_BATCH', { batchNorm: { virtualBatchSize: 4 } }],
    ['BN_REDUNDANT_BIAS', { model: { layers: [{ type: 'dense', units: 8, bias: true }, { type: 'batchnorm' }, { type: 'relu' }] } }],
  ];
  it.each(CASES)('%s fires on its case, alone', (code, input) => {
    expect(codes(input)).toEqual([code]);
  });

  it('BN_WITH_DROPOUT names the layers', () => {
    const spec = resolveSpec({ dataset: { id: 'spirals' }, model: { hidden: [8, 8], dropout: 0.2 } });
    const w = specWarnings(spec, layersOf(spec))[0]!;
    expect(w.details).toEqual({ dropoutLayers: [3, 7], batchNormLayers: [1, 5] });
    expect(w.message).toContain('layers 3, 7');
  });

  it('BN_SMALL_BATCH stays silent with renorm', () => {
    expect(codes({ batchNorm: { renorm: {} }, training: { batchSize: 4 } })).toEqual([]);
  });

  it('the redundant bias is dropped', () => {
    const spec = resolveSpec({ dataset: { id: 'spirals' }, model: { layers: [{ type: 'dense', units: 8, bias: true }, { type: 'batchnorm' }] } });
    expect(layersOf(spec)[0]).toMatchObject({ type: 'dense', bias: false });
  });

  it('BN_INPUT_SKEWED fires on skewed or bimodal inputs to input batch norm, not on Gaussian-like or uniform ones, nor without input BN', () => {
    const n = 2000;
    const f = 4;
    const skewed = new Float32Array(n * f);
    const bimodal = new Float32Array(n * f);
    const symmetric = new Float32Array(n * f);
    const uniform = new Float32Array(n * f);
    let s = 7;
    const u = () => (s = (s * 16807) % 2147483647) / 2147483647;
    for (let i = 0; i < n * f; i++) {
      skewed[i] = u() < 0.9 ? 0 : u(); // mostly zeros, as dark pixels
      bimodal[i] = (u() < 0.5 ? 0 : 1) + 0.05 * u(); // dark or bright
      symmetric[i] = u() + u() + u() - 1.5;
      uniform[i] = u();
    }
    const input = resolveSpec({ dataset: { id: 'spirals' }, model: { batchNorm: 'input' } });
    const before = resolveSpec({ dataset: { id: 'spirals' } });
    const w = inputSkewWarning(expandLayers(input.model, [f], 2), skewed, n, f);
    expect(w).toMatchObject({ code: 'BN_INPUT_SKEWED', details: { nonGaussianFeatures: 4, features: 4 } });
    expect(inputSkewWarning(expandLayers(input.model, [f], 2), bimodal, n, f)).toMatchObject({ code: 'BN_INPUT_SKEWED' });
    expect(inputSkewWarning(expandLayers(input.model, [f], 2), symmetric, n, f)).toBeNull();
    expect(inputSkewWarning(expandLayers(input.model, [f], 2), uniform, n, f)).toBeNull();
    expect(inputSkewWarning(expandLayers(before.model, [f], 2), skewed, n, f)).toBeNull();
  });
});

describe('training reports the gap, warnings and the statistics it keeps', () => {
  const spiralsSpec = (over: Record<string, any>) => resolveSpec({
    dataset: { id: 'spirals', size: 2000 }, model: { hidden: [64, 64], batchNorm: 'before' }, training: { epochs: 5 }, ...over,
  });

  it('5 epochs of spirals: a large gap every epoch and BN_STATS_LAG naming the layers; auto (the default) keeps the population statistics', async () => {
    const spec = spiralsSpec({ batchNorm: { inferenceStats: 'moving' } });
    const ds = await loadBuiltinDataset(spec.dataset, spec.training.seed);
    const events: TrainEvent[] = [];
    const moving = await train(spec, ds, { onEvent: (e) => events.push(e) });
    const epochs = moving.history;
    for (const e of epochs) {
      expect(e.gap).toMatchObject({ split: 'val', frozen: { accuracy: e.val!.accuracy } });
      expect(e.gap!.accuracy).toBeCloseTo(e.gap!.batch.accuracy - e.gap!.frozen.accuracy, 6);
    }
    expect(epochs.at(-1)!.gap!.accuracy).toBeGreaterThan(0.1);
    const lag = events.find((e): e is Extract<TrainEvent, { type: 'warning' }> => e.type === 'warning' && e.code === 'BN_STATS_LAG')!;
    expect(lag.details).toMatchObject({ split: 'val', kept: 'moving', layers: expect.arrayContaining([1]) });
    expect(lag.message).toMatch(/inferenceStats/);
    expect(moving.metrics).toMatchObject({ inferenceStats: 'moving', gap: { split: 'val' } });

    const autoEvents: TrainEvent[] = [];
    const auto = await train(spiralsSpec({}), ds, { onEvent: (e) => autoEvents.push(e) });
    // Same training, so the same comparison and warning; only the statistics kept differ.
    expect(autoEvents.find((e) => e.type === 'warning' && e.code === 'BN_STATS_LAG')).toMatchObject({ details: { kept: 'population' } });
    expect(auto.metrics.inferenceStats).toBe('population');
    expect(auto.artifact.manifest.inferenceStats).toBe('population');
    expect(auto.metrics.val!.accuracy).toBeGreaterThan(moving.metrics.val!.accuracy + 0.1);
    expect((lag.details as any).population.accuracy).toBeCloseTo(auto.metrics.val!.accuracy, 6);
  });

  it('no BN_STATS_LAG when the moving averages have caught up; the gap is on the training rows without a validation split', async () => {
    const spec = spiralsSpec({ dataset: { id: 'spirals', size: 2000, validationSplit: 0 }, batchNorm: { momentum: 0.9 }, training: { epochs: 10, batchSize: 32 } });
    const warnings: string[] = [];
    const result = await train(spec, await loadBuiltinDataset(spec.dataset, spec.training.seed), {
      onEvent: (e) => { if (e.type === 'warning') warnings.push(e.code); },
    });
    expect(warnings).toEqual([]);
    expect(result.history[0]!.gap!.split).toBe('train');
    expect(Math.abs(result.history.at(-1)!.gap!.accuracy)).toBeLessThan(0.05);
  });

  it('BN_INPUT_SKEWED on the pixels of Fashion-MNIST (installed) with input batch norm, not on spirals', async () => {
    const codes = async (dataset: object) => {
      const spec = resolveSpec({ dataset, model: { hidden: [16], batchNorm: 'input' }, training: { epochs: 1 } });
      const out: string[] = [];
      await train(spec, await loadBuiltinDataset(spec.dataset, spec.training.seed), { onEvent: (e) => { if (e.type === 'warning') out.push(e.code); } });
      return out;
    };
    expect(await codes({ id: 'fashion-mnist', limit: 600 })).toContain('BN_INPUT_SKEWED');
    expect(await codes({ id: 'spirals', size: 600 })).not.toContain('BN_INPUT_SKEWED');
  });

  it('no gap without batch norm', async () => {
    const spec = spiralsSpec({ model: { hidden: [8], batchNorm: 'none' }, training: { epochs: 1 } });
    const result = await train(spec, await loadBuiltinDataset(spec.dataset, spec.training.seed));
    expect(result.history[0]!.gap).toBeNull();
    expect(result.history[0]!.bn).toEqual([]);
    expect(result.metrics.gap).toBeNull();
  });
});
