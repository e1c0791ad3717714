/**
 * Layer descriptions (what the manifest records) and their expansion from the
 * job spec's `mlp` / `cnn` shorthand or explicit `layers` list. Values flow
 * NCHW: a layer's input is [C, H, W] after convolutions and [features] after
 * dense layers; `flatten` (or a dense layer) turns [C, H, W] into C·H·W features.
 */
import { convOutputSize, poolOutputSize, type ActivationKind } from './kernels/types.js';
import { SpecError, type LayerSpec, type ModelSpec } from './spec.js';

export type LayerInfo =
  | { index: number; type: 'dense'; in: number; out: number; bias: boolean }
  /** spatial: values per channel and row (H·W after a conv, 1 after a dense layer). */
  | { index: number; type: 'batchnorm'; channels: number; spatial: number }
  | { index: number; type: ActivationKind; alpha: number }
  | { index: number; type: 'dropout'; rate: number }
  | {
      index: number; type: 'conv2d'; inChannels: number; inHeight: number; inWidth: number; filters: number;
      kernelSize: number; stride: number; padding: number; outHeight: number; outWidth: number; bias: boolean;
    }
  | {
      index: number; type: 'maxpool2d' | 'avgpool2d'; channels: number; inHeight: number; inWidth: number;
      size: number; stride: number; outHeight: number; outWidth: number;
    }
  | { index: number; type: 'globalavgpool'; channels: number; spatial: number }
  | { index: number; type: 'flatten'; features: number };

/** Default alpha: leaky_relu negative slope 0.01 (PyTorch), elu alpha 1. */
function defaultAlpha(kind: ActivationKind): number {
  return kind === 'leaky_relu' ? 0.01 : kind === 'elu' ? 1 : 0;
}

/** A hidden block: weight layer, then BN and activation in the order `batchNorm` says. */
type WeightLayer = Extract<LayerSpec, { type: 'dense' | 'conv2d' }>;
function block(weight: WeightLayer, model: ModelSpec): LayerSpec[] {
  const act: LayerSpec = { type: model.activation };
  switch (model.batchNorm) {
    case 'before': // weights → BN → activation; β replaces the bias
      return [{ ...weight, bias: false }, { type: 'batchnorm' }, act];
    case 'after': // weights → activation → BN
      return [{ ...weight, bias: true }, act, { type: 'batchnorm' }];
    default:
      return [{ ...weight, bias: true }, act];
  }
}

/** The hidden stack of the `mlp` and `cnn` shorthands. */
function shorthandLayers(model: ModelSpec): LayerSpec[] {
  const out: LayerSpec[] = [];
  if (model.batchNorm === 'input') out.push({ type: 'batchnorm' });
  const dropout: LayerSpec[] = model.dropout > 0 ? [{ type: 'dropout', rate: model.dropout }] : [];
  if (model.architecture === 'cnn') {
    for (const filters of model.conv) {
      out.push(...block({ type: 'conv2d', filters, kernelSize: 3, padding: 'same' }, model), { type: 'maxpool2d', size: 2 });
    }
    out.push({ type: 'flatten' });
    for (const units of model.dense) out.push(...block({ type: 'dense', units }, model), ...dropout);
  } else {
    for (const units of model.hidden) out.push(...block({ type: 'dense', units }, model), ...dropout);
  }
  return out;
}

/**
 * The full layer list for inputs of `inputShape` ([features] or [C, H, W]):
 * the hidden stack plus the output dense layer with one unit per class. A
 * dense or conv layer directly followed by batch norm gets no bias, even when
 * the explicit list asks for one (the batch mean subtracts it; β replaces it;
 * BN_REDUNDANT_BIAS says so). Throws SpecError when a layer does not fit the
 * shape it receives (a conv on tabular data, a pool larger than its input).
 */
