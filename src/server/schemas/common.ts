import { Type, type TSchema } from '@sinclair/typebox';
import { ID_PATTERN } from '../../store/ids.js';

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

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

export const Metrics = Type.Object({ loss: Type.Number(), accuracy: Type.Number() });

export const FinalMetrics = Type.Object({
  epochs: Type.Integer(),
  train: Metrics,
  val: Nullable(Metrics),
  test: Nullable(Metrics),
  trainingSeconds: Type.Number(),
  samplesPerSec: Type.Number(),
});
