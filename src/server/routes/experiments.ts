/** /v1/experiments: submit (a spec or a template), list, look up with the summary, follow (SSE), metrics, cancel; each the requesting tenant's. */
import type { FastifyPluginAsync, FastifySchemaCompiler } from 'fastify';
import { SpecError } from '../../core/spec.js';
import { resolveExperiment, type ResolvedExperiment } from '../../experiments/grid.js';
import { ExperimentError, ExperimentTooLargeError } from '../../experiments/spec.js';
import { TEMPLATES } from '../../experiments/templates.js';
import { displayStatus, ExperimentFinishedError, runInputs } from '../../queue/experiments.js';
import { isExperimentFinished, parseEntry as parseExperimentEntry, type ExperimentRecord } from '../../store/experiments.js';
import { countStatuses } from '../../experiments/summary.js';
import { HttpError } from '../errors.js';
import { errors, IdParams } from '../schemas/common.js';
import {
  Experiment, ExperimentList, ExperimentListQuery, ExperimentMetrics, SubmitExperimentBody, SubmitExperimentResponse, TemplateList,
} from '../schemas/experiments.js';
import { EventsHeaders, EventsQuery, MetricsQuery } from '../schemas/jobs.js';
import { resumeAfter } from '../sse.js';
import { checkLimits, datasetShape, type DatasetShape } from '../submit-checks.js';
import { typeboxValidatorCompiler, type TypeBoxTypeProvider } from '../validation.js';
import type { Services } from '../services.js';

const links = (id: string) => ({ self: `/v1/experiments/${id}`, events: `/v1/experiments/${id}/events`, metrics: `/v1/experiments/${id}/metrics` });

const notFound = (id: string) => new HttpError(404, 'EXPERIMENT_NOT_FOUND', `no experiment with id ${id}`, { id });

/** The body is checked by resolveExperiment in the handler (it needs the server's MAX_EXPERIMENT_JOBS). */
// `any`: as a route option its schema type is the whole route schema.
const experimentBodyCompiler: FastifySchemaCompiler<any> = (route) => (route.httpPart === 'body' ? (data: unknown) => ({ value: data }) : typeboxValidatorCompiler(route));

/** Expand and check an experiment request: the grid, then every variant as POST /v1/jobs checks a job. */
async function resolveRequest(body: unknown, tenant: string, services: Services): Promise<ResolvedExperiment> {
  let experiment: ResolvedExperiment;
  try {
    experiment = resolveExperiment(body, services.config.maxExperimentJobs);
  } catch (err) {
    if (err instanceof ExperimentError) {
      throw new HttpError(400, 'INVALID_EXPERIMENT', `invalid experiment: ${err.message}`, { issues: err.issues });
    }
    if (err instanceof ExperimentTooLargeError) {
      throw new HttpError(400, 'LIMIT_EXCEEDED', `/grid: ${err.message} (MAX_EXPERIMENT_JOBS)`, {
        issues: [{ path: '/grid', message: err.message, value: err.jobs, limit: err.limit, setting: 'MAX_EXPERIMENT_JOBS' }],
      });
    }
    throw err;
  }
  const shapes = new Map<string, DatasetShape>();
  for (const v of experiment.variants) {
    try {
      const key = JSON.stringify([v.spec.dataset.id, v.spec.dataset.sequence]);
      if (!shapes.has(key)) shapes.set(key, await datasetShape(v.spec.dataset, tenant, services.datasets));
      checkLimits(v.spec, shapes.get(key)!, services.config);
    } catch (err) {
      if (err instanceof SpecError) {
        // A rule only the dataset's shape can check (layers that do not fit it, dataset.sequence.steps).
        throw new HttpError(400, 'INVALID_SPEC', `variant ${v.index} (${v.label}): invalid job spec: ${err.message}`, { issues: err.issues, variant: v.index, values: v.values });
      }
      if (!(err instanceof HttpError)) throw err;
      throw new HttpError(err.statusCode, err.code, `variant ${v.index} (${v.label}): ${err.message}`, { ...err.details, variant: v.index, values: v.values });
    }
  }
  return experiment;
}

async function view(record: ExperimentRecord, services: Services) {
  const summary = await services.experiments.summary(record);
  return {
    id: record.id, name: record.name, template: record.template,
    status: displayStatus(record, summary.counts),
    createdAt: record.createdAt, finishedAt: record.finishedAt,
    variants: record.variants.length, jobs: record.runs.length, counts: summary.counts,
    summary, spec: record.request, links: links(record.id),
  };
}