export function expandLayers(model: ModelSpec, inputShape: number[], classes: number): LayerInfo[] {
  const drafts: LayerSpec[] = model.layers ? model.layers.map((l) => ({ ...l })) : shorthandLayers(model);
  drafts.push({ type: 'dense', units: classes, bias: true });
  const pathOf = (i: number) => (model.layers && i < model.layers.length ? `/model/layers/${i}` : `/model/${model.architecture === 'cnn' ? 'conv' : 'hidden'}`);
  const fail = (i: number, message: string): never => { throw new SpecError([{ path: pathOf(i), message }]); };
  let shape = [...inputShape];
  const size = () => shape.reduce((a, b) => a * b, 1);
  const image = (i: number, what: string): [number, number, number] => {
    if (shape.length !== 3) fail(i, `${what} needs image input [channels, height, width]; it receives [${shape}]`);
    return shape as [number, number, number];
  };
  return drafts.map((d, index): LayerInfo => {
    const biasAllowed = drafts[index + 1]?.type !== 'batchnorm';
    switch (d.type) {
      case 'dense': {
        const info: LayerInfo = { index, type: 'dense', in: size(), out: d.units, bias: biasAllowed && (d.bias ?? true) };
        shape = [d.units];
        return info;
      }
      case 'conv2d': {
        const [c, h, w] = image(index, 'conv2d');
        const stride = d.stride ?? 1;
        const same = (d.padding ?? 'same') === 'same';
        if (same && (d.kernelSize % 2 === 0 || stride !== 1)) fail(index, "padding 'same' needs an odd kernelSize and stride 1");
        const padding = same ? (d.kernelSize - 1) / 2 : 0;
        const outHeight = convOutputSize(h, d.kernelSize, stride, padding);
        const outWidth = convOutputSize(w, d.kernelSize, stride, padding);
        if (outHeight < 1 || outWidth < 1) fail(index, `a ${d.kernelSize}×${d.kernelSize} kernel does not fit a ${h}×${w} input`);
        shape = [d.filters, outHeight, outWidth];
        return {
          index, type: 'conv2d', inChannels: c, inHeight: h, inWidth: w, filters: d.filters, kernelSize: d.kernelSize,
          stride, padding, outHeight, outWidth, bias: biasAllowed && (d.bias ?? true),
        };
      }
      case 'maxpool2d':
      case 'avgpool2d': {
        const [c, h, w] = image(index, d.type);
        const stride = d.stride ?? d.size;
        const outHeight = poolOutputSize(h, d.size, stride);
        const outWidth = poolOutputSize(w, d.size, stride);
        if (outHeight < 1 || outWidth < 1) fail(index, `a ${d.size}×${d.size} window does not fit a ${h}×${w} input`);
        shape = [c, outHeight, outWidth];
        return { index, type: d.type, channels: c, inHeight: h, inWidth: w, size: d.size, stride, outHeight, outWidth };
      }
      case 'globalavgpool': {
        const [c, h, w] = image(index, 'globalavgpool');
        shape = [c];
        return { index, type: 'globalavgpool', channels: c, spatial: h * w };
      }
      case 'flatten':
        shape = [size()];
        return { index, type: 'flatten', features: shape[0]! };
      case 'batchnorm':
        return { index, type: 'batchnorm', channels: shape[0]!, spatial: size() / shape[0]! };
      case 'dropout':
        return { index, type: 'dropout', rate: d.rate };
      default:
        return { index, type: d.type, alpha: d.alpha ?? defaultAlpha(d.type) };
    }
  });
}

export function parameterCount(layers: LayerInfo[]): number {
  let total = 0;
  for (const l of layers) {
    if (l.type === 'dense') total += l.in * l.out + (l.bias ? l.out : 0);
    if (l.type === 'conv2d') total += l.filters * l.inChannels * l.kernelSize ** 2 + (l.bias ? l.filters : 0);
    if (l.type === 'batchnorm') total += 2 * l.channels;
  }
  return total;
}

/** Values per row after a layer (its output size). */
export function outputSize(l: LayerInfo, inputSize: number): number {
  switch (l.type) {
    case 'dense': return l.out;
    case 'conv2d': return l.filters * l.outHeight * l.outWidth;
    case 'maxpool2d': case 'avgpool2d': return l.channels * l.outHeight * l.outWidth;
    case 'globalavgpool': return l.channels;
    default: return inputSize;
  }
}
