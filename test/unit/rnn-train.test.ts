/**
 * Recurrent models through the real trainer: the rnn shorthand and explicit recurrent layers
 * learn a seeded sequence task with each batch-norm variant, deterministically; checkpoints resume
 * mid-epoch to the same weight bytes; the artifact's inference form (sequence BN folded, recurrent
 * BN frozen per step) predicts what the trainer evaluated, the same bytes at any batch position;
 * and the shapes a recurrent layer cannot read are SpecErrors.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/core/checkpoint.js';
import { InferenceModel } from '../../src/core/inference.js';
import { encodeInferenceWeights } from '../../src/core/inference-weights.js';
import { decodeSafetensors } from '../../src/core/safetensors.js';
import { expandLayers } from '../../src/core/layers.js';
import { createRng, nextFloat, nextNormal } from '../../src/core/rng.js';
import { resolveSpec, SpecError } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import type { Dataset, Split } from '../../src/datasets/types.js';
import { kernelSets } from '../helpers/kernels.js';

const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * Noisy sine waves, T steps of 2 features (the wave and a noise channel), 3 classes by
 * frequency: a task a model must read over time to solve.
 */
function sineSplit(n: number, T: number, seed: number): Split {
  const rng = createRng(seed);
  const x = new Float32Array(n * T * 2);
  const y = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const label = r % 3;
    const phase = nextFloat(rng) * 2 * Math.PI;
    for (let t = 0; t < T; t++) {
      x[(r * T + t) * 2] = Math.sin(phase + t * (0.4 + 0.5 * label)) + 0.1 * nextNormal(rng);
      x[(r * T + t) * 2 + 1] = 0.5 * nextNormal(rng);
    }
    y[r] = label;
  }
  return { x, y, n };
}

function sines(inputShape: number[] = [10, 2]): Dataset {
  const T = 10;
  return {
    id: 'sines', name: 'sines', inputShape, features: T * 2, classes: 3, classNames: ['slow', 'medium', 'fast'], valueRange: null,
    train: sineSplit(360, T, 1), test: sineSplit(90, T, 2),
  };
}

function rnnSpec(model: Record<string, unknown>, training: Record<string, unknown> = {}) {
  return resolveSpec({
    dataset: { id: 'sines', preprocess: 'none', validationSplit: 0.2 },
    model: { architecture: 'rnn', hidden: [12], ...model },
    // 72 steps: the default momentum 0.99 leaves the running averages half at their start (the gap shows it).
    batchNorm: { momentum: 0.9 },
    training: { epochs: 6, batchSize: 24, seed: 5, optimizer: { type: 'adam', learningRate: 0.02 }, ...training },
  });
}

