/** /v1/jobs: submit, list, look up, follow (SSE), metrics history, checkpoint, cancel; each the requesting tenant's. */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { expandLayers } from '../../core/layers.js';
import { JobSpecSchema, type JobSpec } from '../../core/spec.js';
import { specWarnings } from '../../core/warnings.js';
import { JobFinishedError } from '../../queue/train-queue.js';
import { isFinished, type EpochEvent, type JobRecord } from '../../store/jobs.js';
import { HttpError, notFound } from '../errors.js';
import { errors, IdParams } from '../schemas/common.js';
import {
  BatchNormHistory, EventsHeaders, EventsQuery, Job, JobList, JobListQuery, MetricsQuery, MetricsResponse, SubmitResponse,
} from '../schemas/jobs.js';
import type { BatchNormEpochEntry } from '../../store/jobs.js';
import { resumeAfter } from '../sse.js';
import { checkLimits, datasetShape } from '../submit-checks.js';
import { jobSpecValidatorCompiler, type TypeBoxTypeProvider } from '../validation.js';

const links = (job: JobRecord) => ({
  self: `/v1/jobs/${job.id}`,
  events: `/v1/jobs/${job.id}/events`,
  metrics: `/v1/jobs/${job.id}/metrics`,
  batchnorm: `/v1/jobs/${job.id}/batchnorm`,
  ...(job.modelId ? { model: `/v1/models/${job.modelId}` } : {}),
});

function view(job: JobRecord) {
  const { finalMetrics, epochsToTarget, spec, tenant: _, ...rest } = job;
  return {
    ...rest,
    dataset: spec.dataset.id,
    result: finalMetrics ? { metrics: finalMetrics, epochsToTarget } : null,
    spec,
    links: links(job),
  };
}

const CSV_COLUMNS = ['epoch', 'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'test_loss', 'test_accuracy', 'lr', 'seconds',
  'gap_split', 'gap_frozen_loss', 'gap_frozen_accuracy', 'gap_batch_loss', 'gap_batch_accuracy', 'gap_loss', 'gap_accuracy'];

function toCsv(history: EpochEvent[]): string {
  const rows = history.map((e) => [e.epoch, e.train.loss, e.train.accuracy, e.val?.loss, e.val?.accuracy, e.test?.loss, e.test?.accuracy, e.lr, e.seconds,
    e.gap?.split, e.gap?.frozen.loss, e.gap?.frozen.accuracy, e.gap?.batch.loss, e.gap?.batch.accuracy, e.gap?.loss, e.gap?.accuracy]
    .map((v) => (v === undefined ? '' : String(v))).join(','));
  return [CSV_COLUMNS.join(','), ...rows].join('\n') + '\n';
}

/** Stored per epoch, served per layer. */
function byLayer(entries: BatchNormEpochEntry[]) {
  const layers = new Map<number, { layer: number; kind: string; channels: number; epochs: unknown[] }>();
  for (const { epoch, layers: stats } of entries) {
    for (const { layer, kind, channels, ...values } of stats) {
      if (!layers.has(layer)) layers.set(layer, { layer, kind, channels, epochs: [] });
      layers.get(layer)!.epochs.push({ epoch, ...values });
    }
  }
  return { layers: [...layers.values()] };
}