const CSV_FIXED = ['epoch', 'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'test_loss', 'test_accuracy', 'lr', 'seconds', 'gap_accuracy'];

function csvField(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const experimentsRoutes: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { services } = app;

  const find = async (tenant: string, id: string) => {
    const record = await services.experiments.get(tenant, id);
    if (!record) throw notFound(id);
    return record;
  };

  app.post('/experiments', {
    schema: {
      tags: ['experiments'],
      summary: 'Submit an experiment (a grid over a job spec, or a template)',
      description: 'Every variant (base + grid values) is validated like POST /v1/jobs; an error names the grid path or the variant and the field. ' +
        'More than MAX_EXPERIMENT_JOBS jobs (variants × seeds): 400 LIMIT_EXCEEDED. The children count against TENANT_MAX_ACTIVE_JOBS (429).',
      body: SubmitExperimentBody,
      response: { 202: SubmitExperimentResponse, ...errors(400, 413, 415, 422, 429) },
    },
    validatorCompiler: experimentBodyCompiler,
  }, async (request, reply) => {
    const experiment = await resolveRequest(request.body, request.tenant, services);
    const record = await services.experiments.submit(request.tenant, experiment);
    return reply.code(202).header('location', `/v1/experiments/${record.id}`).send({
      id: record.id, status: record.status, variants: record.variants.length, jobs: record.runs.length,
      jobIds: record.runs.map((r) => r.jobId), links: links(record.id),
    });
  });

  app.get('/experiments/templates', {
    schema: {
      tags: ['experiments'],
      summary: 'Ready-made experiments: the question each asks and the claim it tests',
      description: 'Run one with POST /v1/experiments {"template": id, "overrides": {…}}; "overrides": {"full": true} runs the full-size version.',
      response: { 200: TemplateList },
    },
  }, async () => ({
    items: TEMPLATES.map((t) => {
      const x = resolveExperiment({ template: t.id }, Number.MAX_SAFE_INTEGER);
      return { id: t.id, question: t.question, claim: t.claim, variants: x.variants.length, jobs: x.runs.length, spec: x.request };
    }),
  }));

  app.get('/experiments', {
    schema: {
      tags: ['experiments'],
      summary: 'List experiments, newest first',
      querystring: ExperimentListQuery,
      response: { 200: ExperimentList, ...errors(400) },
    },
  }, async (request) => {
    const { items, nextCursor } = await services.experimentStore.list(request.tenant, request.query);
    const listed = await Promise.all(items.map(async (record) => {
      const statuses = await Promise.all(record.runs.map((r) => services.jobStore.status(r.jobId)));
      const counts = record.summary?.counts ?? countStatuses(statuses.map((s) => s ?? 'cancelled'));
      return {
        id: record.id, name: record.name, template: record.template, status: displayStatus(record, counts),
        createdAt: record.createdAt, finishedAt: record.finishedAt, variants: record.variants.length, jobs: record.runs.length,
        counts, links: links(record.id),
      };
    }));
    return { items: listed, nextCursor };
  });

  app.get('/experiments/:id', {
    schema: {
      tags: ['experiments'],
      summary: 'An experiment: status, counts, per-variant statistics over seeds, comparisons with the baseline and verdicts',
      params: IdParams,
      response: { 200: Experiment, ...errors(400, 404) },
    },
  }, async (request) => view(await find(request.tenant, request.params.id), services));

  app.delete('/experiments/:id', {
    schema: {
      tags: ['experiments'],
      summary: 'Cancel an experiment',
      description: 'Cancels every child that has not finished (queued ones at once, running ones within a step); the experiment ends ' +
        'cancelled, with the summary of what finished, once they all have (202). A finished experiment: 409.',
      params: IdParams,
      response: { 202: Experiment, ...errors(400, 404, 409) },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    try {
      const record = await services.experiments.cancel(request.tenant, id);
      if (!record) throw notFound(id);
      return reply.code(202).send(await view(record, services));
    } catch (err) {
      if (err instanceof ExperimentFinishedError) {
        throw new HttpError(409, 'EXPERIMENT_FINISHED', `experiment ${id} already ended ${err.experiment.status}`, { id, status: err.experiment.status });
      }
      throw err;
    }
  });

  app.get('/experiments/:id/events', {
    schema: {
      tags: ['experiments'],
      summary: 'Follow an experiment (server-sent events)',
      description: 'queued, then each child\'s epoch and terminal events (completed, failed, cancelled) tagged with jobId, variant and seed, ' +
        'then the experiment\'s own completed {summary} (or cancelled {summary}), which ends the response. Resumable with Last-Event-ID.',
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
      key: services.keys.experimentEvents(id),
      after,
      tenant: request.tenant,
      parse: parseExperimentEntry,
      finished: async () => {
        const status = await services.experimentStore.status(id);
        return !status || isExperimentFinished(status);
      },
      // A child's completed/failed/cancelled carries its jobId; the experiment's own does not.
      isTerminal: (event) => (event.type === 'completed' || event.type === 'cancelled') && !('jobId' in event),
    });
  });

  app.get('/experiments/:id/metrics', {
    schema: {
      tags: ['experiments'],
      summary: 'Every run\'s per-epoch metrics in long format (JSON or CSV)',
      description: 'One row per run per epoch, with the job id, the variant, its grid values (one CSV column per grid path) and the seed.',
      params: IdParams,
      querystring: MetricsQuery,
      response: {
        200: {
          description: 'One row per run per epoch',
          content: { 'application/json': { schema: ExperimentMetrics }, 'text/csv': { schema: { type: 'string' } } },
        },
        ...errors(400, 404),
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const record = await find(request.tenant, id);
    const inputs = await runInputs(services.jobStore, record.runs);
    const rows = inputs.flatMap((run) => run.history.map((e) => ({
      jobId: run.jobId, variant: run.variant, values: record.variants[run.variant]!.values, seed: run.seed,
      epoch: e.epoch, train: e.train, val: e.val, test: e.test, lr: e.lr, seconds: e.seconds,
      gapAccuracy: (e as { gap?: { accuracy: number } | null }).gap?.accuracy ?? null,
    })));
    if (request.query.format === 'csv') {
      const header = ['job_id', 'variant', ...record.paths, 'seed', ...CSV_FIXED].map(csvField).join(',');
      const lines = rows.map((r) => [
        r.jobId, r.variant, ...record.paths.map((p) => r.values[p]), r.seed,
        r.epoch, r.train.loss, r.train.accuracy, r.val?.loss, r.val?.accuracy, r.test?.loss, r.test?.accuracy, r.lr, r.seconds, r.gapAccuracy,
      ].map(csvField).join(','));
      return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${id}-metrics.csv"`)
        .send([header, ...lines].join('\n') + '\n');
    }
    return reply.type('application/json; charset=utf-8').send({ experimentId: id, paths: record.paths, rows });
  });
};

export default experimentsRoutes;
