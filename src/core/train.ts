/**
 * The trainer: seeded split and shuffle, mini-batch SGD/Adam over the
 * sequential model, per-epoch metrics, target accuracy, early stopping,
 * divergence detection, cancellation, and the frozen inference statistics
 * (moving averages, or population statistics recomputed after training).
 * No I/O: events go out through a callback.
 */
import { applyPreprocess, fitPreprocess } from '../datasets/preprocess.js';
import type { Dataset, Preprocess } from '../datasets/types.js';
import { buildArtifact, MANIFEST_FORMAT, type Artifact } from './artifact.js';
import type { Checkpoint, LoopState } from './checkpoint.js';
import {
  batchNormEpoch, DEFAULT_STATS_LAG, measureGap, restoreRunningStatistics, saveRunningStatistics, statisticsDistance, statsLagWarning,
  type StatsLagThresholds,
} from './diagnostics.js';
import type { BatchNormChannels, FinalMetrics, Metrics, TrainEvent, TrainInferenceGap } from './events.js';
import { getKernels } from './kernels/index.js';
import type { Kernels } from './kernels/types.js';
import { expandLayers, outputSize, parameterCount, type LayerInfo } from './layers.js';
import { moduleOf } from './layers/index.js';
import { isNormalizing } from './layers/types.js';
import { Sequential } from './model.js';
import { learningRateAt, Optimizer } from './optimizer.js';
import { createRng, shuffle, type RngState } from './rng.js';
import type { NamedTensor } from './safetensors.js';
import type { JobSpec } from './spec.js';
import { inputSkewWarning, specWarnings } from './warnings.js';

export type EpochEvent = Extract<TrainEvent, { type: 'epoch' }>;

export interface TrainOptions {
  kernels?: Kernels;
  onEvent?: (event: TrainEvent) => void;
  /** Checked before every step; true stops training with TrainingError CANCELLED. */
  isCancelled?: () => boolean;
  /** Minimum interval between progress events (the first step always reports). Default 500 ms. */
  progressIntervalMs?: number;
  /**
   * Called with a checkpoint at the end of every epoch, every
   * `checkpointEverySteps` steps (0: epochs only) and when `shouldPause`
   * asks; training waits for it, then emits a checkpoint event.
   */
  onCheckpoint?: (checkpoint: Checkpoint) => Promise<void> | void;
  checkpointEverySteps?: number;
  /** Checked before every step; true saves a checkpoint and stops with TrainingError PAUSED. */
  shouldPause?: () => boolean;
  /** Continue from this checkpoint (made with the same spec and dataset). */
  resumeFrom?: Checkpoint | null;
  /** Called after every epoch event with the per-channel statistics of every BN layer. */
  onBatchNormEpoch?: (epoch: number, layers: BatchNormChannels[]) => void;
  /** When BN_STATS_LAG fires (default DEFAULT_STATS_LAG). */
  statsLag?: StatsLagThresholds;
  /** Training time (all attempts) after which a checkpoint is saved and training stops with TrainingError TIMEOUT. */
  maxSeconds?: number;
}

export interface TrainResult {
  artifact: Artifact;
  metrics: FinalMetrics;
  epochsToTarget: number | null;
  history: EpochEvent[];
}

export type TrainingErrorCode = 'DIVERGED' | 'CANCELLED' | 'PAUSED' | 'DATASET_MISMATCH' | 'BAD_CHECKPOINT' | 'TIMEOUT';

export class TrainingError extends Error {
  constructor(readonly code: TrainingErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'TrainingError';
  }
}

/**
 * Rows per forward pass when computing metrics: up to 1024, as long as one
 * layer's activations stay within 4M values (16 MB) — CNN rows are large.
 */
function evalBatch(layers: LayerInfo[], inputSize: number, batchSize: number): number {
  let width = inputSize;
  let widest = width;
  // A layer's per-row cache (a recurrent layer's per-step gates and states) is sized for these rows too.
  for (const l of layers) widest = Math.max(widest, (width = outputSize(l, width)), moduleOf(l.type).cacheValues?.(l) ?? 0);
  return Math.max(batchSize, Math.min(1024, Math.floor(2 ** 22 / widest)));
}
/** Hand the thread back to the event loop this often so I/O and cancellation get through. */
const YIELD_EVERY_MS = 50;

/** Preprocessed rows of one split with their labels. */
export interface Rows { x: Float32Array; y: Int32Array; n: number }

