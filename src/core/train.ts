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

/**
 * Train a model: prepare the data, build the model, restore a checkpoint (or
 * warn about the spec), run the epochs, fix the inference statistics, and
 * build the artifact. Each step is a function below; `Run` is what they share.
 */
export async function train(spec: JobSpec, dataset: Dataset, options: TrainOptions = {}): Promise<TrainResult> {
  if (dataset.train.n < 2) throw new TrainingError('DATASET_MISMATCH', 'the dataset needs at least 2 training rows');
  const rng = createRng(spec.training.seed);
  const data = prepareData(spec, dataset, rng);
  const run = buildModel(spec, dataset, data, rng, options);
  restoreOrStart(run);
  await runEpochs(run);
  const inferenceStats = finalizeStatistics(run);
  const metrics = finalMetrics(run, inferenceStats);
  return { artifact: trainedArtifact(run, metrics, inferenceStats), metrics, epochsToTarget: run.st.epochsToTarget, history: run.st.history };
}

/** The preprocessed splits: all training rows (validation rows among them), the held-out validation rows, the test split. */
interface Data {
  preprocess: Preprocess;
  all: Rows;
  /** Indices into `all` of the rows trained on, shuffled every epoch. */
  trainIdx: Int32Array;
  val: Rows | null;
  test: Rows | null;
}

/** Validation rows are held out by the seed; preprocessing is fitted on the rest only. */
function prepareData(spec: JobSpec, dataset: Dataset, rng: RngState): Data {
  const f = dataset.features;
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
  return { preprocess, all, trainIdx, val, test };
}

/** Everything the training steps share. */
interface Run {
  spec: JobSpec;
  dataset: Dataset;
  options: TrainOptions;
  k: Kernels;
  emit: (event: TrainEvent) => void;
  rng: RngState;
  data: Data;
  layers: LayerInfo[];
  model: Sequential;
  optimizer: Optimizer;
  hasBatchNorm: boolean;
  batchSize: number;
  stepsPerEpoch: number;
  /** Training rows per epoch (a final batch of one is dropped when the model has batch norm). */
  trainCount: number;
  st: LoopState;
  specJson: string;
  /** The gap's training rows when there is no validation split. */
  gapRows: Int32Array | null;
  /** Step buffers, allocated once. */
  step: { xb: Float32Array; yb: Int32Array; probs: Float32Array; correct: Int32Array };
}

/** The layers, the model (weights initialized from the seed), the optimizer and the batch geometry. */
function buildModel(spec: JobSpec, dataset: Dataset, data: Data, rng: RngState, options: TrainOptions): Run {
  const k = options.kernels ?? getKernels();
  const f = dataset.features;
  const layers = expandLayers(spec.model, dataset.inputShape, dataset.classes);
  const batchSize = Math.min(spec.training.batchSize, data.trainIdx.length);
  const model = new Sequential(layers, k, evalBatch(layers, f, batchSize), f, spec.batchNorm, rng);
  model.initialize(spec.model.init, rng);
  const optimizer = new Optimizer(spec.training.optimizer, model.params, k);
  const hasBatchNorm = model.normalizers().length > 0;
  const nTrain = data.trainIdx.length;
  // A final batch of one has no batch variance: drop it when the model has batch norm.
  const dropLast = hasBatchNorm && nTrain % batchSize === 1;
  const st: LoopState = {
    epoch: 1, step: 0, optimizerStep: 0, batchNormUpdates: 0, rng: [], history: [], epochsToTarget: null, best: null, sinceBest: 0,
    trainingSeconds: 0, lossSum: 0, correctSum: 0, epochSeconds: 0,
  };
  return {
    spec, dataset, options, k, emit: options.onEvent ?? (() => {}), rng, data, layers, model, optimizer, hasBatchNorm, batchSize,
    stepsPerEpoch: Math.floor(nTrain / batchSize) + (nTrain % batchSize > 0 && !dropLast ? 1 : 0),
    trainCount: dropLast ? nTrain - 1 : nTrain,
    st, specJson: JSON.stringify(spec), gapRows: null,
    step: { xb: new Float32Array(batchSize * f), yb: new Int32Array(batchSize), probs: new Float32Array(batchSize * dataset.classes), correct: new Int32Array(1) },
  };
}

/** Continue from the checkpoint, if any (else emit the spec's warnings), and fix the gap's rows. */
function restoreOrStart(run: Run): void {
  const { spec, options, emit, data } = run;
  if (options.resumeFrom) {
    Object.assign(run.st, options.resumeFrom.state);
    restore(options.resumeFrom, run.specJson, run.model, run.optimizer, run.rng, data.trainIdx);
  }
  if (spec.training.earlyStopping && !data.val) {
    emit({ type: 'warning', code: 'NO_VALIDATION', message: 'earlyStopping needs a validation split (dataset.validationSplit > 0); it is ignored' });
  }
  if (!options.resumeFrom) {
    for (const w of startWarnings(spec, run.layers, data.all, data.trainIdx, run.dataset.features)) emit({ type: 'warning', ...w });
  }
  run.gapRows = data.val ? null : gapSample(data.trainIdx);
}

