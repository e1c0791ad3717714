/**
 * Training cost is guarded: at submit the peak memory and the training time
 * are estimated from the layers, and a job beyond MAX_JOB_MEMORY_BYTES or
 * MAX_JOB_SECONDS is a 400 LIMIT_EXCEEDED with the estimate; a running job
 * that passes training.maxSeconds ends TIMEOUT with its checkpoint kept.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fashionMnistAvailable } from '../../src/datasets/fashion-mnist.js';
import { api, startStack, submit, waitFor, type Stack } from './helpers.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('limits', { worker: true, config: { rateLimitMax: 0 } });
});
afterAll(async () => stack?.close());

const limitIssue = async (spec: unknown, setting: string) => {
  const res = await api(stack.base, 'POST', '/jobs', spec);
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error.code).toBe('LIMIT_EXCEEDED');
  const issue = res.body.error.details.issues.find((i: any) => i.setting === setting);
  expect(issue, JSON.stringify(res.body.error)).toBeDefined();
  return issue;
};

it('refuses a job whose estimated training time is over MAX_JOB_SECONDS, with the estimate', async () => {
  const issue = await limitIssue({
    dataset: { id: 'spirals', size: 200_000 }, model: { hidden: [2200, 2200] }, training: { epochs: 1000 },
  }, 'MAX_JOB_SECONDS');
  expect(issue).toMatchObject({ path: '/training/epochs', limit: 86_400 });
  expect(issue.estimate.seconds).toBeGreaterThan(86_400);
  // The same network for a few epochs is fine.
  expect((await api(stack.base, 'POST', '/jobs', { dataset: { id: 'spirals', size: 2000 }, model: { hidden: [64] }, training: { epochs: 2 } })).status).toBe(202);
});

it.skipIf(!fashionMnistAvailable() && process.env.CI !== 'true')('refuses wide convolutions at large batches over MAX_JOB_MEMORY_BYTES (needs apt-get install dataset-fashion-mnist)', async () => {
  const conv = (filters: number, batchSize: number) => ({
    dataset: { id: 'fashion-mnist' }, model: { layers: [{ type: 'conv2d', filters, kernelSize: 3, padding: 'same' }, { type: 'relu' }, { type: 'globalavgpool' }] },
    training: { epochs: 1, batchSize },
  });
  const big = await limitIssue(conv(256, 512), 'MAX_JOB_MEMORY_BYTES');
  expect(big.estimate.memoryBytes).toBeGreaterThan(1024 ** 3);
  expect((await limitIssue(conv(4096, 8192), 'MAX_JOB_MEMORY_BYTES')).estimate.memoryBytes).toBeGreaterThan(100 * 1024 ** 3);
  const small = await api(stack.base, 'POST', '/jobs', conv(16, 64));
  expect(small.status, JSON.stringify(small.body)).toBe(202);
  await api(stack.base, 'DELETE', `/jobs/${small.body.id}`);
});

it('ends a job that passes training.maxSeconds with TIMEOUT and keeps its checkpoint', async () => {
  const id = await submit(stack.base, {
    dataset: { id: 'spirals', size: 20_000 }, model: { hidden: [64, 64] }, training: { epochs: 200, batchSize: 16, maxSeconds: 1 },
  });
  const job = await waitFor(stack.base, id, (j) => j.status === 'failed' || j.status === 'succeeded', 60_000);
  expect(job.status).toBe('failed');
  expect(job.error).toMatchObject({ code: 'TIMEOUT', details: { maxSeconds: 1 } });
  expect(job.error.details.checkpoint).toMatchObject({ epoch: job.error.details.epoch, step: job.error.details.step });
  expect((await fetch(`${stack.base}/jobs/${id}/checkpoint`)).status).toBe(200);
}, 90_000);
