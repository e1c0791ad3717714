import { Type } from '@sinclair/typebox';
import { JobSpecSchema } from '../../core/spec.js';
import { JOB_STATUSES } from '../../store/jobs.js';
import { FinalMetrics, Metrics, Nullable, PageQuery } from './common.js';

export const JobStatus = Type.Union(JOB_STATUSES.map((s) => Type.Literal(s)));

const Links = Type.Object({
  self: Type.String(),
  events: Type.String(),
  metrics: Type.String(),
  model: Type.Optional(Type.String()),
});

export const SubmitResponse = Type.Object({ id: Type.String(), status: JobStatus, links: Links });

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
    loss: Type.Number(), samplesPerSec: Type.Number(), etaSeconds: Type.Number(),
  })),
  metrics: Nullable(Type.Object({
    epoch: Type.Integer(), train: Metrics, val: Nullable(Metrics), test: Nullable(Metrics), lr: Type.Number(),
  }, { description: 'The latest epoch' })),
  result: Nullable(Type.Object({ metrics: FinalMetrics, epochsToTarget: Nullable(Type.Integer()) })),
  warnings: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
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
  lr: Type.Number(),
  seconds: Type.Number({ description: 'Training time of the epoch' }),
  bn: Type.Array(Type.Object({
    layer: Type.Integer(), batchMean: Type.Number(), batchVar: Type.Number(),
    runningMean: Type.Number(), runningVar: Type.Number(), gammaNorm: Type.Number(),
  })),
});
export const MetricsResponse = Type.Object({ jobId: Type.String(), epochs: Type.Array(EpochMetrics) });

export const EventsQuery = Type.Object({
  lastEventId: Type.Optional(Type.String({ pattern: '^\\d+-\\d+$', description: 'Same as the Last-Event-ID header' })),
}, { additionalProperties: false });
export const EventsHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ pattern: '^\\d+-\\d+$', description: 'Stream id of the last event received; the stream resumes after it' })),
});
