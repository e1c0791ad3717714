/**
 * Batch-norm diagnostics the trainer reports: the train/inference gap (the
 * same rows with frozen and with batch statistics), the per-epoch summary and
 * per-channel record of every BN layer, and the comparison of the moving
 * averages with the population statistics at the end of training. No I/O.
 */
import type { BatchNormChannels, BatchNormSnapshot, Metrics, TrainInferenceGap, Warning } from './events.js';
import type { Sequential } from './model.js';
import type { Rows } from './train.js';

/**
 * Loss and accuracy of rows in mini-batches of `batchSize`, in order, with
 * batch statistics (frozen: false) or the frozen ones (frozen: true). `idx`
 * picks rows of `src` (null: all of them, in order). A final batch of one row
 * (no batch variance) joins the batch before it when the buffers allow, else it is left out.
 */
export function miniBatchMetrics(model: Sequential, src: Rows, idx: Int32Array | null, batchSize: number, classes: number,
  frozen: boolean): Metrics {
  const k = model.kernels;
  const f = model.inputSize;
  const total = idx ? idx.length : src.n;
  const x = idx ? new Float32Array(model.maxBatch * f) : null;
  const y = idx ? new Int32Array(model.maxBatch) : null;
  const probs = new Float32Array(model.maxBatch * classes);
  const correct = new Int32Array(1);
  let lossSum = 0;
  let correctSum = 0;
  let counted = 0;
  for (let start = 0; start < total;) {
    let n = Math.min(batchSize, total - start);
    if (total - start - n === 1) n = n + 1 <= model.maxBatch ? n + 1 : n;
    if (n < 2 && !frozen) break;
    let xb: Float32Array, yb: Int32Array;
    if (idx) {
      k.gatherRows(src.x, src.y, idx, start, n, f, x!, y!);
      xb = x!.subarray(0, n * f);
      yb = y!.subarray(0, n);
    } else {
      xb = src.x.subarray(start * f, (start + n) * f);
      yb = src.y.subarray(start, start + n);
    }
    const logits = frozen ? model.forward(xb, n, false) : model.forwardBatchStatistics(xb, n);
    lossSum += k.softmaxCrossEntropy(logits, yb, probs, n, classes, correct) * n;
    correctSum += correct[0]!;
    counted += n;
    start += n;
  }
  return { loss: lossSum / Math.max(1, counted), accuracy: correctSum / Math.max(1, counted) };
}

/**
 * The gap on one split. `frozen` is the split's inference-form metrics when
 * the caller already has them (the epoch's validation metrics); otherwise
 * they are measured here, in the same mini-batches.
 */
export function measureGap(model: Sequential, split: 'val' | 'train', src: Rows, idx: Int32Array | null, batchSize: number,
  classes: number, frozen: Metrics | null): TrainInferenceGap | null {
  if (model.normalizers().length === 0 || (idx ? idx.length : src.n) < 2) return null;
  const frozenMetrics = frozen ?? miniBatchMetrics(model, src, idx, batchSize, classes, true);
  const batch = miniBatchMetrics(model, src, idx, batchSize, classes, false);
  return {
    split,
    frozen: roundMetrics(frozenMetrics),
    batch: roundMetrics(batch),
    accuracy: round(batch.accuracy - frozenMetrics.accuracy, 6),
    loss: round(frozenMetrics.loss - batch.loss, 6),
  };
}

/** The epoch's per-layer summary (for the epoch event) and per-channel record (GET /v1/jobs/:id/batchnorm). */
export function batchNormEpoch(model: Sequential): { summary: BatchNormSnapshot[]; channels: BatchNormChannels[] } {
  const summary: BatchNormSnapshot[] = [];
  const channels: BatchNormChannels[] = [];
  for (const bn of model.normStatistics()) {
    const c = bn.channels;
    const eps = bn.epsilon;
    const stats = bn.epochStatistics();
    const gamma = bn.gamma;
    let gammaSq = 0;
    for (let j = 0; j < c; j++) gammaSq += gamma ? gamma[j]! ** 2 : 1;
    let meanDistance = 0;
    let varLogRatio = 0;
    if (stats) {
      for (let j = 0; j < c; j++) {
        meanDistance += Math.abs(bn.runningMean[j]! - stats.mean[j]!) / Math.sqrt(stats.variance[j]! + eps);
        varLogRatio += Math.abs(Math.log((bn.runningVar[j]! + eps) / (stats.variance[j]! + eps)));
      }
    }
    summary.push({
      layer: bn.layer,
      batchMean: stats ? round(average(stats.mean), 6) : null,
      batchVar: stats ? round(average(stats.variance), 6) : null,
      runningMean: round(average(bn.runningMean), 6),
      runningVar: round(average(bn.runningVar), 6),
      gammaNorm: round(Math.sqrt(gammaSq), 6),
      batchMeanSpread: stats ? round(spread(stats.mean), 6) : null,
      batchVarSpread: stats ? round(spread(stats.variance), 6) : null,
      meanDistance: stats ? round(meanDistance / c, 6) : null,
      varLogRatio: stats ? round(varLogRatio / c, 6) : null,
    });
    channels.push({
      layer: bn.layer,
      kind: bn.kind,
      channels: c,
      frozen: stats === null,
      batchMean: stats ? compact(stats.mean) : null,
      batchVar: stats ? compact(stats.variance) : null,
      runningMean: compact(bn.runningMean),
      runningVar: compact(bn.runningVar),
      gamma: bn.gamma ? compact(bn.gamma) : null,
      beta: bn.beta ? compact(bn.beta) : null,
    });
  }
  return { summary, channels };
}

