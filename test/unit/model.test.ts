import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Kernels } from '../../src/core/kernels/types.js';
import { expandLayers, type LayerInfo } from '../../src/core/layers.js';
import { fusedActivation } from '../../src/core/layers/index.js';
import { Sequential } from '../../src/core/model.js';
import { Optimizer } from '../../src/core/optimizer.js';
import { createRng, nextNormal } from '../../src/core/rng.js';
import { resolveSpec } from '../../src/core/spec.js';
import { kernelSets } from '../helpers/kernels.js';
import { expectClose, numericGrad } from '../helpers/gradcheck.js';


const bnDefaults = resolveSpec({ dataset: { id: 'spirals' } }).batchNorm;

describe('layer expansion', () => {
  const model = (over: object) => resolveSpec({ dataset: { id: 'spirals' }, model: { hidden: [5, 4], ...over } }).model;

  it('places BN before the activation and drops the dense bias in "before" mode', () => {
    expect(expandLayers(model({ batchNorm: 'before' }), [3], 2).map((l) => l.type + ('bias' in l ? `:${l.bias}` : ''))).toEqual(
      ['dense:false', 'batchnorm', 'relu', 'dense:false', 'batchnorm', 'relu', 'dense:true']);
  });

  it('places BN after the activation in "after" mode and on the raw inputs in "input" mode', () => {
    expect(expandLayers(model({ batchNorm: 'after' }), [3], 2).map((l) => l.type)).toEqual(
      ['dense', 'relu', 'batchnorm', 'dense', 'relu', 'batchnorm', 'dense']);
    expect(expandLayers(model({ batchNorm: 'input', dropout: 0.5 }), [3], 2).map((l) => l.type)).toEqual(
      ['batchnorm', 'dense', 'relu', 'dropout', 'dense', 'relu', 'dropout', 'dense']);
  });

  it('expands an explicit layer list, inferring widths and biases, and appends the output layer', () => {
    const layers = expandLayers(model({ layers: [{ type: 'dense', units: 7 }, { type: 'batchnorm' }, { type: 'leaky_relu', alpha: 0.2 }, { type: 'dense', units: 3 }] }), [4], 5);
    expect(layers).toEqual([
      { index: 0, type: 'dense', in: 4, out: 7, bias: false },
      { index: 1, type: 'batchnorm', channels: 7, spatial: 1 },
      { index: 2, type: 'leaky_relu', alpha: 0.2 },
      { index: 3, type: 'dense', in: 7, out: 3, bias: true },
      { index: 4, type: 'dense', in: 3, out: 5, bias: true },
    ]);
  });
});

type FixtureLayer =
  | { type: 'dense'; in: number; out: number; weight: number[]; bias: number[] | null }
  | { type: 'batchnorm'; gamma: number[]; beta: number[]; running_mean: number[]; running_var: number[] }
  | { type: 'relu' };
interface FixtureMode {
  layers: FixtureLayer[];
  steps: Array<{ x: number[]; y: number[]; loss: number; layers_after: FixtureLayer[] }>;
  eval: { x: number[]; probs: number[] };
}

function loadFixtureModel(mode: FixtureMode, k: Kernels) {
  const infos: LayerInfo[] = mode.layers.map((l, index) => {
    if (l.type === 'dense') return { index, type: 'dense', in: l.in, out: l.out, bias: l.bias !== null };
    if (l.type === 'batchnorm') return { index, type: 'batchnorm', channels: l.gamma.length, spatial: 1 };
    return { index, type: 'relu', alpha: 0 };
  });
  const bn = { ...bnDefaults, momentum: 0.9, epsilon: 1e-3 };
  const model = new Sequential(infos, k, 8, (mode.layers[0] as { in: number }).in, bn, createRng(1));
  mode.layers.forEach((l, i) => {
    const layer = model.layers[i]!;
    if (l.type === 'dense') {
      layer.params[0]!.value.set(l.weight);
      if (l.bias) layer.params[1]!.value.set(l.bias);
    } else if (l.type === 'batchnorm') {
      layer.params[0]!.value.set(l.gamma);
      layer.params[1]!.value.set(l.beta);
    }
  });
  return model;
}

describe.each(kernelSets)('full MLP SGD steps against PyTorch (%s kernels)', (_name, k) => {
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/mlp_step.json', import.meta.url), 'utf8')) as Record<string, FixtureMode>;

  it.each(['before', 'after'])('BN %s: loss, parameters, running statistics and eval probabilities', (modeName) => {
    const mode = fixture[modeName]!;
    const model = loadFixtureModel(mode, k);
    const opt = new Optimizer({ type: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0 }, model.params, k);
    const classes = model.outputSize;
    for (const step of mode.steps) {
      const n = step.y.length;
      const probs = new Float32Array(n * classes);
      const logits = model.forward(Float32Array.from(step.x), n, true);
      const loss = k.softmaxCrossEntropy(logits, Int32Array.from(step.y), probs, n, classes, null);
      expect(loss).toBeCloseTo(step.loss, 5);
      k.softmaxCrossEntropyBackward(probs, Int32Array.from(step.y), probs, n, classes);
      model.backward(probs, n);
      opt.update(0.1);
      step.layers_after.forEach((l, i) => {
        const layer = model.layers[i]!;
        const tol = { rtol: 1e-4, atol: 1e-5 };
        if (l.type === 'dense') {
          expectClose(layer.params[0]!.value, l.weight, tol, `layer ${i} weight`);
          if (l.bias) expectClose(layer.params[1]!.value, l.bias, tol, `layer ${i} bias`);
        } else if (l.type === 'batchnorm') {
          const bn = model.batchNorms().find((b) => b.info.index === i)!;
          expectClose(bn.gamma!.value, l.gamma, tol, `layer ${i} gamma`);
          expectClose(bn.beta!.value, l.beta, tol, `layer ${i} beta`);
          expectClose(bn.runningMean, l.running_mean, tol, `layer ${i} running_mean`);
          expectClose(bn.runningVar, l.running_var, tol, `layer ${i} running_var`);
        }
      });
    }
    const n = mode.eval.x.length / model.inputSize;
    const probs = new Float32Array(n * classes);
    const logits = model.forward(Float32Array.from(mode.eval.x), n, false);
    k.softmaxCrossEntropy(logits, new Int32Array(n), probs, n, classes, null);
    expectClose(probs, mode.eval.probs, { rtol: 1e-4, atol: 1e-5 }, 'eval probabilities');
  });
});