const jobsRoutes: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { services } = app;

  const find = async (tenant: string, id: string) => {
    const job = await services.jobs.get(tenant, id);
    if (!job) throw notFound('job', id);
    return job;
  };

  app.post('/jobs', {
    schema: {
      tags: ['jobs'],
      summary: 'Submit a training job',
      description: 'The spec is validated and its defaults filled; the dataset must exist and the job fit the server limits ' +
        '(429 TOO_MANY_ACTIVE_JOBS when the tenant already has TENANT_MAX_ACTIVE_JOBS queued or running jobs).',
      body: Type.Ref(JobSpecSchema),
      response: { 202: SubmitResponse, ...errors(400, 413, 415, 422) },
    },
    validatorCompiler: jobSpecValidatorCompiler,
  }, async (request, reply) => {
    const spec = request.body as JobSpec;
    const shape = await datasetShape(spec.dataset, request.tenant, services.datasets);
    checkLimits(spec, shape, services.config);
    const warnings = specWarnings(spec, expandLayers(spec.model, shape.inputShape, shape.classes));
    const job = await services.jobs.submit(request.tenant, spec);
    return reply.code(202).header('location', `/v1/jobs/${job.id}`).send({ id: job.id, status: job.status, links: links(job), warnings });
  });

  app.get('/jobs', {
    schema: {
      tags: ['jobs'],
      summary: 'List jobs, newest first',
      querystring: JobListQuery,
      response: { 200: JobList, ...errors(400) },
    },
  }, async (request) => {
    const { items, nextCursor } = await services.jobStore.list(request.tenant, request.query);
    return { items: items.map(view), nextCursor };
  });

  app.get('/jobs/:id', {
    schema: {
      tags: ['jobs'],
      summary: 'A job: status, attempt, progress, latest metrics, warnings, model or error',
      params: IdParams,
      response: { 200: Job, ...errors(400, 404) },
    },
  }, async (request) => view(await find(request.tenant, request.params.id)));

  app.get('/jobs/:id/events', {
    schema: {
      tags: ['jobs'],
      summary: 'Follow a job (server-sent events)',
      description: 'The job\'s events from the start, or after Last-Event-ID (header or lastEventId query). ' +
        'SSE id = stream id, event = event type, data = the event as JSON; `: ping` comments keep the connection alive; ' +
        'the response ends after the terminal event (completed, failed or cancelled).',
      params: IdParams,
      querystring: EventsQuery,
      headers: EventsHeaders,
      response: {
        200: { description: 'An event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        ...errors(400, 404, 429),
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const after = resumeAfter(request.headers['last-event-id'], request.query.lastEventId);
    await find(request.tenant, id);
    await services.streams.serve(request, reply, {
      key: services.keys.events(id),
      after,
      tenant: request.tenant,
      finished: async () => {
        const status = await services.jobStore.status(id);
        return !status || isFinished(status);
      },
    });
  });

  app.get('/jobs/:id/metrics', {
    schema: {
      tags: ['jobs'],
      summary: 'Per-epoch metrics history (JSON or CSV)',
      params: IdParams,
      querystring: MetricsQuery,
      response: {
        200: {
          description: 'One entry per finished epoch',
          content: { 'application/json': { schema: MetricsResponse }, 'text/csv': { schema: { type: 'string' } } },
        },
        ...errors(400, 404),
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    await find(request.tenant, id);
    const history = await services.jobStore.history(id);
    if (request.query.format === 'csv') {
      return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${id}-metrics.csv"`).send(toCsv(history));
    }
    return reply.type('application/json; charset=utf-8').send({ jobId: id, epochs: history });
  });

  app.get('/jobs/:id/batchnorm', {
    schema: {
      tags: ['jobs'],
      summary: 'Per-channel batch-norm statistics per layer and epoch',
      description: "Per BN layer and finished epoch: the per-channel batch mean and unbiased variance averaged over the epoch's " +
        'training batches (null when the layer was frozen all epoch), the running mean and variance, γ and β (null when ' +
        'batchNorm.scale / center is false). A model without BN has no layers.',
      params: IdParams,
      response: { 200: BatchNormHistory, ...errors(400, 404) },
    },
  }, async (request) => {
    const { id } = request.params;
    await find(request.tenant, id);
    return byLayer(await services.jobStore.batchNormHistory(id));
  });

  app.get('/jobs/:id/checkpoint', {
    schema: {
      tags: ['jobs'],
      summary: 'The latest training checkpoint (safetensors)',
      description: 'Weights, batch-norm running statistics, optimizer state and, in the metadata, the loop state (epoch, step, ' +
        'PRNG, metric history). A queued or running job has one after its first epoch (or CHECKPOINT_EVERY_STEPS steps); ' +
        'a failed job keeps its last good one, e.g. from before a divergence; a succeeded or cancelled job has none (404 NO_CHECKPOINT).',
      params: IdParams,
      response: {
        200: { description: 'safetensors', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
        ...errors(400, 404),
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const job = await find(request.tenant, id);
    const bytes = await services.jobStore.checkpoint(id);
    if (!bytes) throw new HttpError(404, 'NO_CHECKPOINT', `job ${id} (${job.status}) has no checkpoint`, { id, status: job.status });
    return reply.type('application/octet-stream').header('content-disposition', `attachment; filename="${id}-checkpoint.safetensors"`).send(bytes);
  });

  app.delete('/jobs/:id', {
    schema: {
      tags: ['jobs'],
      summary: 'Cancel a job',
      description: 'A queued job is removed from the queue and ends cancelled (200). A running job stops within one ' +
        'training step and ends cancelled (202; follow its events or poll it). A finished job: 409.',
      params: IdParams,
      response: { 200: Job, 202: Job, ...errors(400, 404, 409) },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    try {
      const job = await services.jobs.cancel(request.tenant, id);
      if (!job) throw notFound('job', id);
      return reply.code(job.status === 'cancelled' ? 200 : 202).send(view(job));
    } catch (err) {
      if (err instanceof JobFinishedError) {
        throw new HttpError(409, 'JOB_FINISHED', `job ${id} already ended ${err.job.status}; only queued and running jobs can be cancelled`, { id, status: err.job.status });
      }
      throw err;
    }
  });
};

export default jobsRoutes;
