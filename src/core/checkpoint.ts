/**
 * A training checkpoint: everything the trainer needs to continue exactly
 * where it stopped, so that a resumed run ends with the same weight bytes as
 * an uninterrupted one. One safetensors buffer: the model tensors (names as in
 * the artifact), the optimizer state `optimizer.{param}.{slot}`, the current
 * epoch's shuffled row order `train_order` (I32), and the loop state as JSON
 * in the metadata.
 */
import type { EpochEvent } from './train.js';
import { decodeSafetensors, encodeSafetensors, type NamedTensor } from './safetensors.js';

/** The trainer's loop state at a step boundary. */
export interface LoopState {
  /** The step to run next: epoch (1-based) and step index within it (0 = the epoch has not started). */
  epoch: number;
  step: number;
  optimizerStep: number;
  /** Training steps that updated batch-norm statistics (cumulative momentum, renorm warm-up). */
  batchNormUpdates: number;
  rng: number[];
  history: EpochEvent[];
  epochsToTarget: number | null;
  /** Early stopping: best monitored score so far and epochs since. */
  best: number | null;
  sinceBest: number;
  trainingSeconds: number;
  /** Running sums of the epoch in progress. */
  lossSum: number;
  correctSum: number;
  epochSeconds: number;
}

export interface Checkpoint {
  /** JSON of the spec it was made with; a checkpoint only resumes the same spec. */
  spec: string;
  state: LoopState;
  tensors: Map<string, NamedTensor>;
  trainOrder: Int32Array;
}

const FORMAT = 'normlab-checkpoint/1';

export function encodeCheckpoint(c: Checkpoint): Uint8Array {
  return encodeSafetensors(
    [...c.tensors.values(), { name: 'train_order', shape: [c.trainOrder.length], value: c.trainOrder }],
    { format: FORMAT, spec: c.spec, state: JSON.stringify(c.state) },
  );
}

export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  const { tensors, ints, metadata } = decodeSafetensors(bytes);
  const order = ints.get('train_order');
  if (metadata.format !== FORMAT || !order || metadata.state === undefined || metadata.spec === undefined) {
    throw new Error('not a NormLab checkpoint');
  }
  return { spec: metadata.spec, state: JSON.parse(metadata.state) as LoopState, tensors, trainOrder: order.value };
}