/** Save the state as of the start of (epoch, step), when the caller keeps checkpoints. */
async function checkpoint(run: Run, epoch: number, step: number): Promise<void> {
  if (!run.options.onCheckpoint) return;
  const state = {
    ...structuredClone(run.st), epoch, step, optimizerStep: run.optimizer.step, rng: Array.from(run.rng),
    batchNormUpdates: run.model.batchNormClock.updates,
  };
  await run.options.onCheckpoint({ spec: run.specJson, state, tensors: stateTensors(run.model, run.optimizer), trainOrder: run.data.trainIdx.slice() });
  run.emit({ type: 'checkpoint', epoch, step });
}

/** The gap on the validation rows, or on (at most GAP_TRAIN_ROWS of) the training rows when there are none. */
function gapNow(run: Run, valMetrics: Metrics | null): TrainInferenceGap | null {
  const { model, data, batchSize, dataset } = run;
  return data.val
    ? measureGap(model, 'val', data.val, null, batchSize, dataset.classes, valMetrics)
    : measureGap(model, 'train', data.all, run.gapRows, batchSize, dataset.classes, null);
}

/** The epoch loop, from the restored (epoch, step) to the last epoch or early stopping. */
async function runEpochs(run: Run): Promise<void> {
  const { training } = run.spec;
  const { st, model } = run;
  const clock = { lastProgress: -Infinity, lastYield: performance.now() };
  let stopped = false;
  for (; st.epoch <= training.epochs && !stopped; st.epoch++, st.step = 0) {
    const epoch = st.epoch;
    const lr = learningRateAt(training.optimizer.learningRate, training.schedule, epoch - 1, training.epochs);
    if (training.freezeBatchNormAfterEpoch !== null && epoch > training.freezeBatchNormAfterEpoch) model.freezeBatchNorm();
    for (; st.step < run.stepsPerEpoch; st.step++) await trainStep(run, epoch, st.step, lr, clock);
    st.trainingSeconds += st.epochSeconds;
    stopped = endEpoch(run, epoch, lr);
    if (!stopped && epoch < training.epochs) await checkpoint(run, epoch + 1, 0);
  }
}

/** One optimizer step, after the cancel/pause/time checks; progress events, step checkpoints and yields to the event loop. */
async function trainStep(run: Run, epoch: number, step: number, lr: number, clock: { lastProgress: number; lastYield: number }): Promise<void> {
  const { options, st, model, k, data, batchSize, dataset } = run;
  const { training } = run.spec;
  const f = dataset.features;
  const { xb, yb, probs, correct } = run.step;
  const maxSeconds = Math.min(options.maxSeconds ?? Infinity, training.maxSeconds ?? Infinity);
  if (options.isCancelled?.()) throw new TrainingError('CANCELLED', 'the job was cancelled', { epoch, step });
  if (options.shouldPause?.()) {
    await checkpoint(run, epoch, step);
    throw new TrainingError('PAUSED', `training paused at epoch ${epoch}, step ${step}`, { epoch, step });
  }
  if (st.trainingSeconds + st.epochSeconds > maxSeconds) {
    await checkpoint(run, epoch, step);
    throw new TrainingError('TIMEOUT', `training time passed the limit of ${maxSeconds} s at epoch ${epoch}, step ${step}`, {
      epoch, step, maxSeconds, hint: 'raise training.maxSeconds (up to the server\'s MAX_JOB_SECONDS), or train fewer epochs or a smaller model',
    });
  }
  // After the pause check, so a checkpoint at (epoch, 0) comes before the epoch's shuffle.
  if (step === 0) {
    shuffle(run.rng, data.trainIdx);
    for (const bn of model.normalizers()) bn.resetEpochStatistics();
    st.lossSum = 0;
    st.correctSum = 0;
    st.epochSeconds = 0;
  }
  const t0 = performance.now();
  const start = step * batchSize;
  const n = Math.min(batchSize, run.trainCount - start);
  k.gatherRows(data.all.x, data.all.y, data.trainIdx, start, n, f, xb, yb);
  const logits = model.forward(xb, n, true);
  const loss = k.softmaxCrossEntropy(logits, yb, probs, n, dataset.classes, correct);
  if (!Number.isFinite(loss)) {
    throw new TrainingError('DIVERGED', `the loss became ${loss} at epoch ${epoch}, step ${step + 1}`, {
      epoch, step: step + 1,
      hint: run.hasBatchNorm ? 'lower the learning rate' : 'lower the learning rate or enable batch norm (model.batchNorm: "before")',
    });
  }
  k.softmaxCrossEntropyBackward(probs, yb, probs, n, dataset.classes);
  model.backward(probs, n);
  run.optimizer.update(lr);
  const now = performance.now();
  st.epochSeconds += (now - t0) / 1000;
  st.lossSum += loss * n;
  st.correctSum += correct[0]!;

  if (now - clock.lastProgress >= (options.progressIntervalMs ?? 500) || step === run.stepsPerEpoch - 1) {
    clock.lastProgress = now;
    const done = start + n;
    const samplesPerSec = done / st.epochSeconds;
    const remaining = (training.epochs - epoch) * run.trainCount + (run.trainCount - done);
    run.emit({
      type: 'progress', epoch, step: step + 1, stepsPerEpoch: run.stepsPerEpoch, loss,
      samplesPerSec: Math.round(samplesPerSec), etaSeconds: round(remaining / samplesPerSec, 1),
    });
  }
  const everySteps = options.checkpointEverySteps ?? 0;
  if (everySteps > 0 && (step + 1) % everySteps === 0 && step + 1 < run.stepsPerEpoch) await checkpoint(run, epoch, step + 1);
  if (now - clock.lastYield >= YIELD_EVERY_MS) {
    await new Promise((resolve) => setImmediate(resolve));
    clock.lastYield = performance.now();
  }
}

