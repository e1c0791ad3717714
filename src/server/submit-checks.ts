/**
 * What POST /jobs checks beyond the schema: that the dataset exists and can be
 * loaded, and that the job fits the limits of this server (config.ts).
 */
import { SETTINGS, type Config } from '../config.js';
import { expandLayers, parameterCount } from '../core/layers.js';
import type { JobSpec } from '../core/spec.js';
import { listBuiltinDatasets } from '../datasets/index.js';
import type { DatasetStore } from '../store/datasets.js';
import { HttpError, type Issue } from './errors.js';

export interface DatasetShape { inputShape: number[]; classes: number; synthetic: boolean }

/**
 * The shape of a built-in dataset or of the tenant's upload; 400
 * UNKNOWN_DATASET (also for another tenant's upload), or 422
 * DATASET_UNAVAILABLE for a built-in that is not installed.
 */
export async function datasetShape(id: string, tenant: string, uploads: DatasetStore): Promise<DatasetShape> {
  const builtins = listBuiltinDatasets();
  const builtin = builtins.find((d) => d.id === id);
  if (builtin) {
    if (!builtin.available) {
      throw new HttpError(422, 'DATASET_UNAVAILABLE', `dataset ${id} is not installed on this server: ${builtin.installHint}`, { path: '/dataset/id', id, installHint: builtin.installHint });
    }
    return { inputShape: builtin.inputShape, classes: builtin.classes, synthetic: builtin.kind === 'synthetic' };
  }
  const upload = await uploads.summary(tenant, id);
  if (upload) return { inputShape: upload.inputShape, classes: upload.classes, synthetic: false };
  const available = builtins.filter((d) => d.available).map((d) => d.id);
  throw new HttpError(400, 'UNKNOWN_DATASET',
    `/dataset/id: unknown dataset "${id}"; available built-in datasets: ${available.join(', ')}; uploaded datasets ("ds_…") are listed by GET /v1/datasets`,
    { path: '/dataset/id', id, available });
}

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
  over(model.layers ? '/model/layers' : cnn ? '/model' : '/model/hidden', layers.filter((l) => l.type === 'dense' || l.type === 'conv2d').length,
    'maxLayers', 'dense and conv layers (output layer included)');
  if (model.layers) {
    model.layers.forEach((l, i) => { if (l.type === 'dense') over(`/model/layers/${i}/units`, l.units, 'maxUnits', 'units'); });
  } else {
    (cnn ? model.dense : model.hidden).forEach((units, i) => over(`/model/${cnn ? 'dense' : 'hidden'}/${i}`, units, 'maxUnits', 'units'));
  }
  over('/model', parameterCount(layers), 'maxParameters', 'trainable parameters');
  over('/training/epochs', training.epochs, 'maxEpochs', 'epochs');
  over('/training/batchSize', training.batchSize, 'maxBatchSize', 'rows per batch');
  if (shape.synthetic) over('/dataset/size', dataset.size, 'datasetMaxRows', 'rows');
  over('/dataset/id', shape.classes, 'maxClasses', 'classes');
  if (issues.length > 0) {
    throw new HttpError(400, 'LIMIT_EXCEEDED', issues.map((i) => `${i.path}: ${i.message}`).join('; '), { issues });
  }
}