describe.each(kernelSets)('finite-difference gradients through the whole model (%s kernels)', (_name, k) => {
  const cases: Array<[string, object, object?]> = [
    ['BN before, relu', { hidden: [6, 5], batchNorm: 'before', activation: 'relu' }],
    // Running statistics set far off in build(): r and d clipped, so constants as the backward assumes.
    ['renorm before, elu', { hidden: [6, 5], batchNorm: 'before', activation: 'elu' }, { renorm: { rMax: 1.5, dMax: 0.5, warmupSteps: 0 } }],
    ['BN after, tanh', { hidden: [6, 5], batchNorm: 'after', activation: 'tanh' }],
    ['BN input, elu, dropout', { hidden: [6], batchNorm: 'input', activation: 'elu', dropout: 0.3 }],
    ['no BN, sigmoid', { hidden: [6, 5], batchNorm: 'none', activation: 'sigmoid' }],
    ['explicit leaky_relu', { layers: [{ type: 'dense', units: 6, bias: true }, { type: 'batchnorm' }, { type: 'leaky_relu', alpha: 0.1 }] }],
  ];

  it.each(cases)('%s', (_label, modelSpec, bnSpec = {}) => {
    const spec = resolveSpec({ dataset: { id: 'spirals' }, model: modelSpec, batchNorm: { epsilon: 1e-3, ...bnSpec } });
    const features = 4, classes = 3, n = 7;
    const build = (fuse: boolean) => {
      const rng = createRng(7);
      const model = new Sequential(expandLayers(spec.model, [features], classes), k, n, features, spec.batchNorm, rng, { fuse });
      model.initialize('glorot', rng);
      // Non-trivial γ/β so their gradients are exercised away from the identity.
      for (const bn of model.batchNorms()) {
        bn.gamma!.value.forEach((_, j, a) => { a[j] = 0.5 + 0.1 * j; });
        bn.beta!.value.forEach((_, j, a) => { a[j] = 0.05 * j - 0.1; });
        bn.runningMean.fill(50);
        bn.runningVar.fill(100);
      }
      return { model, rng, dropoutState: rng.slice() };
    };
    // Seed chosen so that no relu input lies within the margin checked below.
    const data = createRng(15);
    const x = Float32Array.from({ length: n * features }, () => nextNormal(data));
    const y = Int32Array.from({ length: n }, (_, i) => i % classes);
    const probs = new Float32Array(n * classes);
    const lossOf = ({ model, rng, dropoutState }: ReturnType<typeof build>) => () => {
      rng.set(dropoutState); // the same dropout mask on every evaluation
      const logits = model.forward(x, n, true);
      return k.softmaxCrossEntropy(logits, y, probs, n, classes, null);
    };
    const gradients = (m: ReturnType<typeof build>) => {
      lossOf(m)();
      k.softmaxCrossEntropyBackward(probs, y, probs, n, classes);
      m.model.backward(probs, n);
      return m.model.params.map((p) => p.grad.slice());
    };

    // relu and leaky_relu have a kink at 0: central differences are valid only when no input lies near it.
    const plain = build(false);
    for (const [i, layer] of plain.model.layers.entries()) {
      if (layer.info.type !== 'relu' && layer.info.type !== 'leaky_relu') continue;
      plain.rng.set(plain.dropoutState);
      const h = plain.model.forward(x, n, true, i);
      const margin = Math.min(...Array.from(h.subarray(0, n * layer.outputSize), Math.abs));
      expect(margin, `layer ${i}: smallest |input| of the activation`).toBeGreaterThan(0.02);
    }
    // Activations fused into the batch-norm / bias kernels give the same gradients as separate layers.
    const fusedModel = build(true);
    if (spec.batchNorm.renorm) {
      // The activation after a renormalization layer runs inside its kernels, as after batch norm.
      const infos = fusedModel.model.infos;
      expect(infos.some((l, i) => l.type === 'batchnorm' && fusedActivation(infos, i, spec.batchNorm, true) !== null)).toBe(true);
    }
    const fusedGrads = gradients(fusedModel);
    gradients(plain).forEach((g, i) => expectClose(fusedGrads[i]!, g, { rtol: 1e-5, atol: 1e-6 }, `fused vs separate, parameter ${i}`));

    const { model } = fusedModel;
    const loss = lossOf(fusedModel);
    for (const [i, layer] of model.layers.entries()) {
      for (const p of layer.params) {
        const analytic = p.grad.slice(); // from gradients(fusedModel) above
        // A small step keeps relu kinks from being crossed; the loss is accumulated in double.
        const numeric = numericGrad(loss, p.value, 1e-3);
        expectClose(analytic, numeric, { rtol: 5e-2, atol: 2e-3 }, `layer ${i} ${layer.info.type} ${p.name}`);
      }
    }
  });
});