/** The epoch event (metrics, batch-norm summary, gap), target accuracy and early stopping; true when training stops here. */
function endEpoch(run: Run, epoch: number, lr: number): boolean {
  const { st, model, data, dataset, hasBatchNorm, options } = run;
  const { training } = run.spec;
  const valMetrics = data.val ? finite(evaluate(model, data.val, dataset.classes), 'validation', epoch, hasBatchNorm) : null;
  const bn = batchNormEpoch(model);
  const event: EpochEvent = {
    type: 'epoch', epoch,
    train: { loss: st.lossSum / run.trainCount, accuracy: st.correctSum / run.trainCount },
    val: valMetrics,
    test: data.test ? finite(evaluate(model, data.test, dataset.classes), 'test', epoch, hasBatchNorm) : null,
    lr, seconds: round(st.epochSeconds, 4), bn: bn.summary, gap: gapNow(run, valMetrics),
  };
  st.history.push(event);
  run.emit(event);
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
      run.emit({ type: 'warning', code: 'EARLY_STOPPED', message: `${monitor} did not improve for ${patience} epochs; stopped after epoch ${epoch}` });
      return true;
    }
  }
  return false;
}

/** The statistics the model keeps for inference (see chooseInferenceStatistics); 'moving' without batch norm. */
function finalizeStatistics(run: Run): 'moving' | 'population' {
  if (!run.hasBatchNorm) return 'moving';
  const { spec, model, data, dataset, optimizer, options, emit } = run;
  const rows = data.val ?? gather(data.all, run.gapRows!, dataset.features);
  return chooseInferenceStatistics(spec, model, data.all, data.trainIdx, rows, !data.val, dataset.classes, optimizer.step, options, emit);
}

/** The job's final metrics, with the inference statistics it keeps. */
function finalMetrics(run: Run, inferenceStats: 'moving' | 'population'): FinalMetrics {
  const { st, model, data, dataset, hasBatchNorm } = run;
  const { history, trainingSeconds } = st;
  const last = history[history.length - 1]!;
  const finalVal = data.val ? finite(evaluate(model, data.val, dataset.classes), 'validation', history.length, hasBatchNorm) : null;
  return {
    epochs: history.length,
    train: last.train,
    val: finalVal,
    test: data.test ? finite(evaluate(model, data.test, dataset.classes), 'test', history.length, hasBatchNorm) : null,
    trainingSeconds: round(trainingSeconds, 3),
    samplesPerSec: Math.round((run.trainCount * history.length) / Math.max(trainingSeconds, 1e-9)),
    gap: gapNow(run, finalVal),
    inferenceStats,
  };
}

/** The manifest and weights of the trained model. */
function trainedArtifact(run: Run, metrics: FinalMetrics, inferenceStats: 'moving' | 'population'): Artifact {
  const { spec, dataset, layers } = run;
  return buildArtifact({
    format: MANIFEST_FORMAT, spec, layers, inputShape: dataset.inputShape, features: dataset.features, classes: dataset.classes,
    classNames: dataset.classNames, preprocess: run.data.preprocess, inferenceStats, epsilon: spec.batchNorm.epsilon,
    parameters: parameterCount(layers, spec.batchNorm), metrics, createdAt: new Date().toISOString(),
  }, run.model.namedTensors());
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