export async function train(spec: JobSpec, dataset: Dataset, options: TrainOptions = {}): Promise<TrainResult> {
  const k = options.kernels ?? getKernels();
  const emit = options.onEvent ?? (() => {});
  const progressEvery = options.progressIntervalMs ?? 500;
  const { training, batchNorm: bnSpec } = spec;
  const f = dataset.features;
  if (dataset.train.n < 2) throw new TrainingError('DATASET_MISMATCH', 'the dataset needs at least 2 training rows');

  const rng = createRng(training.seed);

  // Validation rows are held out by the seed; preprocessing is fitted on the rest only.
  const order = Int32Array.from({ length: dataset.train.n }, (_, i) => i);
  shuffle(rng, order);
  const nVal = Math.floor(dataset.train.n * spec.dataset.validationSplit);
  const valIdx = order.subarray(0, nVal);
  const trainIdx = order.slice(nVal);
  if (trainIdx.length < 2) throw new TrainingError('DATASET_MISMATCH', 'fewer than 2 rows remain for training after the validation split');
  const preprocess = fitPreprocess(spec.dataset.preprocess, dataset.train.x, dataset.train.n, f, dataset.valueRange, trainIdx);
  const all = preprocessed(preprocess, dataset.train.x, dataset.train.y, dataset.train.n, f);
  const val = nVal > 0 ? gather(all, valIdx, f) : null;
  const test = dataset.test ? preprocessed(preprocess, dataset.test.x, dataset.test.y, dataset.test.n, f) : null;

  const layers = expandLayers(spec.model, dataset.inputShape, dataset.classes);
  const batchSize = Math.min(training.batchSize, trainIdx.length);
  const model = new Sequential(layers, k, evalBatch(layers, f, batchSize), f, bnSpec, rng);
  model.initialize(spec.model.init, rng);
  const optimizer = new Optimizer(training.optimizer, model.params, k);
  const hasBatchNorm = model.normalizers().length > 0;

  // Step buffers, allocated once.
  const xb = new Float32Array(batchSize * f);
  const yb = new Int32Array(batchSize);
  const probs = new Float32Array(batchSize * dataset.classes);
  const correct = new Int32Array(1);

  const nTrain = trainIdx.length;
  // A final batch of one has no batch variance: drop it when the model has batch norm.
  const dropLast = hasBatchNorm && nTrain % batchSize === 1;
  const stepsPerEpoch = Math.floor(nTrain / batchSize) + (nTrain % batchSize > 0 && !dropLast ? 1 : 0);
  const trainCount = dropLast ? nTrain - 1 : nTrain;

  const st: LoopState = {
    epoch: 1, step: 0, optimizerStep: 0, batchNormUpdates: 0, rng: [], history: [], epochsToTarget: null, best: null, sinceBest: 0,
    trainingSeconds: 0, lossSum: 0, correctSum: 0, epochSeconds: 0,
  };
  const specJson = JSON.stringify(spec);
  if (options.resumeFrom) {
    Object.assign(st, options.resumeFrom.state);
    restore(options.resumeFrom, specJson, model, optimizer, rng, trainIdx);
  }
  /** Save the state as of the start of (epoch, step). */
  const checkpoint = async (epoch: number, step: number): Promise<void> => {
    if (!options.onCheckpoint) return;
    const state = {
      ...structuredClone(st), epoch, step, optimizerStep: optimizer.step, rng: Array.from(rng),
      batchNormUpdates: model.batchNormClock.updates,
    };
    await options.onCheckpoint({ spec: specJson, state, tensors: stateTensors(model, optimizer), trainOrder: trainIdx.slice() });
    emit({ type: 'checkpoint', epoch, step });
  };
  const everySteps = options.checkpointEverySteps ?? 0;
  const maxSeconds = Math.min(options.maxSeconds ?? Infinity, training.maxSeconds ?? Infinity);
  let lastProgress = -Infinity;
  let lastYield = performance.now();
  if (training.earlyStopping && !val) {
    emit({ type: 'warning', code: 'NO_VALIDATION', message: 'earlyStopping needs a validation split (dataset.validationSplit > 0); it is ignored' });
  }
  if (!options.resumeFrom) {
    for (const w of startWarnings(spec, layers, all, trainIdx, f)) emit({ type: 'warning', ...w });
  }
  /** The gap on the validation rows, or on (at most GAP_TRAIN_ROWS of) the training rows when there are none. */
  const gapRows = val ? null : gapSample(trainIdx);
  const gapNow = (valMetrics: Metrics | null): TrainInferenceGap | null => (val
    ? measureGap(model, 'val', val, null, batchSize, dataset.classes, valMetrics)
    : measureGap(model, 'train', all, gapRows, batchSize, dataset.classes, null));

  let stopped = false;
  for (; st.epoch <= training.epochs && !stopped; st.epoch++, st.step = 0) {
    const epoch = st.epoch;
    const lr = learningRateAt(training.optimizer.learningRate, training.schedule, epoch - 1, training.epochs);
    if (training.freezeBatchNormAfterEpoch !== null && epoch > training.freezeBatchNormAfterEpoch) model.freezeBatchNorm();
    for (; st.step < stepsPerEpoch; st.step++) {
      const step = st.step;
      if (options.isCancelled?.()) throw new TrainingError('CANCELLED', 'the job was cancelled', { epoch, step });
      if (options.shouldPause?.()) {
        await checkpoint(epoch, step);
        throw new TrainingError('PAUSED', `training paused at epoch ${epoch}, step ${step}`, { epoch, step });
      }
      if (st.trainingSeconds + st.epochSeconds > maxSeconds) {
        await checkpoint(epoch, step);
        throw new TrainingError('TIMEOUT', `training time passed the limit of ${maxSeconds} s at epoch ${epoch}, step ${step}`, {
          epoch, step, maxSeconds, hint: 'raise training.maxSeconds (up to the server\'s MAX_JOB_SECONDS), or train fewer epochs or a smaller model',
        });
      }
      // After the pause check, so a checkpoint at (epoch, 0) comes before the epoch's shuffle.
      if (step === 0) {
        shuffle(rng, trainIdx);
        for (const bn of model.normalizers()) bn.resetEpochStatistics();
        st.lossSum = 0;
        st.correctSum = 0;
        st.epochSeconds = 0;
      }
      const t0 = performance.now();
      const start = step * batchSize;
      const n = Math.min(batchSize, trainCount - start);
      k.gatherRows(all.x, all.y, trainIdx, start, n, f, xb, yb);
      const logits = model.forward(xb, n, true);
      const loss = k.softmaxCrossEntropy(logits, yb, probs, n, dataset.classes, correct);
      if (!Number.isFinite(loss)) {
        throw new TrainingError('DIVERGED', `the loss became ${loss} at epoch ${epoch}, step ${step + 1}`, {
          epoch, step: step + 1,
          hint: hasBatchNorm ? 'lower the learning rate' : 'lower the learning rate or enable batch norm (model.batchNorm: "before")',
        });
      }
      k.softmaxCrossEntropyBackward(probs, yb, probs, n, dataset.classes);
      model.backward(probs, n);
      optimizer.update(lr);
      const now = performance.now();
      st.epochSeconds += (now - t0) / 1000;
      st.lossSum += loss * n;
      st.correctSum += correct[0]!;

      if (now - lastProgress >= progressEvery || step === stepsPerEpoch - 1) {
        lastProgress = now;
        const done = start + n;
        const samplesPerSec = done / st.epochSeconds;
        const remaining = (training.epochs - epoch) * trainCount + (trainCount - done);
        emit({
          type: 'progress', epoch, step: step + 1, stepsPerEpoch, loss,
          samplesPerSec: Math.round(samplesPerSec), etaSeconds: round(remaining / samplesPerSec, 1),
        });
      }
      if (everySteps > 0 && (step + 1) % everySteps === 0 && step + 1 < stepsPerEpoch) await checkpoint(epoch, step + 1);
      if (now - lastYield >= YIELD_EVERY_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
    st.trainingSeconds += st.epochSeconds;

    const valMetrics = val ? finite(evaluate(model, val, dataset.classes), 'validation', epoch, hasBatchNorm) : null;
    const bn = batchNormEpoch(model);
    const event: EpochEvent = {
      type: 'epoch', epoch,
      train: { loss: st.lossSum / trainCount, accuracy: st.correctSum / trainCount },
      val: valMetrics,
      test: test ? finite(evaluate(model, test, dataset.classes), 'test', epoch, hasBatchNorm) : null,
      lr, seconds: round(st.epochSeconds, 4), bn: bn.summary, gap: gapNow(valMetrics),
    };
    st.history.push(event);
    emit(event);
    if (hasBatchNorm) options.onBatchNormEpoch?.(epoch, bn.channels);

    const watched = event.val ?? event.train;
    if (training.targetAccuracy !== null && st.epochsToTarget === null && watched.accuracy >= training.targetAccuracy) {
      st.epochsToTarget = epoch;
    }
    if (training.earlyStopping && event.val) {
      const { monitor, patience, minDelta } = training.earlyStopping;
      const score = monitor === 'val_loss' ? event.val.loss : -event.val.accuracy;
      if (st.best === null || score < st.best - minDelta) {
        st.best = score;
        st.sinceBest = 0;
      } else if (++st.sinceBest >= patience) {
        emit({ type: 'warning', code: 'EARLY_STOPPED', message: `${monitor} did not improve for ${patience} epochs; stopped after epoch ${epoch}` });
        stopped = true;
      }
    }
    if (!stopped && epoch < training.epochs) await checkpoint(epoch + 1, 0);
  }
  const { history, epochsToTarget, trainingSeconds } = st;

  const inferenceStats = hasBatchNorm
    ? chooseInferenceStatistics(spec, model, all, trainIdx, val ?? gather(all, gapRows!, f), !val, dataset.classes, optimizer.step, options, emit)
    : 'moving';
  const last = history[history.length - 1]!;
  const finalVal = val ? finite(evaluate(model, val, dataset.classes), 'validation', history.length, hasBatchNorm) : null;
  const metrics: FinalMetrics = {
    epochs: history.length,
    train: last.train,
    val: finalVal,
    test: test ? finite(evaluate(model, test, dataset.classes), 'test', history.length, hasBatchNorm) : null,
    trainingSeconds: round(trainingSeconds, 3),
    samplesPerSec: Math.round((trainCount * history.length) / Math.max(trainingSeconds, 1e-9)),
    gap: gapNow(finalVal),
    inferenceStats,
  };
  const artifact = buildArtifact({
    format: MANIFEST_FORMAT, spec, layers, inputShape: dataset.inputShape, features: f, classes: dataset.classes,
    classNames: dataset.classNames, preprocess, inferenceStats, epsilon: bnSpec.epsilon,
    parameters: parameterCount(layers, bnSpec), metrics, createdAt: new Date().toISOString(),
  }, model.namedTensors());
  return { artifact, metrics, epochsToTarget, history };
}

/** Model tensors plus the optimizer's state, by checkpoint name. */
function stateTensors(model: Sequential, optimizer: Optimizer): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const t of model.namedTensors()) out.set(t.name, { ...t, value: t.value.slice() });
  optimizer.state.forEach((slots, p) => slots.forEach((value, slot) => {
    const name = `optimizer.${p}.${slot}`;
    out.set(name, { name, shape: [value.length], value: value.slice() });
  }));
  return out;
}

