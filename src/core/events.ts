/**
 * The training events of DESIGN.md. The trainer emits progress, epoch,
 * warning and checkpoint; the queue layer adds queued, started, completed,
 * failed and cancelled around them.
 */

export interface Metrics { loss: number; accuracy: number }

/**
 * The train/inference gap on one split: the same rows through the model with
 * its frozen statistics (inference form) and with batch statistics (BN in
 * training mode, no dropout, mini-batches of batchSize).
 */
export interface TrainInferenceGap {
  /** Rows it was measured on (train when there is no validation split). */
  split: 'val' | 'train';
  frozen: Metrics;
  batch: Metrics;
  /** batch.accuracy - frozen.accuracy (positive: the frozen statistics lose accuracy). */
  accuracy: number;
  /** frozen.loss - batch.loss. */
  loss: number;
}

/**
 * Per BN layer and epoch, a summary over its channels (the per-channel
 * history is at GET /v1/jobs/:id/batchnorm). Batch statistics are averaged
 * over the epoch's training batches; null when the layer was frozen for the
 * whole epoch (it used no batch statistics).
 */
export interface BatchNormSnapshot {
  /** Index of the BN layer in the expanded layer list. */
  layer: number;
  /** Means over the channels of that layer (one number each, to keep events small). */
  batchMean: number | null;
  batchVar: number | null;
  runningMean: number;
  runningVar: number;
  gammaNorm: number;
  /** Standard deviation across channels of the per-channel batch mean and variance. */
  batchMeanSpread: number | null;
  batchVarSpread: number | null;
  /**
   * How far the running statistics are from the epoch's batch statistics, in
   * units of the batch standard deviation, averaged over channels:
   * mean |running mean − batch mean| / √(batch var + ε) and mean |log(running var / batch var)|.
   */
  meanDistance: number | null;
  varLogRatio: number | null;
}

/** Per-channel statistics of one BN layer over one epoch (GET /v1/jobs/:id/batchnorm). */
export interface BatchNormChannels {
  layer: number;
  /** batchnorm1d (per unit of a dense layer or input feature) or batchnorm2d (per conv channel over H·W). */
  kind: string;
  channels: number;
  /** True when the layer was frozen for the whole epoch: then there are no batch statistics. */
  frozen: boolean;
  batchMean: number[] | null;
  batchVar: number[] | null;
  runningMean: number[];
  runningVar: number[];
  gamma: number[] | null;
  beta: number[] | null;
}

/** Stable codes of the batch-norm warnings (README "Warnings"). */
export const BN_WARNING_CODES = [
  'BN_WITH_DROPOUT', 'BN_MOMENTUM_CONVENTION', 'BN_FREEZE_NEVER', 'BN_SMALL_BATCH', 'BN_REDUNDANT_BIAS',
  'BN_INPUT_SKEWED', 'BN_STATS_LAG',
] as const;

export interface Warning { code: string; message: string; details?: Record<string, unknown> }

export type TrainEvent =
  | { type: 'queued' }
  /** resumedFrom: the checkpoint position this attempt continues from (null: from the start). */
  | { type: 'started'; attempt: number; resumedFrom: { epoch: number; step: number } | null }
  | { type: 'progress'; epoch: number; step: number; stepsPerEpoch: number; loss: number; samplesPerSec: number; etaSeconds: number }
  | {
      type: 'epoch'; epoch: number; train: Metrics; val: Metrics | null; test: Metrics | null;
      lr: number; seconds: number; bn: BatchNormSnapshot[];
      /** Null when the model has no BN layer. The trainer always sets it; optional because events stored before it have none. */
      gap?: TrainInferenceGap | null;
    }
  | ({ type: 'warning' } & Warning)
  /** A checkpoint was saved; training resumes from it at (epoch, step). */
  | { type: 'checkpoint'; epoch: number; step: number }
  | { type: 'completed'; modelId: string; metrics: FinalMetrics; epochsToTarget: number | null }
  | { type: 'failed'; code: string; message: string; details?: Record<string, unknown> }
  | { type: 'cancelled' };

export interface FinalMetrics {
  epochs: number;
  train: Metrics;
  val: Metrics | null;
  /** Test split with the frozen inference statistics, when the dataset has one. */
  test: Metrics | null;
  trainingSeconds: number;
  samplesPerSec: number;
  /** The gap with the statistics the model keeps for inference; null without BN. Always set; absent in older jobs. */
  gap?: TrainInferenceGap | null;
  /** Which frozen statistics the model keeps (inferenceStats auto resolves to one of them). */
  inferenceStats?: 'moving' | 'population';
}

export const TERMINAL_EVENTS = new Set(['completed', 'failed', 'cancelled']);
