import { Type } from '@sinclair/typebox';
import { JobSpecSchema } from '../../core/spec.js';
import { FinalMetrics, Nullable } from './common.js';

const FLOAT32_MAX = 3.4028234663852886e38;

const InferenceStats = Type.Union([Type.Literal('moving'), Type.Literal('population')], {
  description: 'Which frozen batch-norm statistics inference uses: the moving averages, or population statistics recomputed over the training split',
});

export const ModelSummary = Type.Object({
  id: Type.String(),
  jobId: Type.String(),
  name: Nullable(Type.String()),
  dataset: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  parameters: Type.Integer(),
  inferenceStats: InferenceStats,
  metrics: FinalMetrics,
  links: Type.Object({ self: Type.String(), job: Type.String(), predict: Type.String(), batchnorm: Type.String(), weights: Type.String(), onnx: Type.String() }),
});

export const ModelList = Type.Object({ items: Type.Array(ModelSummary), nextCursor: Nullable(Type.String()) });

export const ModelDetail = Type.Composite([ModelSummary, Type.Object({
  spec: Type.Ref(JobSpecSchema),
  layers: Type.Array(Type.Object({ index: Type.Integer(), type: Type.String() }, { additionalProperties: true }), {
    description: 'The expanded layer list, output layer included',
  }),
  inputShape: Type.Array(Type.Integer()),
  features: Type.Integer(),
  classes: Type.Integer(),
  classNames: Type.Array(Type.String()),
  preprocess: Type.Union([Type.Literal('none'), Type.Literal('scale'), Type.Literal('standardize')], {
    description: 'Preprocessing fitted on the training split, applied to the raw rows sent to predict',
  }),
  epsilon: Type.Number({ description: 'Batch-norm epsilon' }),
  preprocessing: Type.Object({
    kind: Type.Union([Type.Literal('none'), Type.Literal('scale'), Type.Literal('standardize')]),
    offset: Nullable(Type.Array(Type.Number())),
    factor: Nullable(Type.Array(Type.Number())),
  }, { description: 'The fitted preprocessing, per feature: x\' = (x − offset)·factor (null for none); the weights as trained expect x\'' }),
})]);

/** Routes that take no query parameters: any is an error (400), not silently ignored. */
export const NoQuery = Type.Object({}, { additionalProperties: false });

export const WeightsQuery = Type.Object({
  form: Type.Optional(Type.Union([Type.Literal('trained'), Type.Literal('inference')], {
    description: 'trained (default): the layers as trained; inference: the folded tensors predict computes with',
  })),
}, { additionalProperties: false });

export const BatchNormResponse = Type.Object({
  modelId: Type.String(),
  layers: Type.Array(Type.Object({
    layer: Type.Integer({ description: 'Index in the expanded layer list' }),
    channels: Type.Integer(),
    mean: Type.Array(Type.Number()),
    variance: Type.Array(Type.Number()),
    gamma: Type.Array(Type.Number()),
    beta: Type.Array(Type.Number()),
    epsilon: Type.Number(),
    source: InferenceStats,
  })),
});

export function predictBody(maxRows: number) {
  return Type.Object({
    instances: Type.Array(Type.Array(Type.Number({ minimum: -FLOAT32_MAX, maximum: FLOAT32_MAX })), {
      minItems: 1,
      maxItems: maxRows,
      description: 'Rows in the dataset\'s raw feature space (the model applies its own preprocessing)',
    }),
  }, { additionalProperties: false });
}

export const PredictResponse = Type.Object({
  predictions: Type.Array(Type.Object({
    label: Type.String({ description: 'Name of the most probable class' }),
    probabilities: Type.Array(Type.Number(), { description: 'One per class, in the order of the model\'s classNames' }),
  })),
});
