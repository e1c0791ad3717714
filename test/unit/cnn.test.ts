import { describe, expect, it } from 'vitest';
import { InferenceModel } from '../../src/core/inference.js';
import { expandLayers } from '../../src/core/layers.js';
import { BatchNorm, Sequential } from '../../src/core/model.js';
import { createRng, nextNormal } from '../../src/core/rng.js';
import { resolveSpec, SpecError } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import { loadBuiltinDataset } from '../../src/datasets/index.js';
import { useFashionMnistDir } from '../helpers/fashion-slice.js';
import { kernelSets } from '../helpers/kernels.js';
import { expectClose, numericGrad } from '../helpers/gradcheck.js';


const spec = (over: Record<string, any> = {}) => resolveSpec({
  dataset: { id: 'fashion-mnist', ...over.dataset },
  model: { architecture: 'cnn', ...over.model },
  batchNorm: { ...over.batchNorm },
  training: { ...over.training },
});

describe('cnn layer expansion', () => {
  it('builds conv-BN-relu-pool blocks, flattens, and sizes the dense layers from the image', () => {
    const layers = expandLayers(spec().model, [1, 28, 28], 10);
    expect(layers.map((l) => l.type)).toEqual([
      'conv2d', 'batchnorm', 'relu', 'maxpool2d', 'conv2d', 'batchnorm', 'relu', 'maxpool2d', 'flatten',
      'dense', 'batchnorm', 'relu', 'dense']);
    expect(layers[0]).toMatchObject({ inChannels: 1, filters: 32, kernelSize: 3, padding: 1, outHeight: 28, bias: false });
    expect(layers[1]).toMatchObject({ channels: 32, spatial: 784 });
    expect(layers[4]).toMatchObject({ inChannels: 32, inHeight: 14, filters: 64, outHeight: 14 });
    expect(layers[8]).toMatchObject({ features: 64 * 7 * 7 });
    expect(layers[9]).toMatchObject({ in: 3136, out: 128, bias: false });
    expect(layers[10]).toMatchObject({ channels: 128, spatial: 1 });
  });

  it('rejects a conv on tabular data and a window larger than its input, naming the field', () => {
    expect(() => expandLayers(spec().model, [2], 3)).toThrow(SpecError);
    const tooBig = spec({ model: { layers: [{ type: 'maxpool2d', size: 5 }] } }).model;
    try {
      expandLayers(tooBig, [1, 4, 4], 3);
      throw new Error('expected a SpecError');
    } catch (e) {
      expect((e as SpecError).issues[0]).toMatchObject({ path: '/model/layers/0' });
    }
  });
});

