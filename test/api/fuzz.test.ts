/**
 * Property-based fuzzing (fast-check) of the bodies of POST /v1/jobs,
 * POST /v1/models/:id/predict and POST /v1/datasets: every answer is 2xx, or
 * 4xx with an error code, never a 5xx; the server stays up. Then hostile
 * bodies one by one, and every route with fuzzed ids, query strings, headers
 * and bodies across two tenants, with the answers checked against the
 * response schemas.
 */
import { FormatRegistry, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobSpecSchema, resolveSpec } from '../../src/core/spec.js';
import { ErrorResponse } from '../../src/server/schemas/common.js';
import { DatasetInfo, DatasetList, UploadResponse } from '../../src/server/schemas/datasets.js';
import { BatchNormHistory, Job, JobList, MetricsResponse, SubmitResponse } from '../../src/server/schemas/jobs.js';
import { BatchNormResponse, ModelDetail, ModelList, PredictResponse } from '../../src/server/schemas/models.js';
import { Experiment, ExperimentList, ExperimentMetrics, SubmitExperimentResponse, Summary, TemplateList } from '../../src/server/schemas/experiments.js';
import { ExperimentSpecSchema, TemplateRequestSchema } from '../../src/experiments/spec.js';
import { train } from '../../src/core/train.js';
import { loadBuiltinDataset } from '../../src/datasets/index.js';
import { OPEN_TENANT } from '../../src/server/plugins/auth.js';
import { startStack, TINY_SPEC, type Stack } from './helpers.js';

const RUNS = 150;

let stack: Stack;
let modelId: string;

beforeAll(async () => {
  // No worker: accepted jobs stay queued. The model for predict is trained here and stored directly.
  stack = await startStack('fuzz', { config: { tenantMaxActiveJobs: 1_000_000, rateLimitMax: 0, datasetMaxBytes: 64 * 1024, datasetMaxFeatures: 64 } });
  const spec = resolveSpec(TINY_SPEC);
  const result = await train(spec, await loadBuiltinDataset(spec.dataset, spec.training.seed));
  modelId = `job_${'0'.repeat(20)}1`;
  await stack.app.services.models.save(OPEN_TENANT, modelId, result.artifact);
});
afterAll(async () => stack.close());

