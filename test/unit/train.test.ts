import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readWeights } from '../../src/core/artifact.js';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/core/checkpoint.js';
import { InferenceModel } from '../../src/core/inference.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import { learningRateAt } from '../../src/core/optimizer.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/core/safetensors.js';
import { resolveSpec, SpecError } from '../../src/core/spec.js';
import { train, TrainingError } from '../../src/core/train.js';
import { loadBuiltinDataset } from '../../src/datasets/index.js';
import type { Dataset } from '../../src/datasets/types.js';
import { kernelSets } from '../helpers/kernels.js';
import { expectClose } from '../helpers/gradcheck.js';


function spiralsSpec(over: Record<string, any> = {}) {
  return resolveSpec({
    dataset: { id: 'spirals', size: 600, noise: 0.1, preprocess: 'standardize', ...over.dataset },
    model: { hidden: [32, 32], batchNorm: 'before', ...over.model },
    batchNorm: { ...over.batchNorm },
    training: { epochs: 4, batchSize: 32, seed: 11, optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9 }, ...over.training },
  });
}

async function spirals(seed = 11): Promise<Dataset> {
  return loadBuiltinDataset(spiralsSpec().dataset, seed);
}

const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('job spec', () => {
  it('fills every default', () => {
    const spec = resolveSpec({ dataset: { id: 'spirals' } });
    expect(spec.model).toMatchObject({ architecture: 'mlp', hidden: [256, 256], batchNorm: 'before', activation: 'relu', init: 'he' });
    expect(spec.batchNorm).toEqual({ momentum: 0.99, epsilon: 1e-3, center: true, scale: true, inferenceStats: 'auto', renorm: null, virtualBatchSize: null });
    expect(spec.training.freezeBatchNormAfterEpoch).toBeNull();
    expect(spec.training.optimizer).toEqual({ type: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0 });
  });

  it('fills an optimizer object as Keras and PyTorch do: sgd without momentum has none', () => {
    const sgd = resolveSpec({ dataset: { id: 'spirals' }, training: { optimizer: { type: 'sgd', learningRate: 0.01 } } });
    expect(sgd.training.optimizer).toEqual({ type: 'sgd', learningRate: 0.01, momentum: 0, nesterov: false, weightDecay: 0 });
    const typeOnly = resolveSpec({ dataset: { id: 'spirals' }, training: { optimizer: { type: 'sgd' } } });
    expect(typeOnly.training.optimizer).toMatchObject({ learningRate: 0.1, momentum: 0 });
    const adam = resolveSpec({ dataset: { id: 'spirals' }, training: { optimizer: { type: 'adam' } } });
    expect(adam.training.optimizer).toEqual({ type: 'adam', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 });
  });

  it('names the offending field and the rule', () => {
    const issues = (input: unknown) => {
      try { resolveSpec(input); } catch (e) { return (e as SpecError).issues; }
      throw new Error('expected a SpecError');
    };
    expect(issues({ dataset: { id: 'spirals' }, training: { epochs: 0 } })[0]).toMatchObject({ path: '/training/epochs' });
    expect(issues({ dataset: { id: 'spirals' }, model: { batchNorm: 'sideways' } })[0]!.path).toBe('/model/batchNorm');
    expect(issues({ dataset: { id: 'spirals' }, training: { batchSize: 1 } })[0]).toMatchObject({ path: '/training/batchSize' });
    expect(issues({ dataset: { id: 'spirals' }, extra: 1 }).length).toBeGreaterThan(0);
    expect(() => resolveSpec({ dataset: { id: 'spirals' }, model: { batchNorm: 'none' }, training: { batchSize: 1 } })).not.toThrow();
  });
});

