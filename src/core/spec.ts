/**
 * The job spec (v1): one TypeBox schema that is the validation schema, the
 * OpenAPI schema and (through Static) the TypeScript type. `resolveSpec`
 * validates a client's object and fills every default, so the rest of the
 * code only ever sees a complete `JobSpec`.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ActivationName } from './layers/activation.js';
import { LAYER_SPECS } from './layers/index.js';
import { explainErrors, type SchemaIssue } from './schema-errors.js';

// Optional-by-default fields are null when absent.
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()], { default: null });

export { ActivationName };

/** One entry of the explicit layer list: the union of every layer module's spec fragment (src/core/layers/). */
export const LayerSpec = Type.Union(LAYER_SPECS);
export type LayerSpec = Static<typeof LayerSpec>;

export const InitSpec = Type.Union([
  Type.Literal('he'), Type.Literal('glorot'), Type.Literal('lecun'),
  Type.Object({
    normal: Type.Object({ std: Type.Number({ exclusiveMinimum: 0, maximum: 10 }) }, { additionalProperties: false }),
  }, { additionalProperties: false }),
], { description: 'Weight initialization; biases start at 0, γ at 1, β at 0' });

export const BatchNormMode = Type.Union(
  [Type.Literal('none'), Type.Literal('before'), Type.Literal('after'), Type.Literal('input'), Type.Literal('sequence'), Type.Literal('recurrent')],
  {
    description: 'mlp/cnn: none | before (dense → BN → activation) | after (dense → activation → BN) | input (BN on the raw inputs only); ' +
      'rnn: none | sequence (BN of W·x_t over all N·T values, Deep Speech 2) | recurrent (per-step BN of W_x·x_t, W_h·h_{t−1} and c_t, Cooijmans et al. 2016). ' +
      'Default: before (mlp, cnn), none (rnn)',
  },
);

/** The batchNorm modes of each kind of architecture. */
const RNN_BATCH_NORM = ['none', 'sequence', 'recurrent'];
const FEEDFORWARD_BATCH_NORM = ['none', 'before', 'after', 'input'];

export const SequenceSpec = Type.Object({
  steps: Type.Integer({
    minimum: 1, maximum: 65_536,
    description: 'Each row of F features becomes [steps, F/steps] (steps must divide F); a synthetic sequence set (sines) generates sequences of this length',
  }),
}, { additionalProperties: false, description: 'Read each row as a sequence of steps (null: the dataset\'s own shape)' });

export const DatasetSpec = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, description: 'Built-in id (spirals, moons, blobs, xor, scales, sines, fashion-mnist) or an uploaded "ds_…" id' }),
  validationSplit: Type.Number({ minimum: 0, maximum: 0.5, default: 0.1 }),
  preprocess: Type.Union([Type.Literal('scale'), Type.Literal('standardize'), Type.Literal('none')], { default: 'scale' }),
  limit: Nullable(Type.Integer({ minimum: 2, description: 'Use only the first N training rows' })),
  size: Type.Integer({ minimum: 4, maximum: 1_000_000, default: 2000, description: 'Synthetic sets only: number of rows' }),
  noise: Type.Number({ minimum: 0, maximum: 10, default: 0.1, description: 'Synthetic sets only: noise level' }),
  sequence: Nullable(SequenceSpec),
}, { additionalProperties: false });