function restore(c: Checkpoint, specJson: string, model: Sequential, optimizer: Optimizer, rng: RngState, trainIdx: Int32Array): void {
  const bad = (why: string) => new TrainingError('BAD_CHECKPOINT', `the checkpoint does not fit this job: ${why}`);
  if (c.spec !== specJson) throw bad('it was made with another spec');
  if (c.trainOrder.length !== trainIdx.length) throw bad('the training split has another size');
  const current = stateTensors(model, optimizer);
  for (const [name, t] of current) {
    const saved = c.tensors.get(name);
    if (!saved || saved.value.length !== t.value.length) throw bad(`tensor ${name} is missing or of another size`);
  }
  for (const t of model.namedTensors()) t.value.set(c.tensors.get(t.name)!.value);
  optimizer.state.forEach((slots, p) => slots.forEach((value, slot) => value.set(c.tensors.get(`optimizer.${p}.${slot}`)!.value)));
  optimizer.step = c.state.optimizerStep;
  model.batchNormClock.updates = c.state.batchNormUpdates;
  rng.set(c.state.rng);
  trainIdx.set(c.trainOrder);
}

function preprocessed(p: Preprocess, x: Float32Array, y: Int32Array, n: number, f: number): Rows {
  const out = new Float32Array(n * f);
  applyPreprocess(p, x, out, n, f);
  return { x: out, y, n };
}

