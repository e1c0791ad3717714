/**
 * API keys and tenants: every route needs a key (but health and the docs);
 * another tenant's job, model or dataset answers 404 on every route and never
 * shows in a list; per-key rate limits; per-tenant limits on active jobs and
 * stored datasets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsvDataset } from '../../src/datasets/index.js';
import { storedSize } from '../../src/store/datasets.js';
import { api, readEvents, startStack, submit, TINY_SPEC, type Stack } from './helpers.js';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef00';
const CAROL = 'carol-key-0123456789abcdef';
const KEYS = [{ key: ALICE, tenant: 'alice' }, { key: BOB, tenant: 'bob' }, { key: CAROL, tenant: 'carol' }];

let stack: Stack;
let base: string;

const CSV = ['x,y,label', ...Array.from({ length: 40 }, (_, i) => `${i % 7},${i % 3},${i % 2 ? 'a' : 'b'}`)].join('\n');
/** What one upload of CSV takes in storage, as the quota counts it. */
const STORED = storedSize(parseCsvDataset(CSV, { id: `ds_${'0'.repeat(21)}`, name: 'uploaded dataset' }));
const upload = (key: string, body = CSV) => fetch(`${base}/datasets`, {
  method: 'POST', headers: { 'content-type': 'text/csv', authorization: `Bearer ${key}` }, body,
}).then(async (r) => ({ status: r.status, body: await r.json() }));

beforeAll(async () => {
  stack = await startStack('tenants', {
    worker: true,
    config: { apiKeys: KEYS, tenantMaxActiveJobs: 2, tenantMaxDatasetBytes: 2 * STORED + 10, rateLimitMax: 0 },
  });
  base = stack.base;
});
afterAll(async () => stack.close());