describe.each(kernelSets)('recurrent models in the trainer (%s kernels)', (_name, kernels) => {
  for (const batchNorm of ['none', 'sequence', 'recurrent'] as const) {
    it(`lstm, batchNorm ${batchNorm}: learns the task; the artifact predicts what the trainer evaluated, batch-invariant`, async () => {
      const spec = rnnSpec({ batchNorm });
      const ds = sines();
      const result = await train(spec, ds, { kernels });
      expect(result.history).toHaveLength(6);
      expect(result.metrics.test!.accuracy).toBeGreaterThan(0.8); // chance is 1/3
      const layers = result.artifact.manifest.layers;
      expect(layers.map((l) => l.type)).toEqual(['lstm', 'dense']);
      if (batchNorm !== 'sequence') expect(result.artifact.manifest.inferenceStats).toBe('moving'); // sequence: whichever did better
      const model = InferenceModel.fromArtifact(result.artifact, { kernels });
      const test = ds.test!;
      const probs = model.predict(test.x, test.n);
      let correct = 0;
      for (let r = 0; r < test.n; r++) {
        const row = Array.from(probs.subarray(r * 3, r * 3 + 3));
        if (row.indexOf(Math.max(...row)) === test.y[r]) correct++;
      }
      expect(Math.abs(correct / test.n - result.metrics.test!.accuracy)).toBeLessThanOrEqual(1 / test.n);
      // Row 7 alone and at positions 0, 3 and 40 of batches of 41 and 90: the same bytes.
      const alone = model.predict(test.x.subarray(7 * 20, 8 * 20), 1);
      for (const [n, at] of [[41, 0], [41, 3], [41, 40], [90, 7]] as const) {
        const rows = test.x.slice(0, n * 20);
        rows.set(test.x.subarray(7 * 20, 8 * 20), at * 20);
        expect(Array.from(model.predict(rows, n).subarray(at * 3, at * 3 + 3))).toEqual(Array.from(alone));
      }
    });
  }

  it('recurrent BN after 72 steps: momentum 0.99 leaves the running averages behind (the gap shows it), 0.9 does not', async () => {
    const gap = async (momentum: number) => {
      const spec = resolveSpec({ ...rnnSpec({ batchNorm: 'recurrent' }), batchNorm: { momentum } });
      return (await train(spec, sines(), { kernels })).history[5]!.gap!.accuracy;
    };
    expect(await gap(0.99)).toBeGreaterThan(0.3);
    expect(Math.abs(await gap(0.9))).toBeLessThan(0.1);
  });

  it('is deterministic: same seed, same weight bytes; another seed, other weights', async () => {
    const spec = rnnSpec({ cell: 'gru', batchNorm: 'recurrent' }, { epochs: 2 });
    const [a, b] = [await train(spec, sines(), { kernels }), await train(spec, sines(), { kernels })];
    expect(hash(a.artifact.weights)).toBe(hash(b.artifact.weights));
    const other = await train({ ...spec, training: { ...spec.training, seed: 6 } }, sines(), { kernels });
    expect(hash(other.artifact.weights)).not.toBe(hash(a.artifact.weights));
  });

  it('resumes from a mid-epoch checkpoint to the same weight bytes (recurrent BN running statistics, momentum null)', async () => {
    const spec = resolveSpec({
      ...rnnSpec({ batchNorm: 'recurrent', hidden: [8, 6] }, { epochs: 3 }), batchNorm: { momentum: null, inferenceStats: 'auto' },
    });
    const saved: Uint8Array[] = [];
    const full = await train(spec, sines(), { kernels, checkpointEverySteps: 4, onCheckpoint: (c) => { saved.push(encodeCheckpoint(c)); } });
    expect(saved.length).toBeGreaterThan(4);
    for (const bytes of [saved[1]!, saved[saved.length - 2]!]) {
      const resumed = await train(spec, sines(), { kernels, resumeFrom: decodeCheckpoint(bytes) });
      expect(hash(resumed.artifact.weights)).toBe(hash(full.artifact.weights));
    }
  });

  it('explicit layers: stacked bidirectional GRU over an Elman layer, a [1, H, W] image read as H steps of W features', async () => {
    const spec = resolveSpec({
      dataset: { id: 'sines', preprocess: 'none' },
      model: {
        layers: [
          { type: 'gru', units: 6, returnSequences: true, bidirectional: true, batchNorm: 'sequence' },
          { type: 'rnn', units: 5, batchNorm: 'recurrent' },
        ],
      },
      training: { epochs: 2, batchSize: 16, seed: 3, optimizer: { type: 'adam', learningRate: 0.01 } },
    });
    const result = await train(spec, sines([1, 10, 2]), { kernels });
    expect(result.artifact.manifest.layers).toMatchObject([
      { type: 'gru', steps: 10, features: 2, units: 6, returnSequences: true, bidirectional: true },
      { type: 'rnn', steps: 10, features: 12, units: 5, returnSequences: false },
      { type: 'dense', in: 5, out: 3 },
    ]);
    expect(Number.isFinite(result.metrics.train.loss)).toBe(true);
    // One BN summary per normalized term: the GRU's input term per direction, the Elman layer's two terms.
    expect(result.history[0]!.bn.map((b) => b.layer)).toEqual([0, 0, 1, 1]);
    const model = InferenceModel.fromArtifact(result.artifact, { kernels });
    expect(model.batchNormStats().map((b) => [b.layer, b.channels])).toEqual([[0, 18], [0, 18], [1, 50], [1, 50]]);
    // The weights download: the sequence BN folded into bias_ih, the recurrent one's per-step statistics kept.
    const { tensors, metadata } = decodeSafetensors(encodeInferenceWeights(model));
    expect(JSON.parse(metadata.ops!)[0]).toMatchObject({ kind: 'recurrent', cell: 'gru', batchNorm: 'none', bidirectional: true });
    expect(tensors.get('ops.0.bias_ih_l0_reverse')!.shape).toEqual([18]);
    expect(tensors.get('ops.1.mean_hh_l0')!.shape).toEqual([10, 5]);
  });
});

