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
/**
 * BN_INPUT_SKEWED: a feature is far from Gaussian when |skewness| > 2 or its
 * excess kurtosis is above 7 (heavy tails: mostly one value, as dark pixels)
 * or below −1.5 (two modes: pixels either dark or bright; a uniform feature
 * has −1.2); the warning fires when at least this share of the features are.
 * Fashion-MNIST's pixels: 51 %; the synthetic 2-D sets but xor: none.
 */
export const NON_GAUSSIAN_SHARE = 1 / 3;
export const SKEWNESS_LIMIT = 2;
export const KURTOSIS_RANGE = [-1.5, 7] as const;

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
 * BN_INPUT_SKEWED: batch norm on the raw inputs (the first layer) when many
 * input features are far from Gaussian; the article suggests scaling them as
 * a preprocessing step instead. `x` holds preprocessed training rows.
 */
export function inputSkewWarning(layers: LayerInfo[], x: Float32Array, n: number, features: number): Warning | null {
  if (layers[0]?.type !== 'batchnorm' || n < 3) return null;
  const rows = Math.min(n, 5000); // a sample is enough for shape statistics
  let far = 0;
  let varying = 0;
  for (let j = 0; j < features; j++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += x[r * features + j]!;
    mean /= rows;
    let m2 = 0;
    let m3 = 0;
    let m4 = 0;
    for (let r = 0; r < rows; r++) {
      const d = x[r * features + j]! - mean;
      m2 += d * d;
      m3 += d * d * d;
      m4 += d * d * d * d;
    }
    m2 /= rows;
    m3 /= rows;
    m4 /= rows;
    if (m2 <= 1e-12) continue; // constant: batch norm cannot make it worse
    varying++;
    const skewness = m3 / m2 ** 1.5;
    const kurtosis = m4 / (m2 * m2) - 3;
    if (Math.abs(skewness) > SKEWNESS_LIMIT || kurtosis > KURTOSIS_RANGE[1] || kurtosis < KURTOSIS_RANGE[0]) far++;
  }
  if (varying === 0 || far / varying < NON_GAUSSIAN_SHARE) return null;
  return {
    code: 'BN_INPUT_SKEWED',
    message: `batch norm on the raw inputs, but ${far} of ${varying} input features are far from Gaussian (|skewness| > ` +
      `${SKEWNESS_LIMIT}, or excess kurtosis above ${KURTOSIS_RANGE[1]} or below ${KURTOSIS_RANGE[0]}): their mini-batch statistics ` +
      'are unstable; scale them as preprocessing instead (dataset.preprocess "scale" or "standardize") and normalize inside the ' +
      'network (model.batchNorm "before")',
    details: { nonGaussianFeatures: far, features: varying, share: round(far / varying) },
  };
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
