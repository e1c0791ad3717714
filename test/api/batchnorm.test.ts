/**
 * Batch-norm diagnostics through the API with a real worker and Redis: the
 * gap in /metrics (JSON and CSV) and in the final metrics, warnings in
 * GET /v1/jobs/:id, the per-channel history at GET /v1/jobs/:id/batchnorm,
 * and spec errors that name the path and the allowed values.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveSpec } from '../../src/core/spec.js';
import { JobStore } from '../../src/store/jobs.js';
import { api, readEvents, startStack, submit, type Stack } from './helpers.js';

let stack: Stack;
let base: string;

beforeAll(async () => {
  stack = await startStack('batchnorm', { worker: true });
  base = stack.base;
});
afterAll(async () => stack.close());

const SPEC = {
  dataset: { id: 'spirals', size: 400 },
  model: { hidden: [16, 12], batchNorm: 'before', dropout: 0.1 },
  batchNorm: { momentum: 0.1 },
  training: { epochs: 3, batchSize: 32, freezeBatchNormAfterEpoch: 2 },
};

it('reports the gap, the warnings and the per-channel history of a job', async () => {
  const submitted = await api(base, 'POST', '/jobs', SPEC);
  expect(submitted.status).toBe(202);
  expect(submitted.body.warnings.map((w: any) => w.code)).toEqual(['BN_WITH_DROPOUT', 'BN_MOMENTUM_CONVENTION']);
  const id: string = submitted.body.id;
  const events = await readEvents(base, id);
  expect(events.at(-1)!.event).toBe('completed');
  const warningEvents = events.filter((e) => e.event === 'warning').map((e) => e.data.code);
  expect(warningEvents).toEqual(expect.arrayContaining(['BN_WITH_DROPOUT', 'BN_MOMENTUM_CONVENTION']));
  // Warnings come before the first epoch.
  expect(events.findIndex((e) => e.data.code === 'BN_WITH_DROPOUT')).toBeLessThan(events.findIndex((e) => e.event === 'epoch'));

  const job = (await api(base, 'GET', `/jobs/${id}`)).body;
  const dropout = job.warnings.find((w: any) => w.code === 'BN_WITH_DROPOUT');
  expect(dropout).toMatchObject({ message: expect.stringContaining('dropout'), details: { dropoutLayers: [3, 7], batchNormLayers: [1, 5] } });
  expect(job.result.metrics.gap).toMatchObject({ split: 'val', frozen: { accuracy: job.result.metrics.val.accuracy } });
  expect(job.result.metrics.gap.frozen.loss).toBeCloseTo(job.result.metrics.val.loss, 5);
  expect(job.links.batchnorm).toBe(`/v1/jobs/${id}/batchnorm`);
  expect(job.metrics).toMatchObject({ epoch: 3, gap: { split: 'val' } });

  const metrics = (await api(base, 'GET', `/jobs/${id}/metrics`)).body;
  for (const e of metrics.epochs) {
    expect(e.gap).toMatchObject({ split: 'val', frozen: { loss: expect.any(Number), accuracy: e.val.accuracy }, batch: { accuracy: expect.any(Number) } });
    expect(e.bn).toHaveLength(2);
  }
  // Frozen after epoch 2: epoch 3 used no batch statistics.
  expect(metrics.epochs[2].bn[0]).toMatchObject({ batchMean: null, batchVar: null, meanDistance: null });
  expect(metrics.epochs[0].bn[0]).toMatchObject({ batchMean: expect.any(Number), batchMeanSpread: expect.any(Number), meanDistance: expect.any(Number) });

  const csv = await (await fetch(`${base}/jobs/${id}/metrics?format=csv`)).text();
  const [header, first] = csv.trim().split('\n').map((l) => l.split(','));
  expect(header).toEqual(expect.arrayContaining(['gap_split', 'gap_frozen_accuracy', 'gap_batch_accuracy', 'gap_accuracy', 'gap_loss']));
  expect(first![header!.indexOf('gap_split')]).toBe('val');
  expect(Number(first![header!.indexOf('gap_accuracy')])).toBeCloseTo(metrics.epochs[0].gap.accuracy, 6);

  const history = (await api(base, 'GET', `/jobs/${id}/batchnorm`)).body;
  expect(history.layers.map((l: any) => [l.layer, l.kind, l.channels])).toEqual([[1, 'batchnorm1d', 16], [5, 'batchnorm1d', 12]]);
  for (const layer of history.layers) {
    expect(layer.epochs.map((e: any) => e.epoch)).toEqual([1, 2, 3]);
    const [e1, , e3] = layer.epochs;
    expect(e1).toMatchObject({ frozen: false });
    expect(e1.batchMean).toHaveLength(layer.channels);
    expect(e1.runningVar).toHaveLength(layer.channels);
    expect(e1.gamma).toHaveLength(layer.channels);
    expect(e3).toMatchObject({ frozen: true, batchMean: null, batchVar: null });
  }
  // The epoch summary is the channel average of the history.
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  expect(metrics.epochs[0].bn[0].batchMean).toBeCloseTo(mean(history.layers[0].epochs[0].batchMean), 4);
});

it('a model without batch norm has no gap, no warnings and an empty history', async () => {
  const id = await submit(base, { dataset: { id: 'spirals', size: 300 }, model: { hidden: [8], batchNorm: 'none', dropout: 0.2 }, training: { epochs: 2 } });
  await readEvents(base, id);
  const job = (await api(base, 'GET', `/jobs/${id}`)).body;
  expect(job).toMatchObject({ status: 'succeeded', warnings: [], result: { metrics: { gap: null } } });
  expect((await api(base, 'GET', `/jobs/${id}/batchnorm`)).body).toEqual({ layers: [] });
  expect((await api(base, 'GET', '/jobs/job_000000000000000000000/batchnorm')).status).toBe(404);
});

it('answers a bad union or nullable field with its path and the allowed values or the rule', async () => {
  const res = await api(base, 'POST', '/jobs', {
    dataset: { id: 'spirals' },
    model: { batchNorm: 'Before', layers: null },
    training: { optimizer: { type: 'sgd', learningRate: 0 } },
  });
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('INVALID_SPEC');
  expect(res.body.error.message).toContain('/model/batchNorm: must be one of none, before, after, input');
  expect(res.body.error.details.issues).toEqual(expect.arrayContaining([
    { path: '/model/batchNorm', message: 'must be one of none, before, after, input, sequence, recurrent', allowed: ['none', 'before', 'after', 'input', 'sequence', 'recurrent'] },
    { path: '/training/optimizer/learningRate', message: 'must be > 0' },
  ]));
  const layer = await api(base, 'POST', '/jobs', { dataset: { id: 'spirals' }, model: { layers: [{ type: 'relu' }, { type: 'dense' }] } });
  expect(layer.body.error.details.issues).toEqual([{ path: '/model/layers/1/units', message: 'is required' }]);
});

it('keeps the per-channel history once per epoch, within BN_HISTORY_MAX_BYTES, and not after the job ended', async () => {
  const { redis, keys } = stack.app.services;
  const store = new JobStore(redis, keys, { ...stack.config, bnHistoryMaxBytes: 1200 });
  const id = `job_${'b'.repeat(21)}`;
  await store.create('default', id, resolveSpec(SPEC));
  const layer = (epoch: number) => [{
    layer: 1, kind: 'batchnorm1d', channels: 40, frozen: false, batchMean: Array(40).fill(epoch), batchVar: Array(40).fill(1),
    runningMean: Array(40).fill(0), runningVar: Array(40).fill(1), gamma: null, beta: null,
  }];
  const entryBytes = JSON.stringify({ epoch: 1, layers: layer(1) }).length;
  expect(Math.floor(1200 / entryBytes)).toBe(2); // room for two epochs
  for (const epoch of [1, 2, 2, 3, 4, 5]) await store.appendBatchNorm(id, epoch, layer(epoch)); // epoch 2 twice: a resumed attempt
  expect((await store.batchNormHistory(id)).map((e) => e.epoch)).toEqual([4, 5]);
  await store.append(id, { type: 'cancelled' });
  await store.appendBatchNorm(id, 6, layer(6));
  expect((await store.batchNormHistory(id)).map((e) => e.epoch).at(-1)).toBe(5);
  expect(await redis.ttl(keys.batchnorm(id))).toBeGreaterThan(0);
  await store.remove('default', id);
  expect(await redis.exists(keys.batchnorm(id))).toBe(0);
});