describe('learning-rate schedules', () => {
  it('follow their formulas', () => {
    expect(learningRateAt(0.1, { type: 'constant' }, 5, 10)).toBe(0.1);
    expect(learningRateAt(0.1, { type: 'step', stepSize: 2, gamma: 0.5 }, 5, 10)).toBeCloseTo(0.025);
    expect(learningRateAt(0.1, { type: 'exponential', gamma: 0.9 }, 2, 10)).toBeCloseTo(0.081);
    expect(learningRateAt(0.1, { type: 'cosine', minLearningRate: 0 }, 0, 10)).toBeCloseTo(0.1);
    expect(learningRateAt(0.1, { type: 'cosine', minLearningRate: 0 }, 5, 10)).toBeCloseTo(0.05);
  });
});

describe.each(kernelSets)('training (%s kernels)', (_name, kernels) => {
  it('learns spirals, reports every epoch, and records the epoch reaching the target', async () => {
    const events: string[] = [];
    const spec = spiralsSpec({ model: { hidden: [64, 64] }, training: { epochs: 40, targetAccuracy: 0.85, optimizer: { type: 'adam', learningRate: 0.01 } } });
    const result = await train(spec, await spirals(), { kernels, onEvent: (e) => events.push(e.type) });
    expect(result.history).toHaveLength(40);
    expect(result.history[0]!.test!.accuracy).toBeLessThan(0.7);
    expect(result.metrics.test!.accuracy).toBeGreaterThan(0.88);
    const reached = result.history.find((h) => h.val!.accuracy >= 0.85)!.epoch;
    expect(result.epochsToTarget).toBe(reached);
    expect(events.filter((t) => t === 'epoch')).toHaveLength(40);
    expect(events[0]).toBe('progress');
    const e = result.history[39]!;
    expect(e.bn).toHaveLength(2);
    expect(e.seconds).toBeGreaterThan(0);
  });

  it('is deterministic: same seed, same weight bytes; another seed, other weights', async () => {
    const ds = await spirals();
    const spec = spiralsSpec({ model: { dropout: 0.2 } });
    const a = await train(spec, ds, { kernels });
    const b = await train(spec, ds, { kernels });
    const c = await train(spiralsSpec({ model: { dropout: 0.2 }, training: { seed: 12 } }), ds, { kernels });
    expect(hash(a.artifact.weights)).toBe(hash(b.artifact.weights));
    expect(hash(a.artifact.weights)).not.toBe(hash(c.artifact.weights));
  });

  it('fails with DIVERGED, naming epoch and step, when the loss blows up', async () => {
    const spec = spiralsSpec({ model: { batchNorm: 'none' }, training: { optimizer: { type: 'sgd', learningRate: 900, momentum: 0.9 } } });
    const err = await train(spec, await spirals(), { kernels }).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect(err.code).toBe('DIVERGED');
    expect(err.details).toMatchObject({ epoch: expect.any(Number), step: expect.any(Number), hint: expect.stringContaining('batch norm') });
  });

  it('stops at the next step when cancelled', async () => {
    let steps = 0;
    const err = await train(spiralsSpec(), await spirals(), {
      kernels, progressIntervalMs: 0, onEvent: (e) => { if (e.type === 'progress') steps++; }, isCancelled: () => steps >= 3,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect(err.code).toBe('CANCELLED');
    expect(steps).toBe(3);
  });

  it('stops early when validation loss stops improving', async () => {
    const spec = spiralsSpec({ training: { epochs: 200, earlyStopping: { monitor: 'val_loss', patience: 2 }, optimizer: { type: 'adam', learningRate: 0.01 } } });
    const warnings: string[] = [];
    const result = await train(spec, await spirals(), { kernels, onEvent: (e) => { if (e.type === 'warning') warnings.push(e.code); } });
    expect(result.history.length).toBeLessThan(200);
    expect(warnings).toContain('EARLY_STOPPED');
  });
});

describe.each(kernelSets)('checkpoints (%s kernels)', (_name, kernels) => {
  const spec = spiralsSpec({ model: { dropout: 0.2 }, training: { epochs: 3, optimizer: { type: 'adam', learningRate: 0.01 } } });

  it('resuming from any checkpoint ends with the same weight bytes as an uninterrupted run', async () => {
    const ds = await spirals();
    const saved: Uint8Array[] = [];
    const checkpointEvents: unknown[] = [];
    const full = await train(spec, ds, {
      kernels, checkpointEverySteps: 5,
      onCheckpoint: (c) => { saved.push(encodeCheckpoint(c)); },
      onEvent: (e) => { if (e.type === 'checkpoint') checkpointEvents.push(e); },
    });
    // 17 steps per epoch: mid-epoch at steps 5, 10, 15 of each epoch, and at the start of epochs 2 and 3.
    expect(checkpointEvents).toContainEqual({ type: 'checkpoint', epoch: 2, step: 0 });
    expect(checkpointEvents).toContainEqual({ type: 'checkpoint', epoch: 1, step: 10 });
    expect(saved).toHaveLength(checkpointEvents.length);
    for (const bytes of [saved[1]!, saved[3]!, saved[saved.length - 2]!]) {
      const resumed = await train(spec, ds, { kernels, resumeFrom: decodeCheckpoint(bytes) });
      expect(hash(resumed.artifact.weights)).toBe(hash(full.artifact.weights));
      expect(resumed.history.map((h) => h.epoch)).toEqual([1, 2, 3]);
      expect(resumed.history[2]!.train).toEqual(full.history[2]!.train);
    }
  });

  it('pauses at the next step with a checkpoint, and resumes exactly', async () => {
    const ds = await spirals();
    let steps = 0;
    let paused: Uint8Array | null = null;
    const err = await train(spec, ds, {
      kernels, progressIntervalMs: 0,
      onEvent: (e) => { if (e.type === 'progress') steps++; },
      shouldPause: () => steps >= 20,
      onCheckpoint: (c) => { paused = encodeCheckpoint(c); },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect(err.code).toBe('PAUSED');
    expect(err.details).toEqual({ epoch: 2, step: 3 });
    const resumed = await train(spec, ds, { kernels, resumeFrom: decodeCheckpoint(paused!) });
    const full = await train(spec, ds, { kernels });
    expect(hash(resumed.artifact.weights)).toBe(hash(full.artifact.weights));
  });

  it('a pause before the first step of an epoch resumes exactly too', async () => {
    const ds = await spirals();
    let epochs = 0;
    let paused: Uint8Array | null = null;
    const err = await train(spec, ds, {
      kernels,
      onEvent: (e) => { if (e.type === 'epoch') epochs++; },
      shouldPause: () => epochs >= 1,
      onCheckpoint: (c) => { if (c.state.step === 0 && epochs >= 1) paused = encodeCheckpoint(c); },
    }).catch((e) => e);
    expect(err.details).toEqual({ epoch: 2, step: 0 });
    const resumed = await train(spec, ds, { kernels, resumeFrom: decodeCheckpoint(paused!) });
    const full = await train(spec, ds, { kernels });
    expect(hash(resumed.artifact.weights)).toBe(hash(full.artifact.weights));
  });

  it('refuses a checkpoint made with another spec', async () => {
    const ds = await spirals();
    let first: Uint8Array | null = null;
    await train(spec, ds, { kernels, onCheckpoint: (c) => { first ??= encodeCheckpoint(c); } });
    const other = spiralsSpec({ model: { dropout: 0.3 }, training: { epochs: 3, optimizer: { type: 'adam', learningRate: 0.01 } } });
    const err = await train(other, ds, { kernels, resumeFrom: decodeCheckpoint(first!) }).catch((e) => e);
    expect(err.code).toBe('BAD_CHECKPOINT');
  });
});

describe.each(kernelSets)('inference form (%s kernels)', (_name, kernels) => {
  for (const batchNorm of ['before', 'after', 'input'] as const) {
    it(`BN ${batchNorm}: batch-independent, folded = unfolded within 1e-5, equal to the trainer's evaluation`, async () => {
      const ds = await spirals();
      const result = await train(spiralsSpec({ model: { batchNorm, dropout: 0.1 } }), ds, { kernels });
      const folded = InferenceModel.fromArtifact(result.artifact, { kernels });
      const unfolded = InferenceModel.fromArtifact(result.artifact, { kernels, fold: false });
      const test = ds.test!;
      const batch = folded.predict(test.x, test.n);
      expectClose(unfolded.predict(test.x, test.n), batch, { rtol: 0, atol: 1e-5 }, 'folded vs unfolded');
      // One row at a time equals the whole batch (to float rounding: a BLAS may sum in another order for one row).
      for (let r = 0; r < 50; r++) {
        const one = folded.predict(test.x.subarray(r * ds.features, (r + 1) * ds.features), 1);
        expectClose(one, batch.subarray(r * ds.classes, (r + 1) * ds.classes), { rtol: 0, atol: 1e-6 }, `row ${r}`);
      }
      let correct = 0;
      for (let r = 0; r < test.n; r++) {
        const p = batch.subarray(r * ds.classes, (r + 1) * ds.classes);
        if (p.indexOf(Math.max(...p)) === test.y[r]) correct++;
      }
      expect(correct / test.n).toBeCloseTo(result.metrics.test!.accuracy, 2);
    });
  }

  it('population statistics are the exact moments of each BN input over the training split', async () => {
    const ds = await spirals();
    // BN on the raw inputs: its population statistics are the training rows' own moments.
    const spec = spiralsSpec({ dataset: { preprocess: 'none', validationSplit: 0 }, model: { batchNorm: 'input' }, batchNorm: { inferenceStats: 'population' } });
    const result = await train(spec, ds, { kernels });
    const tensors = readWeights(result.artifact);
    const f = ds.features;
    for (let j = 0; j < f; j++) {
      let sum = 0;
      for (let r = 0; r < ds.train.n; r++) sum += ds.train.x[r * f + j]!;
      const mean = sum / ds.train.n;
      let ss = 0;
      for (let r = 0; r < ds.train.n; r++) ss += (ds.train.x[r * f + j]! - mean) ** 2;
      expect(tensors.get('layers.0.running_mean')!.value[j]).toBeCloseTo(mean, 5);
      expect(tensors.get('layers.0.running_var')!.value[j]).toBeCloseTo(ss / (ds.train.n - 1), 4);
    }
    expect(result.artifact.manifest.inferenceStats).toBe('population');
    const stats = InferenceModel.fromArtifact(result.artifact, { kernels }).batchNormStats();
    expect(stats[0]).toMatchObject({ layer: 0, channels: 2, source: 'population', epsilon: 1e-3 });
  });
});

describe('artifact', () => {
  it('round-trips exactly through safetensors with the documented tensor names', async () => {
    const ds = await spirals();
    const result = await train(spiralsSpec({ training: { epochs: 1 } }), ds, { kernels: portableKernels });
    const { tensors } = decodeSafetensors(result.artifact.weights);
    expect([...tensors.keys()]).toEqual([
      'layers.0.weight', 'layers.1.gamma', 'layers.1.beta', 'layers.1.running_mean', 'layers.1.running_var',
      'layers.3.weight', 'layers.4.gamma', 'layers.4.beta', 'layers.4.running_mean', 'layers.4.running_var',
      'layers.6.weight', 'layers.6.bias',
    ]);
    expect(tensors.get('layers.0.weight')!.shape).toEqual([32, 2]);
    // Re-encoding what was decoded gives the same bytes.
    const { metadata } = decodeSafetensors(result.artifact.weights);
    expect(hash(encodeSafetensors([...tensors.values()], metadata))).toBe(hash(result.artifact.weights));
    expect(result.artifact.manifest).toMatchObject({ format: 'normlab-model/1', features: 2, classes: 3, inputShape: [2] });
  });
});
