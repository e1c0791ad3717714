/**
 * Batch-norm misuse warnings with stable codes, from the spec, its expanded
 * layers and (for BN_INPUT_SKEWED) the preprocessed training rows. The
 * trainer emits them as `warning` events before the first epoch. A warning
 * never stops a job. BN_STATS_LAG, measured after training, is in
 * diagnostics.ts.
 */
import type { Warning } from './events.js';
import type { LayerInfo } from './layers.js';
import type { JobSpec } from './spec.js';

/** Below this many rows per batch (or virtual batch) the batch statistics are noisy (BN_SMALL_BATCH). */
export const SMALL_BATCH = 8;
/** A momentum at or below this looks like PyTorch's convention (weight of the new batch) rather than Keras's. */
export const PYTORCH_LIKE_MOMENTUM = 0.5;
/** BN_INPUT_SKEWED: this share of the (non-constant) input features has |skewness| above SKEWNESS_LIMIT. */
export const SKEWED_SHARE = 0.5;
export const SKEWNESS_LIMIT = 2;

/** The warnings that follow from the spec and its layers alone. */
export function specWarnings(spec: JobSpec, layers: LayerInfo[]): Warning[] {
  const out: Warning[] = [];
  const bns = layers.filter((l) => l.type === 'batchnorm');
  if (bns.length === 0) return out;
  const { batchNorm: bn, training } = spec;

  const dropouts = layers.filter((l) => l.type === 'dropout');
  if (dropouts.length > 0) {
    out.push({
      code: 'BN_WITH_DROPOUT',
      message: `dropout (layer${dropouts.length > 1 ? 's' : ''} ${dropouts.map((l) => l.index).join(', ')}) in a network with batch norm ` +
        `(layer${bns.length > 1 ? 's' : ''} ${bns.map((l) => l.index).join(', ')}): dropping units makes the batch statistics noisy, and ` +
        'batch norm regularizes by itself; it may be better to leave dropout out (model.dropout: 0)',
      details: { dropoutLayers: dropouts.map((l) => l.index), batchNormLayers: bns.map((l) => l.index) },
    });
  }
  if (bn.momentum !== null && bn.momentum <= PYTORCH_LIKE_MOMENTUM) {
    out.push({
      code: 'BN_MOMENTUM_CONVENTION',
      message: `batchNorm.momentum ${bn.momentum} gives the new batch a weight of ${round(1 - bn.momentum)}: this API follows Keras ` +
        `(running = momentum·running + (1−momentum)·batch), so PyTorch's momentum=${bn.momentum} is ${round(1 - bn.momentum)} here`,
      details: { momentum: bn.momentum, pytorchEquivalent: round(1 - bn.momentum) },
    });
  }
  const freeze = training.freezeBatchNormAfterEpoch;
  if (freeze !== null && freeze >= training.epochs) {
    out.push({
      code: 'BN_FREEZE_NEVER',
      message: `training.freezeBatchNormAfterEpoch ${freeze} is not below training.epochs ${training.epochs}: batch norm is never frozen; ` +
        `set it to at most ${training.epochs - 1} or leave it null`,
      details: { freezeBatchNormAfterEpoch: freeze, epochs: training.epochs },
    });
  }
  const statsRows = bn.virtualBatchSize ?? training.batchSize;
  if (statsRows < SMALL_BATCH && bn.renorm === null) {
    const what = bn.virtualBatchSize !== null ? `batchNorm.virtualBatchSize ${statsRows}` : `training.batchSize ${statsRows}`;
    out.push({
      code: 'BN_SMALL_BATCH',
      message: `${what}: batch statistics over fewer than ${SMALL_BATCH} rows are noisy and differ from the frozen ones used at inference; ` +
        'batch renormalization corrects for it (batchNorm.renorm: {})',
      details: { rows: statsRows, minimum: SMALL_BATCH },
    });
  }
  const biased = (spec.model.layers ?? []).flatMap((l, i, all) =>
    (l.type === 'dense' || l.type === 'conv2d') && l.bias === true && all[i + 1]?.type === 'batchnorm' ? [i] : []);
  if (biased.length > 0) {
    out.push({
      code: 'BN_REDUNDANT_BIAS',
      message: `model.layers ${biased.join(', ')}: a bias directly before batch norm is subtracted out with the batch mean (β takes its ` +
        'place); it is dropped, as the shorthand does',
      details: { layers: biased },
    });
  }
  return out;
}

/**
 * BN_INPUT_SKEWED: batch norm on the raw inputs (the first layer) when most
 * input features are far from Gaussian; the article suggests scaling them as
 * a preprocessing step instead. `x` holds preprocessed training rows.
 */
export function inputSkewWarning(layers: LayerInfo[], x: Float32Array, n: number, features: number): Warning | null {
  if (layers[0]?.type !== 'batchnorm' || n < 3) return null;
  const rows = Math.min(n, 5000); // a sample is enough for a shape statistic
  let skewed = 0;
  let varying = 0;
  const skews: number[] = [];
  for (let j = 0; j < features; j++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += x[r * features + j]!;
    mean /= rows;
    let m2 = 0;
    let m3 = 0;
    for (let r = 0; r < rows; r++) {
      const d = x[r * features + j]! - mean;
      m2 += d * d;
      m3 += d * d * d;
    }
    m2 /= rows;
    m3 /= rows;
    if (m2 <= 1e-12) continue;
    varying++;
    const skew = m3 / m2 ** 1.5;
    skews.push(Math.abs(skew));
    if (Math.abs(skew) > SKEWNESS_LIMIT) skewed++;
  }
  if (varying === 0 || skewed / varying < SKEWED_SHARE) return null;
  skews.sort((a, b) => a - b);
  const median = skews[Math.floor(skews.length / 2)]!;
  return {
    code: 'BN_INPUT_SKEWED',
    message: `batch norm on the raw inputs, but ${skewed} of ${varying} input features have |skewness| above ${SKEWNESS_LIMIT} (median ` +
      `${median.toFixed(2)}): mini-batch statistics of such features are unstable; scale them as preprocessing instead ` +
      '(dataset.preprocess "scale" or "standardize", model.batchNorm "before")',
    details: { skewedFeatures: skewed, features: varying, medianAbsSkewness: round(median), limit: SKEWNESS_LIMIT },
  };
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
