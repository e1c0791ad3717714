/**
 * GET /metrics: read with the official Prometheus client's parser; Prometheus
 * naming; the counts follow the requests made; a running job's samples/s; the
 * token that protects it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server/app.js';
import { optional } from '../helpers/optional.js';
import { parseExposition, sampleValue, type PromFamily } from '../helpers/prometheus.js';
import { api, readEvents, startStack, submit, testConfig, TINY_SPEC, type Stack } from './helpers.js';

const KEY = 'metrics-key-0123456789abcdef';
const TOKEN = 'scrape-token-0123456789';
const parser = optional('python3-prometheus-client');

let stack: Stack;
let root: string;
let model: string;

const scrape = async (token: string | null = TOKEN) => {
  const res = await fetch(`${root}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
};
const families = async (): Promise<PromFamily[]> => {
  const { status, text } = await scrape();
  expect(status).toBe(200);
  return parseExposition(text);
};

beforeAll(async () => {
  stack = await startStack('metrics', { worker: true, config: { apiKeys: [{ key: KEY, tenant: 't' }], metricsToken: TOKEN, rateLimitMax: 0 } });
  root = stack.base.replace(/\/v1$/, '');
  model = await submit(stack.base, TINY_SPEC, KEY);
  expect((await readEvents(stack.base, model, { key: KEY })).at(-1)!.event).toBe('completed');
}, 60_000);
afterAll(async () => stack.close());

describe.skipIf(parser.skip)(`/metrics content ${parser.tag}`, () => {
  it('parses as the Prometheus text format, with Prometheus names, types and help', async () => {
    const { type, text } = await scrape();
    expect(type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(() => parseExposition(`${text}not a sample line\n`)).toThrow(/did not parse/); // the parser does reject
    const parsed = parseExposition(text);
    expect(parsed.length).toBeGreaterThan(10);
    for (const f of parsed) {
      expect(f.name).toMatch(/^[a-z_][a-z0-9_]*$/);
      expect(f.help.length, f.name).toBeGreaterThan(0);
      if (f.type === 'counter') for (const s of f.samples) expect(s.name, 'counters end in _total').toMatch(/_total$/);
      if (f.name.startsWith('normlab_') && /duration|latency|lag/.test(f.name)) expect(f.name, 'times in seconds').toMatch(/_seconds$/);
    }
    const types = Object.fromEntries(parsed.map((f) => [f.name, f.type]));
    expect(types).toMatchObject({
      normlab_http_requests: 'counter', normlab_http_request_duration_seconds: 'histogram', normlab_predict_duration_seconds: 'histogram',
      normlab_predict_rows: 'counter', normlab_jobs: 'gauge', normlab_training_samples_per_second: 'gauge',
      normlab_worker_threads_busy: 'gauge', normlab_redis_up: 'gauge', nodejs_eventloop_lag_seconds: 'gauge',
    });
  });

  it('counts requests by route template and status, predictions by API with their rows, and Redis as up', async () => {
    const route = '/v1/models/:id/predict';
    const requests = (f: PromFamily[], status: string) => sampleValue(f, 'normlab_http_requests_total', { route, status, method: 'POST' }) ?? 0;
    const rows = (f: PromFamily[], a: string) => sampleValue(f, 'normlab_predict_rows_total', { api: a }) ?? 0;
    const before = await families();
    expect((await api(stack.base, 'POST', `/models/${model}/predict`, { instances: [[0, 1], [1, 0], [2, 2]] }, KEY)).status).toBe(200);
    expect((await api(stack.base, 'POST', `/models/${model}/predict`, { instances: [[0]] }, KEY)).status).toBe(400);
    const infer = { inputs: [{ name: 'input', shape: [2, 2], datatype: 'FP32', data: [0, 1, 1, 0] }] };
    expect((await api(`${root}/v2`, 'POST', `/models/${model}/infer`, infer, KEY)).status).toBe(200);
    const after = await families();
    expect(requests(after, '200') - requests(before, '200')).toBe(1);
    expect(requests(after, '400') - requests(before, '400')).toBe(1);
    expect(rows(after, 'v1') - rows(before, 'v1')).toBe(3);
    expect(rows(after, 'v2') - rows(before, 'v2')).toBe(2);
    const labels = { route, status: '200', method: 'POST' };
    const count = sampleValue(after, 'normlab_http_request_duration_seconds_count', labels)!;
    expect(count).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, 'normlab_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBe(count);
    expect(sampleValue(after, 'normlab_predict_duration_seconds_count', { api: 'v2' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, 'normlab_redis_up')).toBe(1);
    expect(sampleValue(after, 'normlab_jobs', { state: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('shows a running job: its samples/s, a busy worker thread, an active job', async () => {
    const id = await submit(stack.base, { ...TINY_SPEC, dataset: { id: 'spirals', size: 4000 }, training: { epochs: 200, batchSize: 32 } }, KEY);
    await readEvents(stack.base, id, { key: KEY, until: (e) => e.event === 'progress' && e.data.samplesPerSec > 0 });
    let f = await families();
    for (let i = 0; i < 100 && sampleValue(f, 'normlab_training_samples_per_second', { job: id }) === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50));
      f = await families();
    }
    expect(sampleValue(f, 'normlab_training_samples_per_second', { job: id })).toBeGreaterThan(0);
    expect(sampleValue(f, 'normlab_worker_threads_busy')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(f, 'normlab_jobs', { state: 'active' })).toBeGreaterThanOrEqual(1);
    expect((await api(stack.base, 'DELETE', `/jobs/${id}`, undefined, KEY)).status).toBe(202);
    expect((await readEvents(stack.base, id, { key: KEY })).at(-1)!.event).toBe('cancelled');
    expect(sampleValue(await families(), 'normlab_training_samples_per_second', { job: id })).toBeUndefined();
  });
});

describe('/metrics protection', () => {
  it('needs METRICS_TOKEN: no token, a wrong one and a tenant API key get 401', async () => {
    for (const token of [null, `${TOKEN}x`, KEY]) {
      const res = await scrape(token);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.text).error).toMatchObject({ code: 'UNAUTHORIZED', details: { setting: 'METRICS_TOKEN' } });
    }
    expect((await scrape()).text).toMatch(/^normlab_redis_up 1$/m);
  });

  it('without METRICS_TOKEN: open while the API is open, 403 on an API with keys', async () => {
    const open = await buildApp(testConfig('metrics-open'));
    const keyed = await buildApp(testConfig('metrics-keyed', { apiKeys: [{ key: KEY, tenant: 't' }] }));
    try {
      const res = await open.inject({ url: '/metrics' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toMatch(/^# TYPE normlab_redis_up gauge$/m);
      const denied = await keyed.inject({ url: '/metrics', headers: { authorization: `Bearer ${KEY}` } });
      expect(denied.statusCode).toBe(403);
      expect(denied.json().error).toMatchObject({ code: 'METRICS_DISABLED', details: { setting: 'METRICS_TOKEN' } });
    } finally {
      await open.close();
      await keyed.close();
    }
  });
});