function gather(src: Rows, idx: Int32Array, f: number): Rows {
  const x = new Float32Array(idx.length * f);
  const y = new Int32Array(idx.length);
  idx.forEach((r, i) => {
    x.set(src.x.subarray(r * f, r * f + f), i * f);
    y[i] = src.y[r]!;
  });
  return { x, y, n: idx.length };
}

/** Loss and accuracy with the frozen statistics (inference mode). */
function evaluate(model: Sequential, rows: Rows, classes: number): Metrics {
  const k = model.kernels;
  const f = model.inputSize;
  const batch = model.maxBatch;
  const probs = new Float32Array(Math.min(batch, rows.n) * classes);
  const correct = new Int32Array(1);
  let lossSum = 0;
  let correctSum = 0;
  for (let start = 0; start < rows.n; start += batch) {
    const n = Math.min(batch, rows.n - start);
    const logits = model.forward(rows.x.subarray(start * f, (start + n) * f), n, false);
    lossSum += k.softmaxCrossEntropy(logits, rows.y.subarray(start, start + n), probs, n, classes, correct) * n;
    correctSum += correct[0]!;
  }
  return { loss: lossSum / rows.n, accuracy: correctSum / rows.n };
}

/**
 * Metrics with the frozen statistics must be finite like the training loss:
 * a model whose inference form overflows has diverged (its last good
 * checkpoint stays with the failed job).
 */
