/**
 * What POST /jobs checks beyond the schema: that the dataset exists and can be
 * loaded, and that the job fits the limits of this server (config.ts).
 */
import { SETTINGS, type Config } from '../config.js';
import { expandLayers } from '../core/layers.js';
import { cacheValuesPerRow, layerTensors, multiplyAddsPerRow, outputSize, parameterCount, scratchSize, type LayerInfo } from '../core/layers/index.js';
import type { DatasetSpec, JobSpec } from '../core/spec.js';
import { jobInputShape, listBuiltinDatasets } from '../datasets/index.js';
import type { DatasetStore } from '../store/datasets.js';
import { HttpError, type Issue } from './errors.js';

/** rows: training rows (null for a synthetic set, whose size the spec gives); testRows: rows of its test split. */
export interface DatasetShape { inputShape: number[]; classes: number; synthetic: boolean; rows: number | null; testRows: number }

/**
 * The shape of the job's rows (jobInputShape: the dataset's own, or as
 * dataset.sequence reads them) from a built-in dataset or the tenant's
 * upload; 400 UNKNOWN_DATASET (also for another tenant's upload), 422
 * DATASET_UNAVAILABLE for a built-in that is not installed, or 400
 * INVALID_SPEC when dataset.sequence.steps does not fit the rows.
 */
export async function datasetShape(dataset: DatasetSpec, tenant: string, uploads: DatasetStore): Promise<DatasetShape> {
  const { id } = dataset;
  const builtins = listBuiltinDatasets();
  const builtin = builtins.find((d) => d.id === id);
  if (builtin) {
    if (!builtin.available) {
      throw new HttpError(422, 'DATASET_UNAVAILABLE', `dataset ${id} is not installed on this server: ${builtin.installHint}`, { path: '/dataset/id', id, installHint: builtin.installHint });
    }
    return {
      inputShape: jobInputShape(dataset, builtin.inputShape), classes: builtin.classes, synthetic: builtin.kind === 'synthetic',
      rows: builtin.trainRows, testRows: builtin.testRows ?? 0,
    };
  }
  const upload = await uploads.summary(tenant, id);
  if (upload) return { inputShape: jobInputShape(dataset, upload.inputShape), classes: upload.classes, synthetic: false, rows: upload.rows, testRows: 0 };
  const available = builtins.filter((d) => d.available).map((d) => d.id);
  throw new HttpError(400, 'UNKNOWN_DATASET',
    `/dataset/id: unknown dataset "${id}"; available built-in datasets: ${available.join(', ')}; uploaded datasets ("ds_…") are listed by GET /v1/datasets`,
    { path: '/dataset/id', id, available });
}

/**
 * Multiply-adds per second a training thread sustains, on the low side: the
 * fashion MLP 784-256-256-10 trains ~47 000 rows/s here, 3.8e10 multiply-adds/s
 * (bench/compare.mjs); small layers and convolutions run slower.
 */
const TRAIN_MULTIPLY_ADDS_PER_SECOND = 1.5e10;

export interface CostEstimate { memoryBytes: number; seconds: number }

/**
 * Peak memory and training time of a job, estimated from its layers: every
 * layer keeps its output and its input gradient for the largest batch it
 * runs (training batch or evaluation batch, as the trainer sizes them) and
 * whatever else its module says it caches per row, the
 * parameters their gradients and the optimizer's slots, the data its raw and
 * preprocessed copies; compute is a forward and a backward pass (2×) per
 * training row plus a forward pass per evaluated row, every epoch.
 */