async function post(path: string, body: string, contentType = 'application/json'): Promise<{ status: number; body: any }> {
  const res = await fetch(stack.base + path, { method: 'POST', headers: { 'content-type': contentType }, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** 2xx, or 4xx with {error: {code, message, details}}. */
function expectHandled(res: { status: number; body: any }, input: string): void {
  const ok = res.status >= 200 && res.status < 300;
  const clientError = res.status >= 400 && res.status < 500 && typeof res.body?.error?.code === 'string'
    && typeof res.body.error.message === 'string' && typeof res.body.error.details === 'object';
  expect(ok || clientError, `HTTP ${res.status} ${JSON.stringify(res.body)} for ${input.slice(0, 300)}`).toBe(true);
}

/** Values a hostile or careless client sends. */
const nasty = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.double(),
  fc.integer(),
  fc.constantFrom(0, -1, 1e308, -1e308, 5e-324, 2 ** 53, 1e9, 65536, 65537, '', 'NaN', null, [], {}, true),
  fc.string(),
);

/** A valid spec with one field replaced (or removed) at a random path. */
const mutatedSpec = fc.record({
  path: fc.constantFrom(
    ['dataset'], ['dataset', 'id'], ['dataset', 'size'], ['dataset', 'noise'], ['dataset', 'validationSplit'], ['dataset', 'limit'],
    ['model'], ['model', 'hidden'], ['model', 'hidden', '0'], ['model', 'layers'], ['model', 'batchNorm'], ['model', 'dropout'],
    ['model', 'activation'], ['model', 'init'], ['batchNorm', 'momentum'], ['batchNorm', 'epsilon'], ['batchNorm', 'renorm'],
    ['training', 'epochs'], ['training', 'batchSize'], ['training', 'seed'], ['training', 'optimizer'],
    ['training', 'optimizer', 'learningRate'], ['training', 'schedule'], ['training', 'earlyStopping'], ['name'], ['extra'],
  ),
  value: fc.option(nasty, { nil: undefined }),
}).map(({ path, value }) => {
  const spec: any = { dataset: { id: 'spirals', size: 300 }, model: { hidden: [16] }, training: { epochs: 2, optimizer: { type: 'sgd', learningRate: 0.1 } }, batchNorm: {} };
  let node = spec;
  for (const key of path.slice(0, -1)) node = node[key] ??= {};
  if (value === undefined) delete node[path.at(-1)!];
  else node[path.at(-1)!] = value;
  return JSON.stringify(spec);
});

/** Raw text: broken JSON, numbers JSON.parse turns into Infinity, deep nesting. */
const rawJson = fc.oneof(
  fc.string(),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.constantFrom('1e999', '-1e999', '[1e999]', '{"a":1e400}', '{', '"', 'nul', '\u0000', '{"__proto__":{}}', '{"constructor":{"prototype":{}}}'),
  fc.integer({ min: 1, max: 5000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
);

describe('POST /v1/jobs', () => {
  it('answers every mutated spec with 202 or a 4xx code', async () => {
    await fc.assert(fc.asyncProperty(mutatedSpec, async (body) => expectHandled(await post('/jobs', body), body)), { numRuns: RUNS });
  });

  it('answers arbitrary bodies with 202 or a 4xx code', async () => {
    await fc.assert(fc.asyncProperty(rawJson, async (body) => expectHandled(await post('/jobs', body), body)), { numRuns: RUNS });
  });
});

describe('POST /v1/models/:id/predict', () => {
  const instances = fc.array(fc.array(fc.oneof(fc.double(), fc.integer(), nasty), { maxLength: 4 }), { maxLength: 8 });
  it('answers every instances array with 200 or a 4xx code', async () => {
    await fc.assert(fc.asyncProperty(instances, async (rows) => {
      const body = JSON.stringify({ instances: rows });
      expectHandled(await post(`/models/${modelId}/predict`, body), body);
    }), { numRuns: RUNS });
  });

  it('answers arbitrary bodies with 200 or a 4xx code', async () => {
    await fc.assert(fc.asyncProperty(rawJson, async (body) => expectHandled(await post(`/models/${modelId}/predict`, body), body)), { numRuns: RUNS });
  });
});

describe('POST /v1/datasets', () => {
  const field = fc.oneof(
    fc.double({ noNaN: true }).map(String),
    fc.integer().map(String),
    fc.constantFrom('', 'NaN', 'Infinity', '-0', '1e999', '0x10', ' 1 ', '"1,5"', '"a ""b"""', '"unterminated', 'é', 'a'.repeat(300)),
    fc.string({ maxLength: 8 }),
  );
  const csv = fc.record({
    header: fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('x', 'y', 'label')), { maxLength: 70 }),
    rows: fc.array(fc.array(field, { maxLength: 8 }), { maxLength: 30 }),
    eol: fc.constantFrom('\n', '\r\n', '\r'),
    label: fc.option(fc.oneof(fc.string({ maxLength: 4 }), fc.nat(100).map(String)), { nil: undefined }),
  }).map(({ header, rows, eol, label }) => ({
    text: [header, ...rows].map((r) => r.join(',')).join(eol),
    query: label === undefined ? '' : `?label=${encodeURIComponent(label)}`,
  }));

  it('answers every CSV with 201 or a 4xx code', async () => {
    await fc.assert(fc.asyncProperty(csv, async ({ text, query }) => {
      expectHandled(await post(`/datasets${query}`, text, 'text/csv'), query + '\n' + text);
    }), { numRuns: RUNS });
  });
});

describe('hostile bodies', () => {
  it('refuses JSON nested past MAX_JSON_DEPTH, naming the limit', async () => {
    const res = await post('/jobs', '['.repeat(100_000) + ']'.repeat(100_000));
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'JSON_TOO_DEEP', details: { depth: 100_000, limit: 32, setting: 'MAX_JSON_DEPTH' } });
  });

  it('refuses numbers that are not finite', async () => {
    const res = await post('/jobs', '{"dataset":{"id":"spirals","noise":1e999}}');
    expect(res.status).toBe(400);
    expect(res.body.error.details.issues[0].path).toBe('/dataset/noise');
    const predict = await post(`/models/${modelId}/predict`, '{"instances":[[1e999, 0]]}');
    expect(predict.status).toBe(400);
    expect(predict.body.error.details.issues[0].path).toBe('/instances/0/0');
  });

  it('refuses huge layers, naming the field and the limit', async () => {
    const res = await post('/jobs', JSON.stringify({ dataset: { id: 'spirals' }, model: { hidden: [65536, 65536] } }));
    expect(res.status).toBe(400);
    expect(res.body.error.details.issues[0]).toMatchObject({ path: '/model/hidden/0', limit: 4096, setting: 'MAX_UNITS' });
  });

  it('refuses a row with the wrong feature count', async () => {
    const res = await post(`/models/${modelId}/predict`, '{"instances":[[1, 2, 3]]}');
    expect(res.body.error).toMatchObject({ code: 'WRONG_FEATURE_COUNT', details: { path: '/instances/0', expected: 2, actual: 3 } });
  });

  it('refuses a CSV that lies about its columns, naming the line', async () => {
    const res = await post('/datasets', 'a,b,label\n1,2,x\n3,4\n', 'text/csv');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'CSV_INVALID', details: { line: 3 } });
  });

  it('refuses a CSV with more features than DATASET_MAX_FEATURES', async () => {
    const header = [...Array.from({ length: 65 }, (_, i) => `f${i}`), 'label'].join(',');
    const res = await post('/datasets', `${header}\n`, 'text/csv');
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: 'CSV_TOO_LARGE', details: { features: 65, limit: 64 } });
  });

  it('refuses bodies over the limit with 413, naming the setting', async () => {
    const json = await post('/jobs', JSON.stringify({ name: 'x'.repeat(stack.config.bodyLimitBytes) }));
    expect(json.status).toBe(413);
    expect(json.body.error.details).toEqual({ limit: stack.config.bodyLimitBytes, setting: 'BODY_LIMIT_BYTES' });
    const csv = await post('/datasets', 'a,b\n'.repeat(20_000), 'text/csv');
    expect(csv.status).toBe(413);
    expect(csv.body.error.details).toEqual({ limit: 64 * 1024, setting: 'DATASET_MAX_BYTES' });
  });

  it('is still up', async () => {
    expect((await fetch(`${stack.base}/healthz`)).status).toBe(200);
  });
});

