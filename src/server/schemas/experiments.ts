/** TypeBox schemas of /v1/experiments (the request schemas live with the pure code: src/experiments/spec.ts). */
import { Type } from '@sinclair/typebox';
import { EXPERIMENT_STATUSES } from '../../store/experiments.js';
import { JOB_STATUSES } from '../../store/jobs.js';
import { Nullable, PageQuery } from './common.js';
import { ExperimentSpecSchema, ExperimentSpecShape, TargetSpec, TemplateRequestSchema } from '../../experiments/spec.js';

export const ExperimentStatus = Type.Union(EXPERIMENT_STATUSES.map((s) => Type.Literal(s)));
const RunStatus = Type.Union(JOB_STATUSES.map((s) => Type.Literal(s)));

export const SubmitExperimentBody = Type.Union([Type.Ref(ExperimentSpecSchema), Type.Ref(TemplateRequestSchema)]);

const Links = Type.Object({ self: Type.String(), events: Type.String(), metrics: Type.String() });

export const SubmitExperimentResponse = Type.Object({
  id: Type.String(),
  status: ExperimentStatus,
  variants: Type.Integer(),
  jobs: Type.Integer(),
  jobIds: Type.Array(Type.String()),
  links: Links,
});

const Counts = Type.Object({
  queued: Type.Integer(), running: Type.Integer(), succeeded: Type.Integer(), failed: Type.Integer(), cancelled: Type.Integer(),
});

export const Stats = Type.Object({
  n: Type.Integer({ description: 'Values (seeds) the statistics are over' }),
  mean: Nullable(Type.Number()),
  sd: Nullable(Type.Number({ description: 'Sample standard deviation; null below two values' })),
  min: Nullable(Type.Number()),
  max: Nullable(Type.Number()),
  ci95: Nullable(Type.Array(Type.Number(), { minItems: 2, maxItems: 2, description: '95% Student-t interval of the mean; null below two values' })),
});

const RunError = Nullable(Type.Object({ code: Type.String(), message: Type.String() }));

export const RunSummary = Type.Object({
  jobId: Type.String(),
  seed: Type.Integer(),
  status: RunStatus,
  epochs: Type.Integer({ description: 'Epochs trained' }),
  epochsToTarget: Nullable(Type.Integer({ description: 'First epoch that reached the target; null: not reached (or no target)' })),
  bestValAccuracy: Nullable(Type.Number()),
  bestEpoch: Nullable(Type.Integer()),
  finalValAccuracy: Nullable(Type.Number()),
  finalTestAccuracy: Nullable(Type.Number()),
  gap: Nullable(Type.Number({ description: 'metrics.gap.accuracy of the job (batch-statistics minus frozen-statistics accuracy); null when the job has none' })),
  trainingSeconds: Nullable(Type.Number()),
  diverged: Type.Boolean(),
  error: RunError,
});

const Difference = Type.Object({
  metric: Type.Union([Type.Literal('val.accuracy'), Type.Literal('test.accuracy')]),
  difference: Type.Number({ description: 'mean(variant) − mean(baseline)' }),
  ci95: Type.Array(Type.Number(), { minItems: 2, maxItems: 2, description: "Welch's t 95% interval" }),
  df: Type.Number({ description: 'Welch–Satterthwaite degrees of freedom' }),
});

export const Comparison = Type.Object({
  baseline: Type.Integer({ description: 'Index of the baseline variant' }),
  epochsToTarget: Nullable(Type.Object({
    ratio: Nullable(Type.Number({ description: 'mean epochs of the baseline / mean epochs of the variant, when every run of both reached the target' })),
    pairs: Type.Integer({ description: 'Seeds finished in both' }),
    fewer: Type.Integer(), more: Type.Integer(), equal: Type.Integer(),
  })),
  finalAccuracy: Nullable(Difference),
});

export const VariantSummary = Type.Object({
  index: Type.Integer(),
  label: Type.String(),
  values: Type.Record(Type.String(), Type.Unknown(), { description: 'Grid path → value' }),
  jobIds: Type.Array(Type.String()),
  counts: Counts,
  runs: Type.Array(RunSummary),
  epochsToTarget: Nullable(Type.Object({
    reached: Type.Integer(), runs: Type.Integer({ description: 'Finished runs (succeeded or failed)' }),
    stats: Stats,
  }, { description: 'Null without a target; stats over the runs that reached it' })),
  bestValAccuracy: Stats,
  bestEpoch: Stats,
  finalValAccuracy: Stats,
  finalTestAccuracy: Stats,
  gap: Stats,
  trainingSeconds: Stats,
  diverged: Type.Integer(),
  baseline: Type.Integer(),
  comparison: Nullable(Comparison),
  verdict: Type.String(),
});

export const Summary = Type.Object({
  counts: Counts,
  complete: Type.Boolean(),
  target: Nullable(TargetSpec),
  method: Type.String(),
  variants: Type.Array(VariantSummary),
}, { $id: 'ExperimentSummary' });

/** What a list item and the full record share. */
const experimentFields = {
  id: Type.String(),
  name: Nullable(Type.String()),
  template: Nullable(Type.String()),
  status: ExperimentStatus,
  createdAt: Type.String({ format: 'date-time' }),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  variants: Type.Integer(),
  jobs: Type.Integer(),
  counts: Counts,
  links: Links,
};

export const Experiment = Type.Object({
  ...experimentFields,
  summary: Type.Ref(Summary),
  spec: Type.Union([ExperimentSpecShape], { description: 'The request, after template expansion and defaults (as the ExperimentSpec schema)' }),
});

export const ExperimentListItem = Type.Object(experimentFields);

export const ExperimentListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const ExperimentList = Type.Object({ items: Type.Array(ExperimentListItem), nextCursor: Nullable(Type.String()) });

export const Template = Type.Object({
  id: Type.String(),
  question: Type.String(),
  claim: Type.String(),
  variants: Type.Integer(),
  jobs: Type.Integer(),
  spec: Type.Union([ExperimentSpecShape], { description: 'The small default experiment (as the ExperimentSpec schema)' }),
});
export const TemplateList = Type.Object({ items: Type.Array(Template) });

export const ExperimentMetricsRow = Type.Object({
  jobId: Type.String(),
  variant: Type.Integer(),
  values: Type.Record(Type.String(), Type.Unknown()),
  seed: Type.Integer(),
  epoch: Type.Integer(),
  train: Type.Object({ loss: Type.Number(), accuracy: Type.Number() }),
  val: Nullable(Type.Object({ loss: Type.Number(), accuracy: Type.Number() })),
  test: Nullable(Type.Object({ loss: Type.Number(), accuracy: Type.Number() })),
  lr: Type.Number(),
  seconds: Type.Number(),
  gapAccuracy: Nullable(Type.Number({ description: 'gap.accuracy of the epoch event; null when absent' })),
});
export const ExperimentMetrics = Type.Object({
  experimentId: Type.String(),
  paths: Type.Array(Type.String()),
  rows: Type.Array(ExperimentMetricsRow),
});
