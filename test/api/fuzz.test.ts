/**
 * Property-based fuzzing (fast-check) of the bodies of POST /v1/jobs,
 * POST /v1/models/:id/predict and POST /v1/datasets: every answer is 2xx, or
 * 4xx with an error code, never a 5xx; the server stays up. Then the hostile
 * bodies the issue names, one by one.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSpec } from '../../src/core/spec.js';
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