describe('API keys', () => {
  it('answers 401 without a key or with a wrong one, naming the header', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: `Bearer ${ALICE}x` }, { authorization: ALICE }, { authorization: 'Bearer ' }];
    for (const headers of attempts) {
      const res = await fetch(`${base}/jobs`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect((await res.json()).error).toMatchObject({ code: 'UNAUTHORIZED', details: { header: 'authorization' } });
    }
  });

  it('leaves health and the docs open', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/openapi.json`)).status).toBe(200);
    expect((await fetch(`${base}/docs`)).status).toBe(200);
  });
});

describe('isolation', () => {
  let jobId: string;
  let dsId: string;

  beforeAll(async () => {
    const ds = await upload(ALICE);
    expect(ds.status).toBe(201);
    dsId = ds.body.id;
    jobId = await submit(base, { ...TINY_SPEC, dataset: { id: dsId } }, ALICE);
    expect((await readEvents(base, jobId, { key: ALICE })).at(-1)!.event).toBe('completed');
  });

  it('gives the owner everything', async () => {
    expect((await api(base, 'GET', `/jobs/${jobId}`, undefined, ALICE)).body.status).toBe('succeeded');
    expect((await api(base, 'POST', `/models/${jobId}/predict`, { instances: [[1, 2]] }, ALICE)).status).toBe(200);
  });

  it.each([
    ['GET', '/jobs/{job}', 'JOB_NOT_FOUND'],
    ['GET', '/jobs/{job}/events', 'JOB_NOT_FOUND'],
    ['GET', '/jobs/{job}/metrics', 'JOB_NOT_FOUND'],
    ['GET', '/jobs/{job}/checkpoint', 'JOB_NOT_FOUND'],
    ['DELETE', '/jobs/{job}', 'JOB_NOT_FOUND'],
    ['GET', '/models/{job}', 'MODEL_NOT_FOUND'],
    ['GET', '/models/{job}/batchnorm', 'MODEL_NOT_FOUND'],
    ['GET', '/models/{job}/weights', 'MODEL_NOT_FOUND'],
    ['POST', '/models/{job}/predict', 'MODEL_NOT_FOUND'],
    ['GET', '/datasets/{ds}', 'DATASET_NOT_FOUND'],
    ['DELETE', '/datasets/{ds}', 'DATASET_NOT_FOUND'],
  ])('%s %s of another tenant → 404 %s', async (method, route, code) => {
    const path = route.replace('{job}', jobId).replace('{ds}', dsId);
    const body = method === 'POST' ? { instances: [[1, 2]] } : undefined;
    const res = await api(base, method, path, body, BOB);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe(code);
  });

  it('does not train on another tenant\'s dataset', async () => {
    const res = await api(base, 'POST', '/jobs', { ...TINY_SPEC, dataset: { id: dsId } }, BOB);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'UNKNOWN_DATASET', details: { path: '/dataset/id' } });
  });

  it('lists only the tenant\'s own jobs, models and datasets', async () => {
    const own = (key: string, path: string) => api(base, 'GET', path, undefined, key).then((r) => r.body.items.map((i: any) => i.id));
    expect(await own(ALICE, '/jobs')).toContain(jobId);
    expect(await own(ALICE, '/models')).toContain(jobId);
    expect(await own(ALICE, '/datasets')).toContain(dsId);
    expect(await own(BOB, '/jobs')).toEqual([]);
    expect(await own(BOB, '/models')).toEqual([]);
    expect(await own(BOB, '/datasets')).not.toContain(dsId);
  });

  it('left the owner\'s resources untouched', async () => {
    expect((await api(base, 'GET', `/datasets/${dsId}`, undefined, ALICE)).status).toBe(200);
    expect((await api(base, 'GET', `/models/${jobId}`, undefined, ALICE)).status).toBe(200);
    expect((await api(base, 'GET', `/jobs/${jobId}/metrics`, undefined, ALICE)).body.epochs).toHaveLength(3);
  });
});

describe('per-tenant limits', () => {
  it('refuses a job beyond TENANT_MAX_ACTIVE_JOBS until one ends', async () => {
    // Carol's jobs stay queued while two long jobs of Bob's fill the worker's two slots.
    const long = { dataset: { id: 'spirals', size: 20_000 }, model: { hidden: [64] }, training: { epochs: 1000, batchSize: 16 } };
    const bobs = [await submit(base, long, BOB), await submit(base, long, BOB)];
    for (const id of bobs) await readEvents(base, id, { key: BOB, until: (e) => e.event === 'progress' });
    const carols = [await submit(base, TINY_SPEC, CAROL), await submit(base, TINY_SPEC, CAROL)];
    const over = await api(base, 'POST', '/jobs', TINY_SPEC, CAROL);
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({ code: 'TOO_MANY_ACTIVE_JOBS', details: { limit: 2, setting: 'TENANT_MAX_ACTIVE_JOBS' } });
    // Another tenant's count is its own.
    const alices = [await submit(base, TINY_SPEC, ALICE)];
    expect((await api(base, 'DELETE', `/jobs/${carols[0]}`, undefined, CAROL)).status).toBe(200);
    carols[0] = await submit(base, TINY_SPEC, CAROL);
    for (const [key, ids] of [[BOB, bobs], [CAROL, carols], [ALICE, alices]] as const) {
      for (const id of ids) await api(base, 'DELETE', `/jobs/${id}`, undefined, key);
    }
    // Every job has ended before the next test (and the worker's close) starts: nothing trains on.
    for (const [key, ids] of [[BOB, bobs], [CAROL, carols], [ALICE, alices]] as const) {
      for (const id of ids) await readEvents(base, id, { key, until: (e) => ['completed', 'failed', 'cancelled'].includes(e.event) });
    }
  });

  it('refuses an upload beyond TENANT_MAX_DATASET_BYTES until one is deleted', async () => {
    const first = await upload(BOB);
    expect(first.status).toBe(201);
    expect(first.body.bytes).toBe(STORED);
    expect((await upload(BOB)).status).toBe(201);
    const over = await upload(BOB);
    expect(over.status).toBe(413);
    expect(over.body.error).toMatchObject({
      code: 'DATASET_QUOTA_EXCEEDED', details: { bytes: STORED, used: 2 * STORED, limit: 2 * STORED + 10, setting: 'TENANT_MAX_DATASET_BYTES' },
    });
    expect((await api(base, 'DELETE', `/datasets/${first.body.id}`, undefined, BOB)).status).toBe(204);
    expect((await upload(BOB)).status).toBe(201);
  });
});

describe('rate limits', () => {
  let limited: Stack;

  beforeAll(async () => {
    limited = await startStack('tenants-rate', { config: { apiKeys: KEYS, rateLimitMax: 5, rateLimitWindowMs: 60_000 } });
  });
  afterAll(async () => limited.close());

  it('answers 429 with Retry-After past RATE_LIMIT_MAX requests per key, and counts each key apart', async () => {
    for (let i = 0; i < 5; i++) expect((await api(limited.base, 'GET', '/jobs', undefined, ALICE)).status).toBe(200);
    const over = await api(limited.base, 'GET', '/jobs', undefined, ALICE);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(over.body.error).toMatchObject({ code: 'RATE_LIMITED', details: { limit: 5, windowMs: 60_000, setting: 'RATE_LIMIT_MAX' } });
    expect((await api(limited.base, 'GET', '/jobs', undefined, BOB)).status).toBe(200);
    expect((await api(limited.base, 'GET', '/healthz')).status).toBe(200);
  });
});
