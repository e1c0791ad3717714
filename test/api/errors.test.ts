/**
 * Every route's error answers, with no worker running (queued jobs stay
 * queued): validation with field paths, limits, unknown ids, malformed
 * bodies, cancellation of a queued job.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, readEvents, startStack, submit, TINY_SPEC, type Stack } from './helpers.js';
import { inferThreadsSetting } from '../../src/core/kernels/native.js';

let stack: Stack;
let base: string;

beforeAll(async () => {
  // Fashion-MNIST looks uninstalled to this file's server.
  process.env.FASHION_MNIST_DIR = mkdtempSync(path.join(os.tmpdir(), 'no-fmnist-'));
  stack = await startStack('errors', { config: { maxEpochs: 50, maxParameters: 100_000, sseHeartbeatMs: 100 } });
  base = stack.base;
});
afterAll(async () => stack.close());

function expectError(res: { status: number; body: any }, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String), details: expect.any(Object) } });
  expect(JSON.stringify(res.body)).not.toMatch(/at .*\.(ts|js):\d+/);
}

describe('POST /jobs', () => {
  it('names the field path and the rule of a bad spec', async () => {
    const res = await api(base, 'POST', '/jobs', { ...TINY_SPEC, training: { epochs: 0, batchSize: 'big' } });
    expectError(res, 400, 'INVALID_SPEC');
    const paths = res.body.error.details.issues.map((i: any) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['/training/epochs', '/training/batchSize']));
    expect(res.body.error.message).toMatch(/\/training\/epochs/);
  });

  it('rejects unknown fields', async () => {
    const res = await api(base, 'POST', '/jobs', { ...TINY_SPEC, colour: 'blue' });
    expectError(res, 400, 'INVALID_SPEC');
  });

  it('requires a dataset', async () => {
    const res = await api(base, 'POST', '/jobs', {});
    expectError(res, 400, 'INVALID_SPEC');
    expect(res.body.error.details.issues[0].path).toBe('/dataset');
  });

  it('lists the available datasets for an unknown one', async () => {
    const res = await api(base, 'POST', '/jobs', { dataset: { id: 'mnist-digits' } });
    expectError(res, 400, 'UNKNOWN_DATASET');
    expect(res.body.error.details.available).toEqual(expect.arrayContaining(['spirals', 'moons']));
    expect(res.body.error.details.available).not.toContain('fashion-mnist');
  });

  it('says how to install fashion-mnist when it is missing (422)', async () => {
    const res = await api(base, 'POST', '/jobs', { dataset: { id: 'fashion-mnist' } });
    expectError(res, 422, 'DATASET_UNAVAILABLE');
    expect(res.body.error.message).toMatch(/apt-get install|FASHION_MNIST_DIR/);
  });

  it('names each limit that is exceeded', async () => {
    const res = await api(base, 'POST', '/jobs', { dataset: { id: 'spirals', size: 10_000_000 }, model: { hidden: [5000, 64] }, training: { epochs: 51, batchSize: 9000 } });
    // size is over the schema's own maximum: that is a spec error first.
    expectError(res, 400, 'INVALID_SPEC');
    const limits = await api(base, 'POST', '/jobs', { dataset: { id: 'spirals', size: 300_000 }, model: { hidden: [5000, 64] }, training: { epochs: 51, batchSize: 9000 } });
    expectError(limits, 400, 'LIMIT_EXCEEDED');
    const issues = limits.body.error.details.issues;
    expect(issues.map((i: any) => i.path)).toEqual(['/model/hidden/0', '/model', '/training/epochs', '/training/batchSize', '/dataset/size']);
    expect(issues.find((i: any) => i.path === '/training/epochs')).toMatchObject({ value: 51, limit: 50, setting: 'MAX_EPOCHS' });
    expect(issues.find((i: any) => i.path === '/model')).toMatchObject({ limit: 100_000, setting: 'MAX_PARAMETERS' });
  });

  it('counts layers of an explicit layer list', async () => {
    const layers = Array.from({ length: 40 }, () => ({ type: 'dense', units: 4 }));
    const res = await api(base, 'POST', '/jobs', { dataset: { id: 'spirals' }, model: { layers } });
    expectError(res, 400, 'LIMIT_EXCEEDED');
    expect(res.body.error.details.issues[0]).toMatchObject({ path: '/model/layers', value: 41, limit: 32, setting: 'MAX_LAYERS' });
  });

  it('counts recurrent layers, not their batch norm or dropout', async () => {
    const model = { architecture: 'rnn', hidden: Array.from({ length: 32 }, () => 2), batchNorm: 'sequence', dropout: 0.1 };
    const res = await api(base, 'POST', '/jobs', { dataset: { id: 'sines' }, model });
    expectError(res, 400, 'LIMIT_EXCEEDED');
    expect(res.body.error.details.issues[0]).toMatchObject({ path: '/model/hidden', value: 33, limit: 32, setting: 'MAX_LAYERS' });
  });

  it('answers malformed JSON with 400', async () => {
    expectError(await api(base, 'POST', '/jobs', '{"dataset": {'), 400, 'MALFORMED_JSON');
    expectError(await api(base, 'POST', '/jobs', '{"__proto__": {"x": 1}}'), 400, 'FORBIDDEN_JSON_KEY');
    expectError(await api(base, 'POST', '/jobs', ''), 400, 'MALFORMED_JSON');
  });

  it('answers a body over the limit with 413', async () => {
    const res = await api(base, 'POST', '/jobs', JSON.stringify({ name: 'x'.repeat(stack.config.bodyLimitBytes) }));
    expectError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(res.body.error.details.limit).toBe(stack.config.bodyLimitBytes);
  });

  it('answers another content type with 415', async () => {
    const res = await fetch(`${base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<job/>' });
    expectError({ status: res.status, body: await res.json() }, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('a queued job', () => {
  it('is removed from the queue and ends cancelled when deleted', async () => {
    const id = await submit(base);
    expect((await api(base, 'GET', `/jobs/${id}`)).body.status).toBe('queued');
    const res = await api(base, 'DELETE', `/jobs/${id}`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('cancelled');
    expect((await stack.app.services.queue.getJobState(id))).toBe('unknown');
    const events = await readEvents(base, id);
    expect(events.map((e) => e.event)).toEqual(['queued', 'cancelled']);
    expectError(await api(base, 'DELETE', `/jobs/${id}`), 409, 'JOB_FINISHED');
  });
});

it('keeps a waiting event stream alive with heartbeat comments', async () => {
  const id = await submit(base);
  const controller = new AbortController();
  const res = await fetch(`${base}/jobs/${id}/events`, { signal: controller.signal });
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  let text = '';
  const reader = res.body!.getReader();
  while (!text.includes(': ping')) text += new TextDecoder().decode((await reader.read()).value);
  controller.abort();
  expect(text).toMatch(/^retry: \d+/);
  expect(text).toContain('event: queued');
});

describe('unknown ids and bad parameters', () => {
  const missing = `job_${'0'.repeat(21)}`;

  it.each([
    ['GET', `/jobs/${missing}`, 'JOB_NOT_FOUND'],
    ['GET', `/jobs/${missing}/events`, 'JOB_NOT_FOUND'],
    ['GET', `/jobs/${missing}/metrics`, 'JOB_NOT_FOUND'],
    ['GET', `/jobs/${missing}/checkpoint`, 'JOB_NOT_FOUND'],
    ['DELETE', `/jobs/${missing}`, 'JOB_NOT_FOUND'],
    ['GET', `/models/${missing}`, 'MODEL_NOT_FOUND'],
    ['GET', `/models/${missing}/batchnorm`, 'MODEL_NOT_FOUND'],
    ['GET', `/models/${missing}/weights`, 'MODEL_NOT_FOUND'],
    ['GET', `/datasets/ds_${'0'.repeat(21)}`, 'DATASET_NOT_FOUND'],
    ['DELETE', `/datasets/ds_${'0'.repeat(21)}`, 'DATASET_NOT_FOUND'],
    ['GET', '/nothing-here', 'NOT_FOUND'],
  ])('%s %s → 404 %s', async (method, url, code) => {
    expectError(await api(base, method, url), 404, code);
  });

  it('404s predict on an unknown model', async () => {
    expectError(await api(base, 'POST', `/models/${missing}/predict`, { instances: [[1, 2]] }), 404, 'MODEL_NOT_FOUND');
  });

  it.each([
    ['GET', '/jobs/not-an-id'],
    ['GET', '/jobs?limit=0'],
    ['GET', '/jobs?limit=abc'],
    ['GET', '/jobs?status=done'],
    ['GET', '/jobs?cursor=nope'],
    ['GET', '/models?limit=1000'],
    ['GET', `/jobs/${missing}/metrics?format=xml`],
    ['GET', '/datasets/bad%20id'],
  ])('%s %s → 400 naming the parameter', async (method, url) => {
    const res = await api(base, method, url);
    expectError(res, 400, 'INVALID_REQUEST');
    expect(res.body.error.details.issues[0].path).toMatch(/^\/\w+/);
  });

  it('rejects a malformed Last-Event-ID', async () => {
    const id = await submit(base);
    const res = await fetch(`${base}/jobs/${id}/events`, { headers: { 'last-event-id': 'yesterday' } });
    expect(res.status).toBe(400);
    expect((await res.json()).error.details.in).toBe('headers');
  });

  it('refuses to delete a built-in dataset', async () => {
    expectError(await api(base, 'DELETE', '/datasets/spirals'), 400, 'BUILTIN_DATASET');
  });

  it('rejects predict bodies that are not {instances}', async () => {
    const res = await api(base, 'POST', `/models/${missing}/predict`, { rows: [[1]] });
    expectError(res, 400, 'INVALID_REQUEST');
  });
});

describe('health', () => {
  it('is alive and ready', async () => {
    expect((await api(base, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await api(base, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', redis: 'ok', kernels: expect.stringMatching(/^(native|portable)$/),
      cpu: expect.stringMatching(/^(avx512|avx2|baseline|portable)$/), inferThreads: inferThreadsSetting() });
  });

  it('serves the OpenAPI document and the docs', async () => {
    const doc = await api(base, 'GET', '/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toContain('/v1/jobs/{id}/events');
    const docs = await fetch(`${base}/docs`);
    expect(docs.status).toBe(200);
  });
});