export const ModelSpec = Type.Object({
  architecture: Type.Union([Type.Literal('mlp'), Type.Literal('cnn'), Type.Literal('rnn')], {
    default: 'mlp',
    description: 'mlp: dense blocks of `hidden` units; cnn: conv blocks of `conv` filters (3×3 same, 2×2 max pool), then dense blocks of `dense` units; ' +
      'rnn: stacked recurrent layers (`cell`) of `hidden` units over [steps, features] rows, the last step feeding the output layer',
  }),
  hidden: Type.Array(Type.Integer({ minimum: 1, maximum: 65536 }), {
    maxItems: 64, default: [256, 256], description: 'mlp: units per hidden layer; rnn: units per recurrent layer (default [128]; at most 4096 each)',
  }),
  cell: Type.Union([Type.Literal('lstm'), Type.Literal('gru'), Type.Literal('rnn')], {
    default: 'lstm', description: 'rnn: lstm | gru (PyTorch nn.LSTM / nn.GRU) | rnn (Elman, nn.RNN)',
  }),
  nonlinearity: Type.Optional(Type.Union([Type.Literal('tanh'), Type.Literal('relu')], {
    description: "rnn with cell rnn only: the Elman cell's activation, default tanh (PyTorch's nn.RNN nonlinearity)",
  })),
  bidirectional: Type.Boolean({ default: false, description: 'rnn: a reverse-direction copy of each layer, outputs concatenated' }),
  conv: Type.Array(Type.Integer({ minimum: 1, maximum: 4096 }), { maxItems: 16, default: [32, 64], description: 'cnn: filters per conv block' }),
  dense: Type.Array(Type.Integer({ minimum: 1, maximum: 65536 }), { maxItems: 64, default: [128], description: 'cnn: units per dense layer after the conv blocks' }),
  activation: Type.Union([ActivationName], { default: 'relu' }),
  batchNorm: Type.Union([BatchNormMode], { default: 'before' }),
  dropout: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0 }),
  init: Type.Union([InitSpec], { default: 'he' }),
  layers: Nullable(Type.Array(LayerSpec, {
    maxItems: 256,
    description: 'Explicit layer list (replaces hidden/activation/batchNorm/dropout); the output dense layer is appended',
  })),
}, { additionalProperties: false });

export const RenormSpec = Type.Object({
  rMax: Type.Number({ minimum: 1, maximum: 100, default: 3 }),
  dMax: Type.Number({ minimum: 0, maximum: 100, default: 5 }),
  warmupSteps: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 5000, description: 'Steps over which the clip limits grow linearly from 1 and 0 to rMax and dMax' }),
}, { additionalProperties: false, description: 'Batch renormalization (Ioffe 2017)' });

export const BatchNormSpec = Type.Object({
  momentum: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()], {
    default: 0.99,
    description: 'running = momentum·running + (1−momentum)·batch (Keras convention); null: cumulative average over all batches',
  }),
  epsilon: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 1e-3 }),
  center: Type.Boolean({ default: true, description: 'Learn β' }),
  scale: Type.Boolean({ default: true, description: 'Learn γ' }),
  inferenceStats: Type.Union([Type.Literal('moving'), Type.Literal('population'), Type.Literal('auto')], {
    default: 'auto', // measured: README "Which statistics a model keeps"
    description: 'moving: the running averages; population: exact statistics recomputed over the training split after training; ' +
      'auto: whichever of the two does better on the validation split (the training split when there is none)',
  }),
  renorm: Nullable(RenormSpec),
  virtualBatchSize: Nullable(Type.Integer({ minimum: 2, maximum: 65_536, description: 'Ghost batch norm: statistics per sub-batch of this many rows' })),
}, { additionalProperties: false });

export const OptimizerSpec = Type.Union([
  Type.Object({
    type: Type.Literal('sgd'),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1e3, default: 0.1 }),
    momentum: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0, description: 'Default 0, as Keras and PyTorch (the default optimizer object sets 0.9)' }),
    nesterov: Type.Boolean({ default: false }),
    weightDecay: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('adam'),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1e3, default: 0.001 }),
    beta1: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.9 }),
    beta2: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.999 }),
    epsilon: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 1e-8 }),
    weightDecay: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  }, { additionalProperties: false }),
]);

export const ScheduleSpec = Type.Union([
  Type.Object({ type: Type.Literal('constant') }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('step'),
    stepSize: Type.Integer({ minimum: 1, default: 10, description: 'Epochs between decays' }),
    gamma: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.1 }),
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('exponential'),
    gamma: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.95, description: 'Per-epoch factor' }),
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('cosine'),
    minLearningRate: Type.Number({ minimum: 0, default: 0 }),
  }, { additionalProperties: false }),
]);

export const EarlyStoppingSpec = Type.Object({
  monitor: Type.Union([Type.Literal('val_loss'), Type.Literal('val_accuracy')], { default: 'val_loss' }),
  patience: Type.Integer({ minimum: 1, maximum: 1000, default: 3 }),
  minDelta: Type.Number({ minimum: 0, default: 0 }),
}, { additionalProperties: false });