/**
 * Every route, with fuzzed ids, query strings, headers and bodies, as tenant
 * a while tenant b has a job, a model and a dataset of its own: never a 5xx,
 * never a stack trace, every 2xx JSON answer valid against the route's
 * response schema, and never anything of tenant b's.
 */
describe('every route, headers and query strings', () => {
  const KEY_A = 'fuzz-a-key-0123456789abcdef';
  const KEY_B = 'fuzz-b-key-0123456789abcdef';
  let multi: Stack;
  type Kind = 'job' | 'model' | 'ds' | 'exp';
  const own: Record<Kind, string> = { job: '', model: '', ds: '', exp: '' };
  const theirs: Record<Kind, string> = { job: '', model: '', ds: '', exp: '' };
  const EXPERIMENT = { base: { dataset: { id: 'moons', size: 200 }, training: { epochs: 1 } }, grid: { 'model.batchNorm': ['none', 'before'] }, seeds: [1] };

  beforeAll(async () => {
    multi = await startStack('fuzz-routes', {
      config: {
        apiKeys: [{ key: KEY_A, tenant: 'tenant-a' }, { key: KEY_B, tenant: 'tenant-b' }],
        tenantMaxActiveJobs: 1_000_000, rateLimitMax: 0, authFailMax: 0, datasetMaxBytes: 64 * 1024,
      },
    });
    const spec = resolveSpec(TINY_SPEC);
    const result = await train(spec, await loadBuiltinDataset(spec.dataset, spec.training.seed));
    for (const [key, tenant, ids, n] of [[KEY_A, 'tenant-a', own, 2], [KEY_B, 'tenant-b', theirs, 3]] as const) {
      const job = await fetch(`${multi.base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(TINY_SPEC) });
      ids.job = ((await job.json()) as { id: string }).id;
      ids.model = `job_${'0'.repeat(20)}${n}`;
      await multi.app.services.models.save(tenant, ids.model, result.artifact);
      const ds = await fetch(`${multi.base}/datasets?name=${tenant}`, { method: 'POST', headers: { 'content-type': 'text/csv', authorization: `Bearer ${key}` }, body: 'a,b,label\n1,2,x\n3,4,y\n' });
      ids.ds = ((await ds.json()) as { id: string }).id;
      const exp = await fetch(`${multi.base}/experiments`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(EXPERIMENT) });
      ids.exp = ((await exp.json()) as { id: string }).id;
    }
  });
  afterAll(async () => multi?.close());

  const schemas = {
    submit: SubmitResponse, job: Job, jobs: JobList, metrics: MetricsResponse, models: ModelList, model: ModelDetail,
    batchnorm: BatchNormResponse, predict: PredictResponse, datasets: DatasetList, dataset: DatasetInfo, upload: UploadResponse,
    bnHistory: BatchNormHistory, experimentSubmit: SubmitExperimentResponse, experiments: ExperimentList, experiment: Experiment,
    templates: TemplateList, experimentMetrics: ExperimentMetrics,
  };
  if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT/.test(v) && !Number.isNaN(Date.parse(v)));
  const checkers = Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, TypeCompiler.Compile(s as TSchema, [JobSpecSchema, ErrorResponse, ExperimentSpecSchema, TemplateRequestSchema, Summary])]));
  const errorChecker = TypeCompiler.Compile(ErrorResponse);

  type Route = { method: string; path: (id: string) => string; kind: Kind | null; ok?: keyof typeof schemas; body?: 'spec' | 'predict' | 'csv' | 'experiment' };
  const routes: Route[] = [
    { method: 'POST', path: () => '/jobs', kind: null, ok: 'submit', body: 'spec' },
    { method: 'GET', path: () => '/jobs', kind: null, ok: 'jobs' },
    { method: 'GET', path: (id) => `/jobs/${id}`, kind: 'job', ok: 'job' },
    { method: 'DELETE', path: (id) => `/jobs/${id}`, kind: 'job', ok: 'job' },
    { method: 'GET', path: (id) => `/jobs/${id}/events`, kind: 'job' },
    { method: 'GET', path: (id) => `/jobs/${id}/metrics`, kind: 'job', ok: 'metrics' },
    { method: 'GET', path: (id) => `/jobs/${id}/checkpoint`, kind: 'job' },
    { method: 'GET', path: () => '/models', kind: null, ok: 'models' },
    { method: 'GET', path: (id) => `/models/${id}`, kind: 'model', ok: 'model' },
    { method: 'GET', path: (id) => `/models/${id}/batchnorm`, kind: 'model', ok: 'batchnorm' },
    { method: 'GET', path: (id) => `/models/${id}/weights`, kind: 'model' },
    { method: 'POST', path: (id) => `/models/${id}/predict`, kind: 'model', ok: 'predict', body: 'predict' },
    { method: 'DELETE', path: (id) => `/models/${id}`, kind: 'model' },
    { method: 'POST', path: () => '/datasets', kind: null, ok: 'upload', body: 'csv' },
    { method: 'GET', path: () => '/datasets', kind: null, ok: 'datasets' },
    { method: 'GET', path: (id) => `/datasets/${id}`, kind: 'ds', ok: 'dataset' },
    { method: 'DELETE', path: (id) => `/datasets/${id}`, kind: 'ds' },
    { method: 'GET', path: (id) => `/jobs/${id}/batchnorm`, kind: 'job', ok: 'bnHistory' },
    { method: 'POST', path: () => '/experiments', kind: null, ok: 'experimentSubmit', body: 'experiment' },
    { method: 'GET', path: () => '/experiments', kind: null, ok: 'experiments' },
    { method: 'GET', path: () => '/experiments/templates', kind: null, ok: 'templates' },
    { method: 'GET', path: (id) => `/experiments/${id}`, kind: 'exp', ok: 'experiment' },
    { method: 'DELETE', path: (id) => `/experiments/${id}`, kind: 'exp', ok: 'experiment' },
    { method: 'GET', path: (id) => `/experiments/${id}/events`, kind: 'exp' },
    { method: 'GET', path: (id) => `/experiments/${id}/metrics`, kind: 'exp', ok: 'experimentMetrics' },
    { method: 'GET', path: () => '/healthz', kind: null },
    { method: 'GET', path: () => '/readyz', kind: null },
  ];

  const idFor = (kind: Kind | null) => fc.oneof(
    fc.constant('own'), fc.constant('theirs'),
    fc.constantFrom(`job_${'z'.repeat(21)}`, 'ds_000000000000000000000', '..%2F..', '%00', 'spirals', 'fashion-mnist', `job_${'0'.repeat(21)}`),
    fc.string({ maxLength: 30 }).map((s) => encodeURIComponent(s) || 'x'),
  ).map((choice) => (kind === null ? '' : choice === 'own' ? own[kind] : choice === 'theirs' ? theirs[kind] : choice));

  const query = fc.dictionary(
    fc.oneof(fc.constantFrom('status', 'limit', 'cursor', 'format', 'lastEventId', 'name', 'label', '__proto__', 'constructor'), fc.string({ maxLength: 8 })),
    fc.oneof(fc.constantFrom('1', '0', '-1', '101', '1e9', 'csv', 'json', 'queued', 'failed', '99999999999999999999-0', '1-1', own.ds, theirs.job), fc.string({ maxLength: 12 })),
    { maxKeys: 3 },
  ).map((q) => Object.entries(q).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'));

  const headers = fc.record({
    'content-type': fc.constantFrom(undefined, 'application/json', 'text/csv', 'text/plain', 'application/json; charset=latin1', 'multipart/form-data', 'application/x-www-form-urlencoded', ''),
    'content-encoding': fc.constantFrom(undefined, undefined, 'gzip', 'br', 'identity', 'x-unknown'),
    'last-event-id': fc.oneof(fc.constant(undefined), fc.constantFrom('0-0', '1-1', '99999999999999999999-0', '-1', 'abc', '18446744073709551615-18446744073709551615')),
    accept: fc.constantFrom(undefined, 'text/event-stream', 'text/csv', '*/*', 'application/xml'),
    authorization: fc.constantFrom(`Bearer ${KEY_A}`, `Bearer ${KEY_A}`, `Bearer ${KEY_A}`, `bearer  ${KEY_A} `, 'Bearer wrong-key-0123456789', 'Basic abc', ''),
  }, { requiredKeys: [] });

  const body = (kind: Route['body']) => fc.oneof(
    kind === 'spec' ? mutatedSpec : kind === 'experiment' ? mutatedSpec.map((spec) => JSON.stringify({ base: JSON.parse(spec), grid: { 'model.batchNorm': ['none', 'before'] }, seeds: [1] })) : kind === 'predict' ? fc.array(fc.array(fc.oneof(fc.double(), nasty), { maxLength: 3 }), { maxLength: 4 }).map((rows) => JSON.stringify({ instances: rows })) : kind === 'csv' ? fc.constantFrom('a,b,label\n1,2,x\n3,4,y\n', 'a,label\n1\n', '') : fc.constant(undefined),
    rawJson,
    fc.constant(undefined),
  );

  const request = fc.integer({ min: 0, max: routes.length - 1 }).chain((r) => fc.record({
    route: fc.constant(routes[r]!), id: idFor(routes[r]!.kind), query, headers, body: body(routes[r]!.body),
  }));

  const STACK_TRACE = /\bat [\w.<>]+ \(|\.(?:js|ts):\d+:\d+|node_modules|\bError: /;

  it('never answers 5xx, a stack trace or another tenant\'s data', async () => {
    await fc.assert(fc.asyncProperty(request, async ({ route, id, query: q, headers: h, body: b }) => {
      const path = route.path(id) + (q ? `?${q}` : '');
      const sent = Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 15_000);
      let status = 0;
      let text = '';
      let type = '';
      try {
        const res = await fetch(multi.base + path, {
          method: route.method, headers: sent, signal: controller.signal,
          body: route.method === 'GET' || route.method === 'DELETE' ? undefined : b,
        });
        status = res.status;
        type = res.headers.get('content-type') ?? '';
        if (type.startsWith('text/event-stream')) {
          // A live stream: what it sent first is enough.
          const reader = res.body!.getReader();
          const first = await Promise.race([reader.read(), new Promise<{ value?: undefined }>((r) => setTimeout(() => r({}), 200))]);
          text = first.value ? new TextDecoder().decode(first.value) : '';
          controller.abort();
        } else {
          text = type.includes('octet-stream') ? '' : await res.text();
        }
      } catch (err) {
        if (!controller.signal.aborted) throw err;
      } finally {
        clearTimeout(timer);
      }
      const what = `${route.method} ${path} ${JSON.stringify(sent)} ${String(b).slice(0, 200)} → ${status} ${text.slice(0, 300)}`;
      expect(status, what).toBeGreaterThan(0);
      expect(status, what).toBeLessThan(500);
      expect(STACK_TRACE.test(text), what).toBe(false);
      for (const theirId of Object.values(theirs)) {
        if (!path.includes(theirId)) expect(text.includes(theirId), what).toBe(false);
      }
      expect(text.includes('tenant-b'), what).toBe(false);
      if (route.kind !== null && id === theirs[route.kind]) expect(status, what).not.toBeLessThan(300);
      if (status >= 400) {
        expect(errorChecker.Check(JSON.parse(text)), what).toBe(true);
      } else if (route.ok && type.includes('application/json') && status !== 204) {
        const checker = checkers[route.ok]!;
        const parsed = JSON.parse(text);
        expect(checker.Check(parsed), `${what}\n${[...checker.Errors(parsed)].slice(0, 3).map((e) => `${e.path} ${e.message}`).join('; ')}`).toBe(true);
      }
    }), { numRuns: 400 });
  }, 240_000);
});
