import { Type, type TSchema } from '@sinclair/typebox';
import { ID_PATTERN } from '../../store/ids.js';

export const Nullable = <T extends TSchema>(t: T, options: { description?: string } = {}) => Type.Union([t, Type.Null()], options);

export const ErrorResponse = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'Stable machine-readable code, e.g. INVALID_SPEC, LIMIT_EXCEEDED, JOB_NOT_FOUND' }),
    message: Type.String(),
    details: Type.Record(Type.String(), Type.Unknown()),
  }),
}, { $id: 'Error', description: 'Every 4xx/5xx answer' });

/** The error responses a route can give, by status. */
export function errors(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, Type.Ref(ErrorResponse)]));
}

export const IdParams = Type.Object({
  id: Type.String({ pattern: ID_PATTERN, description: 'Resource id (a model has the id of the job that trained it)' }),
});

export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ pattern: ID_PATTERN, description: 'nextCursor of the previous page' })),
};

/** A measured value; null where a stored record holds a number that is not finite (older jobs), so reads never fail on it. */
export const Measured = (description?: string) => Type.Union([Type.Number(), Type.Null()], description ? { description } : {});

export const Metrics = Type.Object({ loss: Measured(), accuracy: Measured() });

export const TrainInferenceGap = Type.Object({
  split: Type.Union([Type.Literal('val'), Type.Literal('train')], { description: 'Rows it was measured on (train when there is no validation split)' }),
  frozen: Metrics,
  batch: Metrics,
  accuracy: Measured('batch.accuracy − frozen.accuracy (positive: the frozen statistics lose accuracy)'),
  loss: Measured('frozen.loss − batch.loss'),
}, { description: 'The same rows with the frozen inference statistics and with batch statistics (BN in training mode, no dropout, mini-batches of batchSize)' });

export const FinalMetrics = Type.Object({
  epochs: Type.Integer(),
  train: Metrics,
  val: Nullable(Metrics),
  test: Nullable(Metrics),
  trainingSeconds: Measured(),
  samplesPerSec: Measured(),
  gap: Type.Optional(Nullable(TrainInferenceGap)),
  inferenceStats: Type.Optional(Type.Union([Type.Literal('moving'), Type.Literal('population')], { description: 'The frozen statistics the model keeps' })),
});
