/**
 * Layer descriptions (what the manifest records) and their expansion from the
 * job spec's `mlp` shorthand or explicit `layers` list.
 */
import type { ActivationKind } from './kernels/types.js';
import type { ModelSpec } from './spec.js';

export type LayerInfo =
  | { index: number; type: 'dense'; in: number; out: number; bias: boolean }
  | { index: number; type: 'batchnorm'; channels: number }
  | { index: number; type: ActivationKind; alpha: number }
  | { index: number; type: 'dropout'; rate: number };

/** Default alpha: leaky_relu negative slope 0.01 (PyTorch), elu alpha 1. */
function defaultAlpha(kind: ActivationKind): number {
  return kind === 'leaky_relu' ? 0.01 : kind === 'elu' ? 1 : 0;
}

type LayerDraft =
  | { type: 'dense'; units: number; bias?: boolean }
  | { type: 'batchnorm' }
  | { type: ActivationKind; alpha?: number }
  | { type: 'dropout'; rate: number };

/** The hidden stack of the `mlp` shorthand, for each batch-norm placement. */
function shorthandLayers(model: ModelSpec): LayerDraft[] {
  const act: LayerDraft = { type: model.activation };
  const out: LayerDraft[] = [];
  if (model.batchNorm === 'input') out.push({ type: 'batchnorm' });
  for (const units of model.hidden) {
    switch (model.batchNorm) {
      case 'before': // dense → BN → activation; β replaces the dense bias
        out.push({ type: 'dense', units, bias: false }, { type: 'batchnorm' }, act);
        break;
      case 'after': // dense → activation → BN
        out.push({ type: 'dense', units, bias: true }, act, { type: 'batchnorm' });
        break;
      default:
        out.push({ type: 'dense', units, bias: true }, act);
    }
    if (model.dropout > 0) out.push({ type: 'dropout', rate: model.dropout });
  }
  return out;
}

/**
 * The full layer list: the hidden stack plus the output dense layer with one
 * unit per class. A dense layer directly followed by batch norm gets no bias
 * unless the explicit list asks for one.
 */
export function expandLayers(model: ModelSpec, features: number, classes: number): LayerInfo[] {
  const drafts: LayerDraft[] = model.layers ? model.layers.map((l) => ({ ...l }) as LayerDraft) : shorthandLayers(model);
  drafts.push({ type: 'dense', units: classes, bias: true });
  const layers: LayerInfo[] = [];
  let width = features;
  drafts.forEach((d, index) => {
    switch (d.type) {
      case 'dense': {
        const bias = d.bias ?? drafts[index + 1]?.type !== 'batchnorm';
        layers.push({ index, type: 'dense', in: width, out: d.units, bias });
        width = d.units;
        break;
      }
      case 'batchnorm':
        layers.push({ index, type: 'batchnorm', channels: width });
        break;
      case 'dropout':
        layers.push({ index, type: 'dropout', rate: d.rate });
        break;
      default:
        layers.push({ index, type: d.type, alpha: d.alpha ?? defaultAlpha(d.type) });
    }
  });
  return layers;
}

export function parameterCount(layers: LayerInfo[]): number {
  let total = 0;
  for (const l of layers) {
    if (l.type === 'dense') total += l.in * l.out + (l.bias ? l.out : 0);
    if (l.type === 'batchnorm') total += 2 * l.channels;
  }
  return total;
}
