// The layer registry: every spec type has a module; what is derived from a
// module's tensor list (parameter count, artifact checks, checkpoint names)
// agrees with the model that training builds.
import { describe, expect, it } from 'vitest';
import { buildArtifact, MANIFEST_FORMAT, readWeights, type Artifact } from '../../src/core/artifact.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import { expandLayers, parameterCount } from '../../src/core/layers.js';
import { LAYER_MODULES, LAYER_SPECS, moduleOf } from '../../src/core/layers/index.js';
import { Sequential } from '../../src/core/model.js';
import { createRng } from '../../src/core/rng.js';
import { resolveSpec } from '../../src/core/spec.js';
import { encodeSafetensors, decodeSafetensors } from '../../src/core/safetensors.js';

const cnnLayers = [
  { type: 'conv2d', filters: 3, kernelSize: 3 }, { type: 'batchnorm' }, { type: 'relu' }, { type: 'maxpool2d', size: 2 },
  { type: 'conv2d', filters: 2, kernelSize: 3, padding: 'valid' }, { type: 'globalavgpool' }, { type: 'dense', units: 4 }, { type: 'batchnorm' },
];

function build(batchNorm: Record<string, unknown>) {
  const spec = resolveSpec({ dataset: { id: 'x' }, model: { layers: cnnLayers }, batchNorm, training: { batchSize: 4 } });
  const layers = expandLayers(spec.model, [1, 8, 8], 3);
  const model = new Sequential(layers, portableKernels, 4, 64, spec.batchNorm, createRng(1));
  return { spec, layers, model };
}

function artifactOf(batchNorm: Record<string, unknown>): Artifact {
  const { spec, layers, model } = build(batchNorm);
  return buildArtifact({
    format: MANIFEST_FORMAT, spec, layers, inputShape: [1, 8, 8], features: 64, classes: 3, classNames: ['a', 'b', 'c'],
    preprocess: { kind: 'none' }, inferenceStats: 'moving', epsilon: spec.batchNorm.epsilon, parameters: 0,
    metrics: {} as never, createdAt: new Date(0).toISOString(),
  }, model.namedTensors());
}

describe('layer registry', () => {
  it('maps every type of the spec union to a module, and every module type back to a spec', () => {
    const specTypes = LAYER_SPECS.flatMap((s) => {
      const tag = s.properties.type as unknown as { const?: string; anyOf?: Array<{ const: string }> };
      return tag.anyOf ? tag.anyOf.map((v) => v.const) : [tag.const!];
    });
    expect(new Set(specTypes)).toEqual(new Set(LAYER_MODULES.flatMap((m) => [...m.types])));
    for (const t of specTypes) expect(moduleOf(t).types).toContain(t);
    expect(() => moduleOf('lstm-typo')).toThrow(/unknown layer type/);
  });

  it.each([
    [{}, 2 * (3 + 4)],
    [{ center: false }, 3 + 4],
    [{ scale: false }, 3 + 4],
    [{ center: false, scale: false }, 0],
  ])('parameterCount counts the γ and β the model creates (batchNorm %j)', (bn, bnParams) => {
    const { spec, layers, model } = build(bn);
    const trainable = model.params.reduce((a, p) => a + p.value.length, 0);
    expect(parameterCount(layers, spec.batchNorm)).toBe(trainable);
    // conv 3·1·9 (no bias before BN), conv 2·3·9 + 2, dense 4·2 (no bias before BN), output dense 3·4 + 3
    expect(trainable).toBe(27 + 56 + 8 + 15 + bnParams);
  });

  it('readWeights checks conv2d tensors too (a missing or misshapen conv weight is an error, not a crash at inference)', () => {
    const artifact = artifactOf({});
    expect(() => readWeights(artifact)).not.toThrow();
    const { tensors } = decodeSafetensors(artifact.weights);
    const without = [...tensors.values()].filter((t) => t.name !== 'layers.4.weight');
    expect(() => readWeights({ ...artifact, weights: encodeSafetensors(without, {}) })).toThrow('layers.4.weight missing or not of shape [2,3,3,3]');
    const reshaped = [...tensors.values()].map((t) => (t.name === 'layers.0.weight' ? { ...t, shape: [3, 9] } : t));
    expect(() => readWeights({ ...artifact, weights: encodeSafetensors(reshaped, {}) })).toThrow('layers.0.weight missing or not of shape [3,1,3,3]');
  });

  it('readWeights wants γ and β exactly when the spec learns them', () => {
    const artifact = artifactOf({ center: false });
    const names = [...decodeSafetensors(artifact.weights).tensors.keys()];
    expect(names.filter((n) => n.startsWith('layers.1.'))).toEqual(['layers.1.gamma', 'layers.1.running_mean', 'layers.1.running_var']);
    const { tensors } = decodeSafetensors(artifact.weights);
    const without = [...tensors.values()].filter((t) => t.name !== 'layers.7.gamma');
    expect(() => readWeights({ ...artifact, weights: encodeSafetensors(without, {}) })).toThrow('layers.7.gamma missing');
  });
});

describe('batch norm on raw inputs of each shape', () => {
  const inputBn = (shape: number[]) => {
    const spec = resolveSpec({ dataset: { id: 'x' }, model: { hidden: [4], batchNorm: 'input' } });
    return expandLayers(spec.model, shape, 2)[0];
  };
  it('normalizes an image per channel, tabular rows and sequences [steps, features] per value', () => {
    expect(inputBn([3, 8, 8])).toMatchObject({ type: 'batchnorm', channels: 3, spatial: 64 });
    expect(inputBn([5])).toMatchObject({ type: 'batchnorm', channels: 5, spatial: 1 });
    // Not per step: the steps of a [3, 2] row are not channels of an image.
    expect(inputBn([3, 2])).toMatchObject({ type: 'batchnorm', channels: 6, spatial: 1 });
  });
});