/** Copies of every BN layer's running statistics. */
export function saveRunningStatistics(model: Sequential): Array<{ mean: Float32Array; variance: Float32Array }> {
  return model.normStatistics().map((bn) => ({ mean: bn.runningMean.slice(), variance: bn.runningVar.slice() }));
}

export function restoreRunningStatistics(model: Sequential, saved: Array<{ mean: Float32Array; variance: Float32Array }>): void {
  model.normStatistics().forEach((bn, i) => {
    bn.runningMean.set(saved[i]!.mean);
    bn.runningVar.set(saved[i]!.variance);
  });
}

/** Per BN layer, how far the moving averages are from the population statistics (same units as the epoch summary). */
export function statisticsDistance(model: Sequential, moving: Array<{ mean: Float32Array; variance: Float32Array }>):
  Array<{ layer: number; meanDistance: number; varLogRatio: number }> {
  return model.normStatistics().map((bn, i) => {
    const c = bn.channels;
    const eps = bn.epsilon;
    let meanDistance = 0;
    let varLogRatio = 0;
    for (let j = 0; j < c; j++) {
      meanDistance += Math.abs(moving[i]!.mean[j]! - bn.runningMean[j]!) / Math.sqrt(bn.runningVar[j]! + eps);
      varLogRatio += Math.abs(Math.log((moving[i]!.variance[j]! + eps) / (bn.runningVar[j]! + eps)));
    }
    return { layer: bn.layer, meanDistance: round(meanDistance / c, 4), varLogRatio: round(varLogRatio / c, 4) };
  });
}

/** When BN_STATS_LAG fires: the moving averages lose this much accuracy, or their loss is this much higher (relative). */
export interface StatsLagThresholds { accuracy: number; loss: number }

/**
 * More than 2 points of accuracy, or a 25 % higher loss (BN_STATS_LAG_ACCURACY, BN_STATS_LAG_LOSS): lags that
 * change what a model is worth. A 10-epoch Fashion-MNIST run with defaults lags by 1.0 point and 15 % (README).
 */
export const DEFAULT_STATS_LAG: StatsLagThresholds = { accuracy: 0.02, loss: 0.25 };

/**
 * BN_STATS_LAG when the moving averages cost more than the thresholds
 * against the population statistics on the split, naming the layers whose
 * moving averages are furthest from the population statistics.
 */
export function statsLagWarning(split: 'val' | 'train', moving: Metrics, population: Metrics,
  layers: Array<{ layer: number; meanDistance: number; varLogRatio: number }>, kept: 'moving' | 'population',
  context: { steps: number; momentum: number | null }, thresholds: StatsLagThresholds): Warning | null {
  const accuracyCost = population.accuracy - moving.accuracy;
  const lossCost = (moving.loss - population.loss) / Math.max(population.loss, 1e-6);
  if (!(accuracyCost > thresholds.accuracy || lossCost > thresholds.loss)) return null;
  const ranked = [...layers].sort((a, b) => b.meanDistance + b.varLogRatio - (a.meanDistance + a.varLogRatio));
  const named = ranked.filter((l) => l.meanDistance >= 0.1 || l.varLogRatio >= 0.2);
  const blamed = named.length > 0 ? named : ranked.slice(0, 1);
  const splitName = split === 'val' ? 'validation' : 'training';
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const horizon = context.momentum === null ? 'a cumulative average' : `about ${Math.round(1 / (1 - context.momentum))} steps`;
  const message = `the moving averages of BN layer${blamed.length > 1 ? 's' : ''} ${blamed.map((l) => l.layer).join(', ')} lag the ` +
    `trained weights: on the ${splitName} split they give accuracy ${pct(moving.accuracy)} and loss ${moving.loss.toFixed(4)}, the ` +
    `population statistics ${pct(population.accuracy)} and ${population.loss.toFixed(4)} (${context.steps} training steps; ` +
    `batchNorm.momentum ${context.momentum ?? 'null'} averages over ${horizon}). Fixes: train more steps, lower batchNorm.momentum ` +
    `(e.g. 0.9), or set batchNorm.inferenceStats to "population" or "auto". This model keeps the ${kept} statistics.`;
  return {
    code: 'BN_STATS_LAG', message,
    details: {
      split, kept, moving: roundMetrics(moving), population: roundMetrics(population),
      accuracyCost: round(accuracyCost, 6), layers: blamed.map((l) => l.layer), distances: layers,
    },
  };
}

function average(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / Math.max(1, a.length);
}

/** Standard deviation across channels. */
function spread(a: ArrayLike<number>): number {
  const m = average(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - m) ** 2;
  return Math.sqrt(s / Math.max(1, a.length));
}

/** Six significant digits: per-channel arrays stay small in JSON. */
function compact(a: ArrayLike<number>): number[] {
  return Array.from(a, (v) => Number(v.toPrecision(6)));
}

function roundMetrics(m: Metrics): Metrics {
  return { loss: round(m.loss, 6), accuracy: round(m.accuracy, 6) };
}

function round(x: number, digits: number): number {
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}
