/**
 * The experiment request: a base job spec, a grid of dot paths into it, the
 * seeds every variant runs with, an optional target and baseline; or a
 * template name with overrides. One TypeBox schema documents it (OpenAPI);
 * `resolveExperiment` (./grid.ts) checks it and expands it into runs.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { JobSpecSchema } from '../core/spec.js';

/** What `target.metric` may name: a split and a measure of the epoch events. */
export const TARGET_METRICS = ['val.accuracy', 'test.accuracy', 'train.accuracy', 'val.loss', 'test.loss', 'train.loss'] as const;
export type TargetMetric = (typeof TARGET_METRICS)[number];

export const TargetSpec = Type.Object({
  metric: Type.String({ description: `${TARGET_METRICS.join(' | ')}; an accuracy is reached at ≥ value, a loss at ≤ value` }),
  value: Type.Number(),
}, { additionalProperties: false });

const GRID_DESCRIPTION = 'Dot paths into the job spec → the values to try; the variants are the cartesian product (the first axis varies slowest). ' +
  'A key of several comma-separated paths varies them together: each value is an array with one value per path ' +
  '(e.g. "model.batchNorm,batchNorm.renorm": [["none", null], ["before", {"rMax": 3}]]). training.seed is set by `seeds`.';

function experimentSchema(base: TSchema, id?: string) {
  return Type.Object({
    name: Type.Optional(Type.String({ maxLength: 200 })),
    base,
    grid: Type.Record(Type.String(), Type.Array(Type.Unknown()), { description: GRID_DESCRIPTION }),
    seeds: Type.Array(Type.Integer({ minimum: 0, maximum: 4294967295 }), {
      minItems: 1, default: [1, 2, 3], description: 'Every variant runs once per seed (sets training.seed)',
    }),
    target: Type.Optional(Type.Union([TargetSpec, Type.Null()], { description: 'Epochs to target per run' })),
    baseline: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], {
      description: 'Grid values of the variant others are compared with; axes it leaves out match the compared variant ' +
        '(so {"model.batchNorm": "none"} compares each learning rate with none at that learning rate). Default: the first variant',
    })),
  }, { additionalProperties: false, ...(id ? { $id: id } : {}) });
}

/** The documented form: `base` is a job spec as POST /v1/jobs takes it. */
export const ExperimentSpecSchema = experimentSchema(Type.Ref(JobSpecSchema), 'ExperimentSpec');
/** The form checked before expansion: each variant's spec is validated on its own, after the grid values are set. */
export const ExperimentSpecShape = experimentSchema(Type.Record(Type.String(), Type.Unknown()));
export type ExperimentSpec = Static<typeof ExperimentSpecShape>;

export const TemplateRequestSchema = Type.Object({
  template: Type.String({ description: 'A template id from GET /v1/experiments/templates' }),
  overrides: Type.Optional(Type.Record(Type.String(), Type.Unknown(), {
    description: 'Merged into the template\'s experiment (objects merge, anything else replaces); "full": true runs the full-size version',
  })),
}, { additionalProperties: false, $id: 'ExperimentTemplateRequest' });
export type TemplateRequest = Static<typeof TemplateRequestSchema>;

/** One offending field of an experiment request. */
export interface ExperimentIssue { path: string; message: string; [extra: string]: unknown }

export class ExperimentError extends Error {
  constructor(readonly issues: ExperimentIssue[]) {
    super(issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; '));
    this.name = 'ExperimentError';
  }
}

/** The experiment has more runs than the server allows (MAX_EXPERIMENT_JOBS). */
export class ExperimentTooLargeError extends Error {
  constructor(readonly jobs: number, readonly limit: number, readonly variants: number, readonly seeds: number) {
    super(`${variants} variants × ${seeds} seeds = ${jobs} jobs exceeds the limit of ${limit}`);
    this.name = 'ExperimentTooLargeError';
  }
}
