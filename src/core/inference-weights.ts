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
import { encodeSafetensors, type NamedTensor } from './safetensors.js';

export const INFERENCE_WEIGHTS_FORMAT = 'normlab-inference/1';

export function encodeInferenceWeights(model: InferenceModel): Uint8Array {
  const { input, ops } = model.inferenceForm();
  const tensors: NamedTensor[] = [];
  const described = ops.map((op, i) => op.describe((name, shape, value) => tensors.push({ name: `ops.${i}.${name}`, shape, value }), model.manifest.epsilon));
  return encodeSafetensors(tensors, {
    format: INFERENCE_WEIGHTS_FORMAT,
    input: input.kind === 'affine' ? 'affine' : 'raw',
    ops: JSON.stringify(described),
    output: 'softmax',
    classNames: JSON.stringify(model.classNames),
  });
}
