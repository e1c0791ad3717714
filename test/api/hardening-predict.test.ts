/**
 * Predict never answers 500 and never stalls the API: non-finite
 * probabilities are a 422, a request's work and answer size are bounded
 * (PREDICT_MAX_WORK, PREDICT_MAX_OUTPUT_VALUES), uploads have at most
 * MAX_CLASSES classes, and health checks stay fast while large predictions run.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveSpec } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import { loadBuiltinDataset, parseCsvDataset } from '../../src/datasets/index.js';
import { OPEN_TENANT } from '../../src/server/plugins/auth.js';
import { api, startStack, type Stack } from './helpers.js';
import { healthLatency } from './latency.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('predict', { config: { rateLimitMax: 0, datasetMaxRows: 20_000 } });
});
afterAll(async () => stack?.close());

async function storeModel(id: string, spec: unknown, dataset?: Parameters<typeof train>[1]): Promise<void> {
  const resolved = resolveSpec(spec);
  const result = await train(resolved, dataset ?? await loadBuiltinDataset(resolved.dataset, resolved.training.seed));
  await stack.app.services.models.save(OPEN_TENANT, id, result.artifact);
}

it('answers 422 PREDICTION_NOT_FINITE when the probabilities overflow', async () => {
  const id = `job_${'0'.repeat(20)}a`;
  await storeModel(id, { dataset: { id: 'moons', size: 300 }, model: { hidden: [64, 64], batchNorm: 'before' }, training: { epochs: 2 } });
  const res = await api(stack.base, 'POST', `/models/${id}/predict`, { instances: [[0.1, 0.2], [0, 3e38]] });
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  expect(res.body.error).toMatchObject({ code: 'PREDICTION_NOT_FINITE', details: { path: '/instances/1' } });
  expect((await api(stack.base, 'POST', `/models/${id}/predict`, { instances: [[0.1, 0.2]] })).status).toBe(200);
});

it('refuses a CSV with more than MAX_CLASSES labels', async () => {
  const rows = Array.from({ length: 10_000 }, (_, i) => `${i % 7},${i / 3},c${i}`);
  const res = await fetch(`${stack.base}/datasets`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body: `a,b,label\n${rows.join('\n')}\n` });
  const body = await res.json() as any;
  expect(res.status).toBe(413);
  expect(body.error).toMatchObject({ code: 'CSV_TOO_LARGE', details: { classes: 10_000, limit: 1000, setting: 'MAX_CLASSES' } });
});

it('bounds the answer of one request: rows × classes over PREDICT_MAX_OUTPUT_VALUES is a 400 naming the rows allowed', async () => {
  const rows = Array.from({ length: 3000 }, (_, i) => `${(i % 1000) / 100},${i % 13},k${i % 1000}`);
  const dataset = parseCsvDataset(`a,b,label\n${rows.join('\n')}\n`, { id: 'ds_many', name: 'many', maxClasses: 1000 });
  const id = `job_${'0'.repeat(20)}b`;
  await storeModel(id, { dataset: { id: 'ds_many' }, model: { hidden: [16] }, training: { epochs: 1 } }, dataset);
  const instances = (n: number) => Array.from({ length: n }, (_, i) => [i / 100, i % 13]);
  const big = await api(stack.base, 'POST', `/models/${id}/predict`, { instances: instances(1000) });
  expect(big.status).toBe(400);
  expect(big.body.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { setting: 'PREDICT_MAX_OUTPUT_VALUES', limit: 100_000, maxRows: 100 } });
  const ok = await api(stack.base, 'POST', `/models/${id}/predict`, { instances: instances(100) });
  expect(ok.status).toBe(200);
  expect(ok.body.predictions[0].probabilities).toHaveLength(1000);
}, 60_000);

it('bounds the work of one request: rows × multiply-adds over PREDICT_MAX_WORK is a 400 naming the rows allowed', async () => {
  const id = `job_${'0'.repeat(20)}c`;
  // 2 + 2 × 1100² + 1100·2 ≈ 2.42M multiply-adds per row: 1000 rows are over the 2e9 of PREDICT_MAX_WORK.
  await storeModel(id, { dataset: { id: 'spirals', size: 300 }, model: { hidden: [1100, 1100, 1100] }, training: { epochs: 1 } });
  const instances = (n: number) => Array.from({ length: n }, (_, i) => [Math.sin(i), Math.cos(i)]);
  const over = await api(stack.base, 'POST', `/models/${id}/predict`, { instances: instances(1000) });
  expect(over.status).toBe(400);
  expect(over.body.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { setting: 'PREDICT_MAX_WORK', maxRows: 824 } });
  expect((await api(stack.base, 'POST', `/models/${id}/predict`, { instances: instances(824) })).status).toBe(200);
}, 60_000);

it('keeps health checks fast while 1000-row predictions run', async () => {
  const id = `job_${'0'.repeat(20)}d`;
  await storeModel(id, { dataset: { id: 'spirals', size: 300 }, model: { hidden: [900, 900, 900] }, training: { epochs: 1 } });
  const instances = Array.from({ length: 1000 }, (_, i) => [Math.sin(i), Math.cos(i)]);
  const latency = await healthLatency(stack.base, async () => {
    for (let i = 0; i < 3; i++) {
      const res = await api(stack.base, 'POST', `/models/${id}/predict`, { instances });
      expect(res.status).toBe(200);
      expect(res.body.predictions).toHaveLength(1000);
    }
  });
  expect(latency.samples).toBeGreaterThan(20);
  // The goal is 50 ms (bench/event-loop.mjs measures it with the API in its own process); the bound leaves room for other work on a shared machine and the client running in this process.
  expect(latency.p99, JSON.stringify(latency)).toBeLessThan(150);
  console.log(`health during 1000-row predictions: ${JSON.stringify(latency)}`);
}, 120_000);