export const TrainingSpec = Type.Object({
  epochs: Type.Integer({ minimum: 1, maximum: 10_000, default: 10 }),
  batchSize: Type.Integer({ minimum: 1, maximum: 65_536, default: 128 }),
  seed: Type.Integer({ minimum: 0, maximum: 4294967295, default: 42 }),
  // TypeBox merges a union's default object into the client's object, so only `type` may be in it; resolveSpec fills DEFAULT_OPTIMIZER.
  optimizer: Type.Union([OptimizerSpec], {
    default: { type: 'sgd' },
    description: 'Omitted: sgd with learningRate 0.1 and momentum 0.9. Inside an optimizer object omitted fields follow Keras/PyTorch: sgd without momentum has momentum 0',
  }),
  schedule: Type.Union([ScheduleSpec], { default: { type: 'constant' } }),
  targetAccuracy: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Record the first epoch whose validation accuracy reaches this' })),
  earlyStopping: Nullable(EarlyStoppingSpec),
  freezeBatchNormAfterEpoch: Nullable(Type.Integer({
    minimum: 0, maximum: 10_000,
    description: 'After this epoch, batch norm normalizes with its frozen running statistics in training too (and stops updating them)',
  })),
  maxSeconds: Nullable(Type.Number({
    exclusiveMinimum: 0, maximum: 31_536_000,
    description: 'Training time after which the job ends TIMEOUT, its checkpoint kept (the server\'s MAX_JOB_SECONDS applies too)',
  })),
}, { additionalProperties: false });

export const JobSpecSchema = Type.Object({
  name: Type.Optional(Type.String({ maxLength: 200 })),
  dataset: DatasetSpec,
  model: Type.Union([ModelSpec], { default: {} }),
  batchNorm: Type.Union([BatchNormSpec], { default: {} }),
  training: Type.Union([TrainingSpec], { default: {} }),
}, { additionalProperties: false, $id: 'JobSpec' });

export type JobSpec = Static<typeof JobSpecSchema>;
export type ModelSpec = Static<typeof ModelSpec>;
export type BatchNormSpec = Static<typeof BatchNormSpec>;
export type TrainingSpec = Static<typeof TrainingSpec>;
export type OptimizerSpec = Static<typeof OptimizerSpec>;
export type ScheduleSpec = Static<typeof ScheduleSpec>;
export type InitSpec = Static<typeof InitSpec>;
export type DatasetSpec = Static<typeof DatasetSpec>;
export type SequenceSpec = Static<typeof SequenceSpec>;
export type RenormSpec = Static<typeof RenormSpec>;

/** A validation failure: the JSON path of the offending field and the rule it broke (or the allowed values). */
export type SpecIssue = SchemaIssue;

export class SpecError extends Error {
  constructor(readonly issues: SpecIssue[]) {
    super(issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; '));
    this.name = 'SpecError';
  }
}

/**
 * Validate a client's spec, fill the defaults, and apply the rules a schema
 * cannot express. Throws SpecError naming every offending field.
 */
export function resolveSpec(input: unknown): JobSpec {
  const withDefaults = Value.Default(JobSpecSchema, withRnnDefaults(withDefaultOptimizer(Value.Clone(input)))) as unknown;
  const issues = explainErrors(Value.Errors(JobSpecSchema, withDefaults));
  if (issues.length > 0) throw new SpecError(issues);
  const spec = withDefaults as JobSpec;
  const rules: SpecIssue[] = modelRules(spec);
  if (spec.training.batchSize < 2 && usesBatchNorm(spec.model)) {
    rules.push({ path: '/training/batchSize', message: 'must be at least 2 when the model has batch norm (a batch of one has no variance)' });
  }
  const vbs = spec.batchNorm.virtualBatchSize;
  if (vbs !== null && spec.training.batchSize % vbs !== 0) {
    rules.push({ path: '/batchNorm/virtualBatchSize', message: `must divide training.batchSize (${spec.training.batchSize})` });
  }
  if (rules.length > 0) throw new SpecError(rules);
  return spec;
}

/** The optimizer of a spec that names none: SGD with momentum 0.9 (an sgd object without momentum has 0). */
export const DEFAULT_OPTIMIZER = { type: 'sgd', learningRate: 0.1, momentum: 0.9 } as const;

function withDefaultOptimizer(input: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(input) || !(input.training === undefined || isObject(input.training))) return input;
  const training = input.training ?? {};
  if (training.optimizer !== undefined) return input;
  return { ...input, training: { ...training, optimizer: { ...DEFAULT_OPTIMIZER } } };
}

