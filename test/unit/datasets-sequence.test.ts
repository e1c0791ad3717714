/** Rows as sequences: the `sines` set, dataset.sequence reshaping, listings' sequence shapes, an MLP and a GRU on [T, F] rows. */
import { describe, expect, it } from 'vitest';
import { resolveSpec, SpecError, type DatasetSpec } from '../../src/core/spec.js';
import { InferenceModel } from '../../src/core/inference.js';
import { train } from '../../src/core/train.js';
import {
  applyDatasetSpec, jobInputShape, listBuiltinDatasets, loadBuiltinDataset, parseCsvDataset, sequenceShape,
} from '../../src/datasets/index.js';
import { generateSynthetic } from '../../src/datasets/synthetic.js';

function spec(id: string, extra: Partial<DatasetSpec> = {}): DatasetSpec {
  return { id, validationSplit: 0.1, preprocess: 'scale', limit: null, size: 2000, noise: 0.1, sequence: null, ...extra };
}

/** The frequency (cycles per step, on a 0.0005 grid) where a row's periodogram peaks. */
function peakFrequency(x: Float32Array): number {
  let best = 0;
  let bestPower = -1;
  for (let f = 0.01; f <= 0.3; f += 0.0005) {
    let re = 0;
    let im = 0;
    for (let t = 0; t < x.length; t++) {
      re += x[t]! * Math.cos(2 * Math.PI * f * t);
      im -= x[t]! * Math.sin(2 * Math.PI * f * t);
    }
    if (re * re + im * im > bestPower) [best, bestPower] = [f, re * re + im * im];
  }
  return best;
}

/** Catch the SpecError thrown by fn (fails the test if there is none). */
function specError(fn: () => unknown): SpecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return err as SpecError;
  }
  throw new Error('expected a SpecError');
}

describe('sines', () => {
  it('the same seed gives identical data, another seed other data, the test split other rows', () => {
    const a = generateSynthetic('sines', 400, 0.1, 7, 24);
    const b = generateSynthetic('sines', 400, 0.1, 7, 24);
    const c = generateSynthetic('sines', 400, 0.1, 8, 24);
    expect(b.train.x).toEqual(a.train.x);
    expect(b.test!.x).toEqual(a.test!.x);
    expect(c.train.x).not.toEqual(a.train.x);
    expect(a.test!.x.subarray(0, 200 * 24)).not.toEqual(a.train.x.subarray(0, 200 * 24));
  });

  it('rows are [steps, 1]: 32 steps by default, else dataset.sequence.steps; four balanced classes', async () => {
    const byDefault = generateSynthetic('sines', 1001, 0.1, 1);
    expect(byDefault).toMatchObject({ inputShape: [32, 1], features: 32, classes: 4, valueRange: null });
    expect(byDefault.train.x).toHaveLength(1001 * 32);
    expect(byDefault.test!.n).toBe(200);
    expect(byDefault.classNames).toEqual(['0.05 cycles/step', '0.10 cycles/step', '0.15 cycles/step', '0.20 cycles/step']);
    expect(Array.from(byDefault.train.y.subarray(0, 8))).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
    const loaded = await loadBuiltinDataset(spec('sines', { size: 300, sequence: { steps: 50 } }), 3);
    expect(loaded).toMatchObject({ inputShape: [50, 1], features: 50 });
    expect(loaded.train.x).toEqual(generateSynthetic('sines', 300, 0.1, 3, 50).train.x);
    expect(loaded.train.x.every(Number.isFinite)).toBe(true);
  });

  it('noise-free rows are sine waves in their class band: the periodogram peaks within the band, amplitude 0.5 to 1.5', () => {
    const ds = generateSynthetic('sines', 80, 0, 5, 160);
    for (let i = 0; i < ds.train.n; i++) {
      const row = ds.train.x.subarray(i * 160, (i + 1) * 160);
      const centre = 0.05 * (ds.train.y[i]! + 1);
      expect(Math.abs(peakFrequency(row) - centre)).toBeLessThanOrEqual(0.0125 + 0.002);
      const amplitude = Math.max(...row.map(Math.abs));
      expect(amplitude).toBeLessThanOrEqual(1.5 + 1e-6);
      expect(amplitude).toBeGreaterThan(0.45); // 160 steps of ≥ 8 cycles come within a few % of the crest
    }
  });

  it('dataset.noise is the standard deviation of Gaussian noise on every value', () => {
    const clean = generateSynthetic('sines', 500, 0, 9, 40).train.x;
    const noisy = generateSynthetic('sines', 500, 0.5, 9, 40).train.x;
    let sum = 0;
    let sumSq = 0;
    for (let j = 0; j < clean.length; j++) {
      const d = noisy[j]! - clean[j]!;
      sum += d;
      sumSq += d * d;
    }
    const mean = sum / clean.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.sqrt(sumSq / clean.length - mean * mean)).toBeCloseTo(0.5, 1);
  });
});

