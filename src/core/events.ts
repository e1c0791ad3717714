/**
 * The training events of DESIGN.md. The trainer emits progress, epoch,
 * warning and checkpoint; the queue layer adds queued, started, completed,
 * failed and cancelled around them.
 */

export interface Metrics { loss: number; accuracy: number }

export interface BatchNormSnapshot {
  /** Index of the BN layer in the expanded layer list. */
  layer: number;
  /** Means over the channels of that layer (one number each, to keep events small). */
  batchMean: number;
  batchVar: number;
  runningMean: number;
  runningVar: number;
  gammaNorm: number;
}

export type TrainEvent =
  | { type: 'queued' }
  /** resumedFrom: the checkpoint position this attempt continues from (null: from the start). */
  | { type: 'started'; attempt: number; resumedFrom: { epoch: number; step: number } | null }
  | { type: 'progress'; epoch: number; step: number; stepsPerEpoch: number; loss: number; samplesPerSec: number; etaSeconds: number }
  | {
      type: 'epoch'; epoch: number; train: Metrics; val: Metrics | null; test: Metrics | null;
      lr: number; seconds: number; bn: BatchNormSnapshot[];
    }
  | { type: 'warning'; code: string; message: string }
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
}

export const TERMINAL_EVENTS = new Set(['completed', 'failed', 'cancelled']);
