/**
 * A spec that passes validation but whose model overflows at inference: the
 * job fails DIVERGED (its checkpoint kept) instead of "succeeding" with null
 * metrics, and a stored record with non-finite numbers (written by an older
 * build) never makes a read route fail. DELETE /v1/models/:id removes a model.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveSpec } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import { loadBuiltinDataset } from '../../src/datasets/index.js';
import { OPEN_TENANT } from '../../src/server/plugins/auth.js';
import { api, startStack, submit, TINY_SPEC, waitFor, type Stack } from './helpers.js';

const OVERFLOWING = {
  dataset: { id: 'spirals', size: 300, validationSplit: 0.2 },
  model: { hidden: Array(30).fill(256), batchNorm: 'before', init: { normal: { std: 10 } } },
  batchNorm: { momentum: 0.999 },
  training: { epochs: 1, batchSize: 64, optimizer: { type: 'sgd', learningRate: 0.001 } },
};

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('records', { worker: true, config: { checkpointEverySteps: 1 } });
});
afterAll(async () => stack?.close());

async function expectReadsWork(id: string): Promise<void> {
  for (const path of [`/jobs/${id}`, '/jobs', `/jobs/${id}/metrics`, `/jobs/${id}/metrics?format=csv`, '/models', '/jobs?status=failed', '/jobs?status=succeeded']) {
    const res = await api(stack.base, 'GET', path);
    expect(res.status, `${path}: ${JSON.stringify(res.body).slice(0, 300)}`).toBe(200);
  }
}

it('fails a job whose validation loss is not finite with DIVERGED and keeps its checkpoint', async () => {
  const id = await submit(stack.base, OVERFLOWING);
  const job = await waitFor(stack.base, id, (j) => j.status === 'failed' || j.status === 'succeeded', 60_000);
  expect(job.status).toBe('failed');
  expect(job.error.code).toBe('DIVERGED');
  expect(job.error.details).toMatchObject({ epoch: 1, split: 'validation' });
  expect(job.error.details.checkpoint).toMatchObject({ epoch: 1 });
  expect(job.modelId).toBeNull();
  const checkpoint = await fetch(`${stack.base}/jobs/${id}/checkpoint`);
  expect(checkpoint.status).toBe(200);
  expect((await api(stack.base, 'GET', `/models/${id}`)).status).toBe(404);
  await expectReadsWork(id);
}, 90_000);

it('serves records with non-finite numbers from an older build on every read route', async () => {
  const { services } = stack.app;
  const spec = resolveSpec(TINY_SPEC);
  const result = await train(spec, await loadBuiltinDataset(spec.dataset, spec.training.seed));
  const id = `job_${'0'.repeat(20)}7`;
  // What an older build stored for such a job: NaN written as JSON null.
  const nan = { loss: Number.NaN, accuracy: 0.35 };
  result.artifact.manifest.metrics = { ...result.metrics, val: nan, test: nan };
  await services.jobStore.create(OPEN_TENANT, id, spec);
  await services.jobStore.append(id, { type: 'started', attempt: 1, resumedFrom: null });
  const epoch = result.history[0]!;
  await services.jobStore.append(id, { ...epoch, val: nan, test: nan, bn: epoch.bn.map((b) => ({ ...b, batchVar: Number.NaN })) });
  await services.models.save(OPEN_TENANT, id, result.artifact);
  await services.jobStore.append(id, { type: 'completed', modelId: id, metrics: result.artifact.manifest.metrics, epochsToTarget: null });

  await expectReadsWork(id);
  const job = await api(stack.base, 'GET', `/jobs/${id}`);
  expect(job.body.result.metrics.val).toEqual({ loss: null, accuracy: 0.35 });
  const model = await api(stack.base, 'GET', `/models/${id}`);
  expect(model.status).toBe(200);
  expect(model.body.metrics.val.loss).toBeNull();
  expect((await api(stack.base, 'POST', `/models/${id}/predict`, { instances: [[0.1, 0.2]] })).status).toBe(200);
});

it('deletes a model: 204, then 404 on every model route; the job stays', async () => {
  const id = await submit(stack.base, TINY_SPEC);
  await waitFor(stack.base, id, (j) => j.status === 'succeeded', 30_000);
  expect((await api(stack.base, 'POST', `/models/${id}/predict`, { instances: [[0.1, 0.2]] })).status).toBe(200);
  expect((await api(stack.base, 'DELETE', `/models/${id}`)).status).toBe(204);
  for (const [method, path, body] of [['GET', `/models/${id}`], ['GET', `/models/${id}/weights`], ['GET', `/models/${id}/batchnorm`],
    ['POST', `/models/${id}/predict`, { instances: [[0.1, 0.2]] }], ['DELETE', `/models/${id}`]] as const) {
    const res = await api(stack.base, method, path, body);
    expect(res.status, `${method} ${path}`).toBe(404);
    expect(res.body.error.code).toBe('MODEL_NOT_FOUND');
  }
  expect((await api(stack.base, 'GET', '/models')).body.items.map((m: any) => m.id)).not.toContain(id);
  expect((await api(stack.base, 'GET', `/jobs/${id}`)).status).toBe(200);
}, 60_000);