describe('dataset.sequence', () => {
  const csv = 'a,b,c,d,e,f,label\n' + Array.from({ length: 40 }, (_, i) => `${i},${i + 1},${i + 2},${i + 3},${i + 4},${i + 5},${i % 2}`).join('\n');

  it('reads each row of F features as [steps, F/steps]: the same values, only the shape changes; the limit applies too', () => {
    const ds = parseCsvDataset(csv, { id: 'ds_x', name: 'x' });
    expect(ds.inputShape).toEqual([6]);
    const seq = applyDatasetSpec(ds, spec('ds_x', { sequence: { steps: 3 }, limit: 10 }));
    expect(seq).toMatchObject({ inputShape: [3, 2], features: 6 });
    expect(seq.train.n).toBe(10);
    expect(seq.train.x).toEqual(ds.train.x.subarray(0, 60));
    expect(seq.train.x.buffer).toBe(ds.train.x.buffer);
    expect(applyDatasetSpec(ds, spec('ds_x', { sequence: { steps: 6 } })).inputShape).toEqual([6, 1]);
    expect(applyDatasetSpec(ds, spec('ds_x')).inputShape).toEqual([6]);
  });

  it('images: [1, 28, 28] stays as it is without dataset.sequence; steps reshape its 784 pixels', () => {
    const fashion = spec('fashion-mnist');
    expect(jobInputShape(fashion, [1, 28, 28])).toEqual([1, 28, 28]);
    expect(jobInputShape({ ...fashion, sequence: { steps: 28 } }, [1, 28, 28])).toEqual([28, 28]);
    expect(jobInputShape({ ...fashion, sequence: { steps: 784 } }, [1, 28, 28])).toEqual([784, 1]);
  });

  it('for sines, steps is the length of the generated rows', () => {
    expect(jobInputShape(spec('sines'), [32, 1])).toEqual([32, 1]);
    expect(jobInputShape(spec('sines', { sequence: { steps: 100 } }), [32, 1])).toEqual([100, 1]);
  });

  it('steps that do not divide the feature count: SpecError at /dataset/sequence/steps listing the count and the steps that fit', () => {
    const ds = parseCsvDataset(csv, { id: 'ds_x', name: 'x' });
    const err = specError(() => applyDatasetSpec(ds, spec('ds_x', { sequence: { steps: 4 } })));
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]).toMatchObject({ path: '/dataset/sequence/steps', features: 6, allowed: [1, 2, 3, 6] });
    expect(err.issues[0]!.message).toBe('4 does not divide the 6 features of a row of ds_x (shape [6]); steps must be one of 1, 2, 3, 6');
    const image = specError(() => jobInputShape(spec('fashion-mnist', { sequence: { steps: 5 } }), [1, 28, 28]));
    expect(image.issues[0]!.message).toContain('the 784 features of a row of fashion-mnist (shape [1, 28, 28]); steps must be one of 1, 2, 4, 7, 8, 14, 16, 28, 49, 56, 98, 112, 196, 392, 784');
  });
});

describe('listings say what sequence a row gives', () => {
  it('sequenceShape: [T, F] rows as they are, [1, H, W] images as H rows of W, tabular rows none', () => {
    expect(sequenceShape([20, 3])).toEqual([20, 3]);
    expect(sequenceShape([1, 28, 28])).toEqual([28, 28]);
    expect(sequenceShape([6])).toBeNull();
    expect(sequenceShape([3, 8, 8])).toBeNull();
  });

  it('every built-in set lists its sequence shape', () => {
    const list = Object.fromEntries(listBuiltinDatasets().map((d) => [d.id, d]));
    expect(list.sines).toMatchObject({ kind: 'synthetic', inputShape: [32, 1], sequenceShape: [32, 1], classes: 4, trainRows: null });
    expect(list['fashion-mnist']).toMatchObject({ kind: 'image', inputShape: [1, 28, 28], sequenceShape: [28, 28] });
    expect(list.spirals!.sequenceShape).toBeNull();
    expect(list.scales!.sequenceShape).toBeNull();
  });
});

describe('an MLP trains on [T, F] rows (its first dense layer flattens them)', () => {
  it('sines of 32 steps: well above chance, predictions from the flattened row', async () => {
    const s = resolveSpec({
      dataset: { id: 'sines', size: 1600, noise: 0.2, preprocess: 'standardize', sequence: { steps: 32 } },
      model: { hidden: [64] },
      training: { epochs: 3, batchSize: 32, seed: 3, optimizer: { type: 'adam', learningRate: 0.003 } },
    });
    const ds = await loadBuiltinDataset(s.dataset, s.training.seed);
    const result = await train(s, ds);
    expect(result.artifact.manifest.inputShape).toEqual([32, 1]);
    expect(result.artifact.manifest.layers[0]).toMatchObject({ type: 'dense', in: 32 });
    expect(result.metrics.test!.accuracy).toBeGreaterThan(0.9); // chance: 0.25
    const model = InferenceModel.fromArtifact(result.artifact);
    const rows = ds.test!.x.subarray(0, 200 * 32);
    const probabilities = model.predict(rows, 200);
    let correct = 0;
    for (let i = 0; i < 200; i++) {
      const p = Array.from(probabilities.subarray(4 * i, 4 * i + 4));
      if (p.indexOf(Math.max(...p)) === ds.test!.y[i]) correct++;
    }
    expect(correct / 200).toBeGreaterThan(0.9);
  });
});

describe('a recurrent layer reads sines as its steps', () => {
  it('GRU of 16 on 32 steps of one value: [32, 1] in, well above chance', async () => {
    const s = resolveSpec({
      dataset: { id: 'sines', size: 800, noise: 0.1, preprocess: 'none' },
      model: { architecture: 'rnn', cell: 'gru', hidden: [16] },
      training: { epochs: 8, batchSize: 32, seed: 3, optimizer: { type: 'adam', learningRate: 0.01 } },
    });
    const result = await train(s, await loadBuiltinDataset(s.dataset, s.training.seed));
    expect(result.artifact.manifest.layers[0]).toMatchObject({ type: 'gru', steps: 32, features: 1 });
    expect(result.metrics.test!.accuracy).toBeGreaterThan(0.85); // chance: 0.25
  });
});