function finite(m: Metrics, split: 'validation' | 'test', epoch: number, hasBatchNorm: boolean): Metrics {
  if (Number.isFinite(m.loss) && Number.isFinite(m.accuracy)) return m;
  throw new TrainingError('DIVERGED', `the ${split} loss with the frozen statistics became ${m.loss} at epoch ${epoch}`, {
    epoch, split,
    hint: hasBatchNorm ? 'lower the learning rate, the initial weight scale or batchNorm.momentum' : 'lower the learning rate or enable batch norm (model.batchNorm: "before")',
  });
}

/**
 * Replace each BN layer's running statistics by the exact mean and unbiased
 * variance of its input over the training rows, layer by layer in inference
 * order: layer i's input is computed with layers before it already frozen to
 * their population statistics.
 */
function populationStatistics(model: Sequential, src: Rows, idx: Int32Array): void {
  const f = model.inputSize;
  // Batches are gathered into one buffer: no copy of the whole training split.
  const xb = new Float32Array(model.maxBatch * f);
  const yb = new Int32Array(model.maxBatch);
  const total = idx.length;
  model.layers.forEach((layer, li) => {
    if (!isNormalizing(layer)) return;
    layer.beginPopulation();
    for (let start = 0; start < total; start += model.maxBatch) {
      const n = Math.min(model.maxBatch, total - start);
      model.kernels.gatherRows(src.x, src.y, idx, start, n, f, xb, yb);
      layer.accumulatePopulation(model.forward(xb, n, false, li), n);
    }
    layer.finishPopulation();
  });
}

/** Training rows the gap is measured on without a validation split: the same every epoch and after a resume. */
const GAP_TRAIN_ROWS = 10_000;

/** An even sample of the training rows, in row order (the training order changes every epoch). */
function gapSample(trainIdx: Int32Array): Int32Array {
  const sorted = trainIdx.slice().sort();
  const stride = Math.max(1, Math.ceil(sorted.length / GAP_TRAIN_ROWS));
  return sorted.filter((_, i) => i % stride === 0);
}

/** The warnings of the spec (and, for input batch norm, of the training rows), emitted before the first epoch. */
function startWarnings(spec: JobSpec, layers: LayerInfo[], all: Rows, trainIdx: Int32Array, f: number) {
  const warnings = specWarnings(spec, layers);
  if (layers[0]?.type === 'batchnorm') {
    const sample = gather(all, trainIdx.subarray(0, Math.min(trainIdx.length, 5000)), f);
    const skewed = inputSkewWarning(layers, sample.x, sample.n, f);
    if (skewed) warnings.push(skewed);
  }
  return warnings;
}

/**
 * End of training: compute the population statistics (one pass over the
 * training rows), compare them with the moving averages on the validation
 * rows (the training rows when there are none), warn BN_STATS_LAG when the
 * moving averages cost more than the thresholds, and keep the statistics
 * inferenceStats asks for (auto: the better of the two on that split; a tie
 * keeps the moving averages). Returns which ones the model keeps.
 */
function chooseInferenceStatistics(spec: JobSpec, model: Sequential, all: Rows, trainIdx: Int32Array, rows: Rows, onTrain: boolean,
  classes: number, steps: number, options: TrainOptions, emit: (e: TrainEvent) => void): 'moving' | 'population' {
  const moving = saveRunningStatistics(model);
  const movingMetrics = evaluate(model, rows, classes);
  populationStatistics(model, all, trainIdx);
  const populationMetrics = evaluate(model, rows, classes);
  const wanted = spec.batchNorm.inferenceStats;
  const populationBetter = populationMetrics.accuracy > movingMetrics.accuracy ||
    (populationMetrics.accuracy === movingMetrics.accuracy && populationMetrics.loss < movingMetrics.loss);
  const kept = wanted === 'auto' ? (populationBetter ? 'population' : 'moving') : wanted;
  const lag = statsLagWarning(onTrain ? 'train' : 'val', movingMetrics, populationMetrics, statisticsDistance(model, moving), kept,
    { steps, momentum: spec.batchNorm.momentum }, options.statsLag ?? DEFAULT_STATS_LAG);
  if (lag) emit({ type: 'warning', ...lag });
  if (kept === 'moving') restoreRunningStatistics(model, moving);
  return kept;
}

function round(x: number, digits: number): number {
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}