export function estimateCost(spec: JobSpec, shape: DatasetShape, layers: LayerInfo[]): CostEstimate {
  const features = shape.inputShape.reduce((a, b) => a * b, 1);
  const available = shape.rows ?? spec.dataset.size;
  const rows = spec.dataset.limit === null ? available : Math.min(available, spec.dataset.limit);
  const valRows = Math.floor(rows * spec.dataset.validationSplit);
  const trainRows = rows - valRows;
  let width = features;
  let widest = width;
  let values = cacheValuesPerRow(layers);
  for (const l of layers) {
    const out = outputSize(l, width);
    values += width + out;
    widest = Math.max(widest, out);
    width = out;
  }
  const col = scratchSize(layers);
  const batch = Math.min(spec.training.batchSize, Math.max(trainRows, 1));
  const maxBatch = Math.max(batch, Math.min(1024, Math.floor(2 ** 22 / widest)));
  const optimizer = spec.training.optimizer;
  const slots = optimizer.type === 'adam' ? 2 : optimizer.type === 'sgd' && optimizer.momentum > 0 ? 1 : 0;
  const parameters = parameterCount(layers, spec.batchNorm);
  const memoryBytes = 4 * (maxBatch * values + col + parameters * (2 + slots) + (rows + shape.testRows) * features * 2);
  const perRow = multiplyAddsPerRow(layers);
  const seconds = (perRow * (3 * trainRows + valRows + shape.testRows) * spec.training.epochs) / TRAIN_MULTIPLY_ADDS_PER_SECOND;
  return { memoryBytes: Math.round(memoryBytes), seconds: Math.round(seconds) };
}

const mib = (bytes: number) => Math.ceil(bytes / 2 ** 20);

/** 400 LIMIT_EXCEEDED naming every field over a limit, the limit and the setting that sets it. */
export function checkLimits(spec: JobSpec, shape: DatasetShape, config: Config): void {
  const issues: Issue[] = [];
  const over = (path: string, value: number, key: keyof typeof SETTINGS & keyof Config, what: string) => {
    const limit = config[key] as number;
    if (value > limit) issues.push({ path, message: `${value} ${what} exceeds the limit of ${limit}`, value, limit, setting: SETTINGS[key].env });
  };
  const { model, training, dataset } = spec;
  const layers = expandLayers(model, shape.inputShape, shape.classes);
  const cnn = model.architecture === 'cnn';
  // Layers with a weight tensor (dense, conv, recurrent), read off their modules' tensor lists.
  const weighted = layers.filter((l) => layerTensors(l, spec.batchNorm).params.some((t) => t.name.startsWith('weight'))).length;
  over(model.layers ? '/model/layers' : cnn ? '/model' : '/model/hidden', weighted,
    'maxLayers', 'dense, conv and recurrent layers (output layer included)');
  if (model.layers) {
    model.layers.forEach((l, i) => { if ('units' in l) over(`/model/layers/${i}/units`, l.units, 'maxUnits', 'units'); });
  } else {
    (cnn ? model.dense : model.hidden).forEach((units, i) => over(`/model/${cnn ? 'dense' : 'hidden'}/${i}`, units, 'maxUnits', 'units'));
  }
  over('/model', parameterCount(layers, spec.batchNorm), 'maxParameters', 'trainable parameters');
  over('/training/epochs', training.epochs, 'maxEpochs', 'epochs');
  over('/training/batchSize', training.batchSize, 'maxBatchSize', 'rows per batch');
  if (shape.synthetic) over('/dataset/size', dataset.size, 'datasetMaxRows', 'rows');
  over('/dataset/id', shape.classes, 'maxClasses', 'classes');
  if (issues.length === 0) {
    // Only for a job within the simple limits: the estimate assumes layers of sane sizes.
    const estimate = estimateCost(spec, shape, layers);
    if (estimate.memoryBytes > config.maxJobMemoryBytes) {
      issues.push({
        path: '/model', message: `the job would need about ${mib(estimate.memoryBytes)} MiB of memory (activations × batch, parameters, optimizer state, data), over the limit of ${mib(config.maxJobMemoryBytes)} MiB; use a smaller batch or model`,
        value: estimate.memoryBytes, limit: config.maxJobMemoryBytes, setting: 'MAX_JOB_MEMORY_BYTES', estimate,
      });
    }
    if (estimate.seconds > config.maxJobSeconds) {
      issues.push({
        path: '/training/epochs', message: `the job would train for about ${estimate.seconds} s, over the limit of ${config.maxJobSeconds} s; train fewer epochs, rows or units`,
        value: estimate.seconds, limit: config.maxJobSeconds, setting: 'MAX_JOB_SECONDS', estimate,
      });
    }
  }
  if (issues.length > 0) {
    throw new HttpError(400, 'LIMIT_EXCEEDED', issues.map((i) => `${i.path}: ${i.message}`).join('; '), { issues });
  }
}