/** architecture rnn: batchNorm defaults to none and hidden to [128] (mlp and cnn keep before and [256, 256]). */
function withRnnDefaults(input: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(input) || !isObject(input.model) || input.model.architecture !== 'rnn') return input;
  const model = { ...input.model };
  model.batchNorm ??= 'none';
  model.hidden ??= [128];
  return { ...input, model };
}

const RECURRENT_TYPES = new Set(['lstm', 'gru', 'rnn']);

/** The batch-norm mode of each recurrent layer the model has (none when it has none). */
function recurrentBatchNorm(model: ModelSpec): string[] {
  if (model.layers) return model.layers.flatMap((l) => (RECURRENT_TYPES.has(l.type) ? [(l as { batchNorm?: string }).batchNorm ?? 'none'] : []));
  return model.architecture === 'rnn' ? model.hidden.map(() => model.batchNorm) : [];
}

/** The rules of the model section a schema cannot express. */
function modelRules(spec: JobSpec): SpecIssue[] {
  const { model } = spec;
  const rules: SpecIssue[] = [];
  model.layers?.forEach((l, i) => {
    const { nonlinearity } = l as { nonlinearity?: string };
    if (nonlinearity !== undefined && (l.type === 'lstm' || l.type === 'gru')) {
      rules.push({ path: `/model/layers/${i}/nonlinearity`, message: `is for the Elman cell (type rnn) only; ${l.type} has fixed gate activations` });
    }
  });
  if (model.nonlinearity !== undefined) {
    if (model.layers) {
      rules.push({ path: '/model/nonlinearity', message: 'is for architecture rnn with cell rnn; with explicit layers, set it on each rnn layer' });
    } else if (model.architecture !== 'rnn' || model.cell !== 'rnn') {
      rules.push({ path: '/model/nonlinearity', message: 'applies to the Elman cell only (architecture rnn with cell rnn)' });
    }
  }
  if (!model.layers) {
    const rnn = model.architecture === 'rnn';
    const allowed = rnn ? RNN_BATCH_NORM : FEEDFORWARD_BATCH_NORM;
    if (!allowed.includes(model.batchNorm)) {
      rules.push({
        path: '/model/batchNorm', allowed,
        message: `must be one of ${allowed.join(', ')} with architecture ${model.architecture}` +
          (rnn ? '' : ' (sequence and recurrent are batch norm inside recurrent layers: architecture rnn)'),
      });
    }
    if (rnn && model.hidden.length === 0) rules.push({ path: '/model/hidden', message: 'must list at least one recurrent layer with architecture rnn' });
    if (rnn) {
      model.hidden.forEach((units, i) => {
        if (units > 4096) rules.push({ path: `/model/hidden/${i}`, message: 'must be <= 4096 for a recurrent layer' });
      });
    }
  }
  // Batch norm inside recurrent layers: the variants of the batchnorm layer that it does not offer.
  const modes = recurrentBatchNorm(model);
  if (modes.some((m) => m !== 'none')) {
    const why = 'is not available for batch norm inside recurrent layers';
    if (spec.batchNorm.renorm) rules.push({ path: '/batchNorm/renorm', message: `${why} (must be null)` });
    if (spec.batchNorm.virtualBatchSize !== null) rules.push({ path: '/batchNorm/virtualBatchSize', message: `${why} (must be null)` });
    if (spec.training.freezeBatchNormAfterEpoch !== null) {
      rules.push({ path: '/training/freezeBatchNormAfterEpoch', message: `${why} (must be null)` });
    }
  }
  if (modes.includes('recurrent') && spec.batchNorm.inferenceStats === 'population') {
    rules.push({
      path: '/batchNorm/inferenceStats', allowed: ['moving', 'auto'],
      message: 'must be moving or auto with recurrent batch norm: per-step population statistics depend on the frozen statistics of the steps before, which one pass over the training rows cannot give',
    });
  }
  return rules;
}

function usesBatchNorm(model: ModelSpec): boolean {
  if (recurrentBatchNorm(model).some((m) => m !== 'none')) return true;
  if (model.layers) return model.layers.some((l) => l.type === 'batchnorm');
  return model.batchNorm !== 'none' && model.architecture !== 'rnn';
}