describe('recurrent spec rules', () => {
  const issues = (input: Record<string, unknown>, shape?: number[]) => {
    try {
      const spec = resolveSpec({ dataset: { id: 'sines' }, ...input });
      if (shape) expandLayers(spec.model, shape, 3);
    } catch (e) {
      if (e instanceof SpecError) return e.issues;
      throw e;
    }
    throw new Error('expected a SpecError');
  };

  it('fills the rnn defaults: lstm of 128, no batch norm, one direction', () => {
    const spec = resolveSpec({ dataset: { id: 'sines' }, model: { architecture: 'rnn' } });
    expect(spec.model).toMatchObject({ architecture: 'rnn', cell: 'lstm', hidden: [128], batchNorm: 'none', bidirectional: false });
    expect(expandLayers(spec.model, [28, 28], 10)).toEqual([
      { index: 0, type: 'lstm', steps: 28, features: 28, units: 128, returnSequences: false, bidirectional: false, batchNorm: 'none' },
      { index: 1, type: 'dense', in: 128, out: 10, bias: true },
    ]);
  });

  it('rejects a multi-channel image and tabular rows, naming the shape', () => {
    expect(issues({ model: { architecture: 'rnn' } }, [3, 8, 8])[0]!.message).toMatch(/one-channel image.*\[3,8,8\] with 3 channels/);
    expect(issues({ model: { architecture: 'rnn' } }, [20])[0]!.message).toMatch(/needs sequence input \[steps, features\]; it receives \[20\]/);
  });

  it('batch-norm modes belong to their architectures', () => {
    expect(issues({ model: { architecture: 'rnn', batchNorm: 'before' } })[0]).toMatchObject({
      path: '/model/batchNorm', allowed: ['none', 'sequence', 'recurrent'],
    });
    expect(issues({ model: { batchNorm: 'recurrent' } })[0]).toMatchObject({ path: '/model/batchNorm', allowed: ['none', 'before', 'after', 'input'] });
  });

  it('the batchnorm-layer variants recurrent BN does not offer are rejected by name', () => {
    const rec = { model: { architecture: 'rnn', batchNorm: 'recurrent' } };
    expect(issues({ ...rec, batchNorm: { renorm: {} } })[0]!.path).toBe('/batchNorm/renorm');
    expect(issues({ ...rec, batchNorm: { virtualBatchSize: 4 }, training: { batchSize: 8 } })[0]!.path).toBe('/batchNorm/virtualBatchSize');
    expect(issues({ ...rec, training: { freezeBatchNormAfterEpoch: 1 } })[0]!.path).toBe('/training/freezeBatchNormAfterEpoch');
    expect(issues({ ...rec, batchNorm: { inferenceStats: 'population' } })[0]!.path).toBe('/batchNorm/inferenceStats');
    expect(issues({ ...rec, training: { batchSize: 1 } })[0]!.path).toBe('/training/batchSize');
    // sequence-wise BN has exact population statistics; no BN needs none of this.
    expect(() => resolveSpec({ dataset: { id: 'sines' }, model: { architecture: 'rnn', batchNorm: 'sequence' }, batchNorm: { inferenceStats: 'population' } })).not.toThrow();
    expect(() => resolveSpec({ dataset: { id: 'sines' }, model: { architecture: 'rnn' }, training: { batchSize: 1 } })).not.toThrow();
  });
});