describe.each(kernelSets)('CNN gradients and batch-norm variants (%s kernels)', (_name, k) => {
  const shape = [2, 6, 6];
  const n = 4;
  const layersSpec = [
    { type: 'conv2d', filters: 3, kernelSize: 3 }, { type: 'batchnorm' }, { type: 'tanh' }, { type: 'avgpool2d', size: 2 },
    { type: 'conv2d', filters: 4, kernelSize: 2, padding: 'valid' }, { type: 'batchnorm' }, { type: 'sigmoid' },
    { type: 'avgpool2d', size: 2 }, { type: 'flatten' }, { type: 'dense', units: 5 }, { type: 'elu' },
  ];
  const data = createRng(21);
  const x = Float32Array.from({ length: n * 72 }, () => nextNormal(data));
  const y = Int32Array.of(0, 1, 2, 1);

  function build(over: Record<string, any> = {}, fuse = true) {
    const s = spec({ model: { layers: layersSpec }, batchNorm: over, dataset: { id: 'x' } });
    const rng = createRng(3);
    const model = new Sequential(expandLayers(s.model, shape, 3), k, n, 72, s.batchNorm, rng, { fuse });
    model.initialize('glorot', rng);
    for (const bn of model.batchNorms()) bn.gamma!.value.forEach((_, j, a) => { a[j] = 0.7 + 0.2 * j; });
    return model;
  }
  const probs = new Float32Array(n * 3);
  const loss = (model: Sequential) => () => k.softmaxCrossEntropy(model.forward(x, n, true), y, probs, n, 3, null);
  const gradients = (model: Sequential) => {
    loss(model)();
    k.softmaxCrossEntropyBackward(probs, y, probs, n, 3);
    model.backward(probs, n);
    return model.params.map((p) => p.grad.slice());
  };

  // Average pooling here: max pooling's kinks (a window's maximum switching under a
  // perturbation) defeat central differences; its kernel has its own checks.
  it('every parameter of conv, BN2d, pooling and dense layers passes a finite-difference check; fused = separate', () => {
    const model = build();
    const analytic = gradients(model);
    gradients(build({}, false)).forEach((g, i) => expectClose(analytic[i]!, g, { rtol: 1e-4, atol: 1e-6 }, `fused vs separate ${i}`));
    model.params.forEach((p, i) => {
      expectClose(analytic[i]!, numericGrad(loss(model), p.value, 1e-3), { rtol: 3e-2, atol: 1e-3 }, `parameter ${i} (${p.name})`);
    });
  });

  it('frozen batch norm (after freezeBatchNormAfterEpoch) passes a finite-difference check and leaves the statistics alone', () => {
    const model = build();
    model.forward(x, n, true); // move the running statistics off their initial values
    model.freezeBatchNorm();
    const before = model.batchNorms().map((b) => b.runningMean.slice());
    const analytic = gradients(model);
    model.params.forEach((p, i) => {
      expectClose(analytic[i]!, numericGrad(loss(model), p.value, 1e-3), { rtol: 3e-2, atol: 1e-3 }, `parameter ${i} (${p.name})`);
    });
    model.batchNorms().forEach((b, i) => expect(Array.from(b.runningMean)).toEqual(Array.from(before[i]!)));
  });

  it('batch renormalization: plain batch norm at the start of the warm-up, different once the limits open', () => {
    const plain = build();
    const renorm = build({ renorm: { rMax: 3, dMax: 5, warmupSteps: 2 } });
    // Step 1: limits 1 and 0, so renorm is batch norm.
    expectClose(renorm.forward(x, n, true), plain.forward(x, n, true), { rtol: 1e-5, atol: 1e-6 }, 'step 1');
    // Shift the running statistics far from the batch's: with open limits r and d now act.
    for (const m of [plain, renorm]) for (const bn of m.batchNorms()) { bn.runningMean.fill(3); bn.runningVar.fill(9); }
    renorm.forward(x, n, true);
    plain.forward(x, n, true);
    const r = renorm.forward(x, n, true); // step 3: warm-up over
    const p = plain.forward(x, n, true);
    expect(Math.max(...Array.from(r).map((v, i) => Math.abs(v - p[i]!)))).toBeGreaterThan(1e-2);
  });

  it('ghost batch norm normalizes each virtual batch on its own and updates the running statistics once per batch', () => {
    const s = resolveSpec({ dataset: { id: 'x' }, model: { layers: [{ type: 'batchnorm' }] }, batchNorm: { virtualBatchSize: 3, momentum: 0.5 }, training: { batchSize: 9 } });
    const ghost = new Sequential(expandLayers(s.model, [4], 2), k, 9, 4, s.batchNorm, createRng(1));
    const plain = new Sequential(expandLayers(s.model, [4], 2), k, 3, 4, { ...s.batchNorm, virtualBatchSize: null }, createRng(1));
    const xs = Float32Array.from({ length: 9 * 4 }, () => nextNormal(data));
    const out = (ghost.layers[0] as BatchNorm).forward(xs, 9, true).slice(0, 36);
    const runningMeans: number[][] = [];
    for (let i = 0; i < 3; i++) {
      const bn = plain.layers[0] as BatchNorm;
      bn.runningMean.fill(0);
      expectClose(out.subarray(i * 12, (i + 1) * 12), bn.forward(xs.subarray(i * 12, (i + 1) * 12), 3, true), { rtol: 1e-5, atol: 1e-6 }, `virtual batch ${i}`);
      runningMeans.push(Array.from(bn.runningMean, (v) => v * 2)); // momentum 0.5 from 0: running = batch/2
    }
    const expected = [0, 1, 2, 3].map((j) => (runningMeans[0]![j]! + runningMeans[1]![j]! + runningMeans[2]![j]!) / 3 / 2);
    expectClose((ghost.layers[0] as BatchNorm).runningMean, expected, { rtol: 1e-5, atol: 1e-6 }, 'running mean');
  });

  it('momentum null keeps the cumulative average of the batch statistics (PyTorch momentum=None)', () => {
    const s = resolveSpec({ dataset: { id: 'x' }, model: { layers: [{ type: 'batchnorm' }] }, batchNorm: { momentum: null } });
    const model = new Sequential(expandLayers(s.model, [2], 2), k, 4, 2, s.batchNorm, createRng(1));
    const bn = model.layers[0] as BatchNorm;
    const batches = [Float32Array.of(1, 0, 3, 0, 5, 2, 7, 2), Float32Array.of(0, 1, 0, 1, 4, 1, 4, 1), Float32Array.of(2, 2, 2, 4, 2, 6, 2, 8)];
    const means = batches.map((b) => [0, 1].map((j) => (b[j]! + b[2 + j]! + b[4 + j]! + b[6 + j]!) / 4));
    for (const b of batches) model.forward(b, 4, true);
    expectClose(bn.runningMean, [0, 1].map((j) => (means[0]![j]! + means[1]![j]! + means[2]![j]!) / 3), { rtol: 1e-6, atol: 1e-6 }, 'running mean');
  });
});

describe('CNN training and inference form', () => {
  it('trains on Fashion-MNIST images; folded = unfolded within 1e-5; rows are batch-independent', async () => {
    useFashionMnistDir(); // the committed slice of the real files: the first 600 training, 100 test images
    const s = spec({
      dataset: { limit: 600, validationSplit: 0 }, model: { conv: [4, 8], dense: [16] },
      training: { epochs: 2, batchSize: 32, optimizer: { type: 'adam', learningRate: 0.01 }, freezeBatchNormAfterEpoch: 1 },
    });
    const ds = await loadBuiltinDataset(s.dataset, 1);
    const result = await train(s, ds);
    expect(result.history[1]!.bn[0]!.runningMean).toBe(result.history[0]!.bn[0]!.runningMean); // frozen in epoch 2
    const folded = InferenceModel.fromArtifact(result.artifact);
    const unfolded = InferenceModel.fromArtifact(result.artifact, { fold: false });
    const rows = ds.test!.x.subarray(0, 40 * 784);
    const batch = folded.predict(rows, 40);
    expectClose(unfolded.predict(rows, 40), batch, { rtol: 0, atol: 1e-5 }, 'folded vs unfolded');
    for (let r = 0; r < 5; r++) {
      expectClose(folded.predict(rows.subarray(r * 784, (r + 1) * 784), 1), batch.subarray(r * 10, (r + 1) * 10), { rtol: 0, atol: 1e-6 }, `row ${r}`);
    }
    expect(result.metrics.test!.accuracy).toBeGreaterThan(0.5);
  });
});
