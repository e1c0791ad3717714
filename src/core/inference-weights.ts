/**
 * The inference form as a safetensors file: the folded tensors predict
 * computes with (GET /v1/models/:id/weights?form=inference). Tensor names are
 * ops.{i}.{weight|bias|gamma|beta|mean|variance}; the metadata `ops` (JSON)
 * says what each op does:
 *   dense      y = x·Wᵀ + b, W [out, in]
 *   conv2d     y = conv(x, W [filters, inChannels, k, k]) + b, stride, padding
 *   batchnorm  y = (x − mean)/√(variance + epsilon)·gamma + beta per channel
 *   activation, pool (maxpool2d | avgpool2d | globalavgpool)
 * and `input` how raw rows enter: `raw` (no preprocessing left: none, or a
 * pure scale folded into ops.0.weight) or `affine` (first x' = (x − offset)·factor
 * with the model's fitted preprocessing, as GET /v1/models/:id lists it).
 * The output is softmax over the last op's values.
 */
import type { InferenceModel } from './inference.js';
import { ACTIVATIONS } from './kernels/types.js';
import { encodeSafetensors, type NamedTensor } from './safetensors.js';

export const INFERENCE_WEIGHTS_FORMAT = 'normlab-inference/1';

const actName = (code: number) => ACTIVATIONS[code]!;

export function encodeInferenceWeights(model: InferenceModel): Uint8Array {
  const { input, ops } = model.inferenceForm();
  const tensors: NamedTensor[] = [];
  const put = (i: number, name: string, shape: number[], value: Float32Array) => tensors.push({ name: `ops.${i}.${name}`, shape, value });
  const described = ops.map((op, i) => {
    switch (op.kind) {
      case 'dense':
        put(i, 'weight', [op.out, op.in], op.weight);
        put(i, 'bias', [op.out], op.bias);
        return { kind: op.kind, in: op.in, out: op.out };
      case 'conv2d': {
        const l = op.layer;
        put(i, 'weight', [l.filters, l.inChannels, l.kernelSize, l.kernelSize], op.weight);
        put(i, 'bias', [l.filters], op.bias);
        return { kind: op.kind, inChannels: l.inChannels, inHeight: l.inHeight, inWidth: l.inWidth, filters: l.filters, kernelSize: l.kernelSize, stride: l.stride, padding: l.padding };
      }
      case 'batchnorm':
        for (const name of ['gamma', 'beta', 'mean', 'variance'] as const) put(i, name, [op.channels], op[name]);
        return { kind: op.kind, channels: op.channels, spatial: op.spatial, epsilon: model.manifest.epsilon };
      case 'activation':
        return { kind: op.kind, activation: actName(op.code), alpha: op.alpha };
      case 'pool': {
        const { index: _index, ...layer } = op.layer;
        return { kind: op.kind, ...layer };
      }
    }
  });
  return encodeSafetensors(tensors, {
    format: INFERENCE_WEIGHTS_FORMAT,
    input: input.kind === 'affine' ? 'affine' : 'raw',
    ops: JSON.stringify(described),
    output: 'softmax',
    classNames: JSON.stringify(model.classNames),
  });
}
