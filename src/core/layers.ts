/**
 * The expansion of the job spec's `mlp` / `cnn` shorthand or explicit
 * `layers` list into layer descriptions (what the manifest records; each
 * type's own expansion is in its module under ./layers/). Values flow
 * NCHW: a layer's input is [C, H, W] after convolutions and [features] after
 * dense layers; `flatten` (or a dense layer) turns [C, H, W] into C·H·W features.
 */
import { moduleOf, type LayerInfo } from './layers/index.js';
import { SpecError, type LayerSpec, type ModelSpec } from './spec.js';

export { multiplyAddsPerRow, outputSize, parameterCount, type LayerInfo } from './layers/index.js';

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
  } else if (model.architecture === 'rnn') {
    // Every layer but the top one passes its whole sequence up; the top one's last step feeds the output layer.
    const batchNorm = model.batchNorm as 'none' | 'sequence' | 'recurrent';
    model.hidden.forEach((units, i) => out.push({
      type: model.cell, units, returnSequences: i < model.hidden.length - 1, bidirectional: model.bidirectional, batchNorm,
      ...(model.nonlinearity ? { nonlinearity: model.nonlinearity } : {}),
    }, ...dropout));
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
  return drafts.map((d, index): LayerInfo => {
    const biasAllowed = drafts[index + 1]?.type !== 'batchnorm';
    const out = moduleOf(d.type).expand(d, { index, shape, biasAllowed, fail: (message) => fail(index, message) });
    shape = out.shape;
    return out.info as LayerInfo;
  });
}
