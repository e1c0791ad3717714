import { Type } from '@sinclair/typebox';
import { JobSpecSchema } from '../../core/spec.js';
import { JOB_STATUSES } from '../../store/jobs.js';
import { FinalMetrics, Measured, Metrics, Nullable, PageQuery, TrainInferenceGap } from './common.js';

export const JobStatus = Type.Union(JOB_STATUSES.map((s) => Type.Literal(s)));

const Links = Type.Object({
  self: Type.String(),
  events: Type.String(),
  metrics: Type.String(),
  batchnorm: Type.String(),
  model: Type.Optional(Type.String()),
});

export const JobWarning = Type.Object({
  code: Type.String({ description: 'Stable code, e.g. BN_WITH_DROPOUT, BN_STATS_LAG' }),
  message: Type.String(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const SubmitResponse = Type.Object({
  id: Type.String(), status: JobStatus, links: Links,
  warnings: Type.Array(JobWarning, { description: 'What the spec alone shows (the job also emits them as warning events when it starts)' }),
});

export const Job = Type.Object({
  id: Type.String(),
  name: Nullable(Type.String()),
  status: JobStatus,
  attempt: Type.Integer({ description: '1 for the first attempt; 0 while it has not started' }),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  dataset: Type.String(),
  progress: Nullable(Type.Object({
    epoch: Type.Integer(), epochs: Type.Integer(), step: Type.Integer(), stepsPerEpoch: Type.Integer(),
    loss: Measured(), samplesPerSec: Measured(), etaSeconds: Measured(),
  })),
  metrics: Nullable(Type.Object({
    epoch: Type.Integer(), train: Metrics, val: Nullable(Metrics), test: Nullable(Metrics), lr: Measured(),
    gap: Type.Optional(Nullable(TrainInferenceGap)),
  }, { description: 'The latest epoch' })),
  result: Nullable(Type.Object({ metrics: FinalMetrics, epochsToTarget: Nullable(Type.Integer()) })),
  warnings: Type.Array(JobWarning),
  modelId: Nullable(Type.String()),
  error: Nullable(Type.Object({ code: Type.String(), message: Type.String(), details: Type.Record(Type.String(), Type.Unknown()) })),
  experiment: Nullable(Type.Object({ id: Type.String(), variant: Type.Integer(), seed: Type.Integer() }, {
    description: 'The experiment this job is a run of (variant index, seed); null for a job submitted on its own',
  })),
  spec: Type.Ref(JobSpecSchema),
  links: Links,
});

export const JobListQuery = Type.Object({ status: Type.Optional(JobStatus), ...PageQuery }, { additionalProperties: false });
export const JobList = Type.Object({ items: Type.Array(Job), nextCursor: Nullable(Type.String()) });

export const MetricsQuery = Type.Object({
  format: Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json' }),
}, { additionalProperties: false });

export const EpochMetrics = Type.Object({
  epoch: Type.Integer(),
  train: Metrics,
  val: Nullable(Metrics),
  test: Nullable(Metrics),
  lr: Measured(),
  seconds: Measured('Training time of the epoch'),
  bn: Type.Array(Type.Object({
    layer: Type.Integer(),
    batchMean: Nullable(Type.Number({ description: 'Channel average of the batch mean, averaged over the epoch\'s batches; null when frozen all epoch' })),
    batchVar: Nullable(Type.Number()),
    runningMean: Measured(), runningVar: Measured(), gammaNorm: Measured(),
    batchMeanSpread: Type.Optional(Nullable(Type.Number({ description: 'Standard deviation across channels of the batch mean' }))),
    batchVarSpread: Type.Optional(Nullable(Type.Number())),
    meanDistance: Type.Optional(Nullable(Type.Number({ description: 'Channel average of |running mean − batch mean| / batch std' }))),
    varLogRatio: Type.Optional(Nullable(Type.Number({ description: 'Channel average of |ln(running var / batch var)|' }))),
  })),
  gap: Type.Optional(Nullable(TrainInferenceGap)),
});
export const MetricsResponse = Type.Object({ jobId: Type.String(), epochs: Type.Array(EpochMetrics) });

export const EventsQuery = Type.Object({
  lastEventId: Type.Optional(Type.String({ pattern: '^\\d+-\\d+$', description: 'Same as the Last-Event-ID header' })),
}, { additionalProperties: false });
export const EventsHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ pattern: '^\\d+-\\d+$', description: 'Stream id of the last event received; the stream resumes after it' })),
});

const Channels = Type.Array(Type.Number());
export const BatchNormHistory = Type.Object({
  layers: Type.Array(Type.Object({
    layer: Type.Integer({ description: 'Index of the BN layer in the expanded layer list' }),
    kind: Type.String({ description: 'batchnorm1d (per unit or input feature) or batchnorm2d (per conv channel over H·W)' }),
    channels: Type.Integer(),
    epochs: Type.Array(Type.Object({
      epoch: Type.Integer(),
      frozen: Type.Boolean({ description: 'Frozen for the whole epoch: no batch statistics' }),
      batchMean: Nullable(Channels, { description: "Per channel, the batch mean averaged over the epoch's training batches" }),
      batchVar: Nullable(Channels, { description: 'Per channel, the unbiased batch variance averaged over the epoch\'s training batches' }),
      runningMean: Channels,
      runningVar: Channels,
      gamma: Nullable(Channels),
      beta: Nullable(Channels),
    })),
  })),
}, { description: 'Per BN layer and epoch, per-channel statistics; the oldest epochs are dropped beyond BN_HISTORY_MAX_BYTES' });
