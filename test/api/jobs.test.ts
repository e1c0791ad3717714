/**
 * The training flow through the API with an in-process worker (worker
 * threads running the compiled processor): submit → events → model →
 * predict, concurrency, cancellation, reconnection, divergence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, readEvents, startStack, submit, TINY_SPEC, waitFor, type Stack } from './helpers.js';

/** Long enough to still be training a second after it starts. */
const SLOW_SPEC = {
  dataset: { id: 'spirals', size: 20_000 },
  model: { hidden: [128, 128] },
  training: { epochs: 200, batchSize: 32 },
};

let stack: Stack;
let base: string;

beforeAll(async () => {
  stack = await startStack('jobs', { worker: true });
  base = stack.base;
});
afterAll(async () => stack.close());

describe('a job on spirals', () => {
  let id: string;

  it('is accepted with 202, a Location and links', async () => {
    const res = await api(base, 'POST', '/jobs', { ...TINY_SPEC, name: 'tiny' });
    expect(res.status).toBe(202);
    id = res.body.id;
    expect(id).toMatch(/^job_/);
    expect(res.body.status).toBe('queued');
    expect(res.headers.get('location')).toBe(`/v1/jobs/${id}`);
    expect(res.body.links.events).toBe(`/v1/jobs/${id}/events`);
  });

  it('streams its events over SSE through to completed', async () => {
    const events = await readEvents(base, id);
    const types = events.map((e) => e.event);
    expect(types[0]).toBe('queued');
    expect(types[1]).toBe('started');
    expect(types).toContain('progress');
    expect(types.filter((t) => t === 'epoch')).toHaveLength(3);
    expect(types.at(-1)).toBe('completed');
    for (const e of events) expect(e.data.type).toBe(e.event);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(events.at(-1)!.data.modelId).toBe(id);
  });

  it('reports status, attempt, progress, metrics and its model', async () => {
    const { status, body } = await api(base, 'GET', `/jobs/${id}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ id, name: 'tiny', status: 'succeeded', attempt: 1, dataset: 'spirals', modelId: id, error: null });
    expect(body.progress).toMatchObject({ epoch: 3, epochs: 3 });
    expect(body.metrics.epoch).toBe(3);
    expect(body.result.metrics.epochs).toBe(3);
    expect(body.spec.training.batchSize).toBe(128);
    expect(body.links.model).toBe(`/v1/models/${id}`);
  });

  it('has its per-epoch history as JSON and CSV', async () => {
    const json = await api(base, 'GET', `/jobs/${id}/metrics`);
    expect(json.status).toBe(200);
    expect(json.body.epochs.map((e: any) => e.epoch)).toEqual([1, 2, 3]);
    expect(json.body.epochs[0].bn.length).toBeGreaterThan(0);
    const csv = await api(base, 'GET', `/jobs/${id}/metrics?format=csv`);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = csv.body.trim().split('\n');
    expect(lines[0]).toBe('epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,lr,seconds,' +
      'gap_split,gap_frozen_loss,gap_frozen_accuracy,gap_batch_loss,gap_batch_accuracy,gap_loss,gap_accuracy');
    expect(lines).toHaveLength(4);
  });

  it('replays the whole stream to a late client and ends it', async () => {
    const events = await readEvents(base, id);
    expect(events.at(-1)!.event).toBe('completed');
  });

  it('describes the model, its batch-norm statistics and weights', async () => {
    const model = await api(base, 'GET', `/models/${id}`);
    expect(model.status).toBe(200);
    expect(model.body).toMatchObject({ id, jobId: id, dataset: 'spirals', features: 2, classes: 3, inputShape: [2] });
    // inferenceStats auto: the model records the statistics it kept.
    expect(['moving', 'population']).toContain(model.body.inferenceStats);
    expect(model.body.inferenceStats).toBe(model.body.metrics.inferenceStats);
    expect(model.body.layers.at(-1)).toMatchObject({ type: 'dense', out: 3 });
    const bn = await api(base, 'GET', `/models/${id}/batchnorm`);
    expect(bn.body.layers).toHaveLength(2);
    expect(bn.body.layers[0]).toMatchObject({ channels: 16, source: model.body.inferenceStats });
    expect(bn.body.layers[0].mean).toHaveLength(16);
    const weights = await fetch(`${base}/models/${id}/weights`);
    expect(weights.headers.get('content-type')).toBe('application/octet-stream');
    const bytes = new Uint8Array(await weights.arrayBuffer());
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)))).toHaveProperty(['layers.0.weight']);
    const list = await api(base, 'GET', '/models');
    expect(list.body.items.map((m: any) => m.id)).toContain(id);
  });

  it('predicts, each row the same alone as in a batch', async () => {
    const rows = [[0.1, 0.2], [-0.5, 0.9], [1.2, -0.3], [0, 0]];
    const batch = await api(base, 'POST', `/models/${id}/predict`, { instances: rows });
    expect(batch.status).toBe(200);
    expect(batch.body.predictions).toHaveLength(4);
    for (const p of batch.body.predictions) {
      expect(p.probabilities).toHaveLength(3);
      expect(p.probabilities.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 5);
      expect(typeof p.label).toBe('string');
    }
    // Frozen statistics: batch statistics would move these by far more than float rounding
    // (the matrix multiply may round differently for one row than for several).
    for (let i = 0; i < rows.length; i++) {
      const single = (await api(base, 'POST', `/models/${id}/predict`, { instances: [rows[i]] })).body.predictions[0];
      const inBatch = batch.body.predictions[i];
      expect(single.label).toBe(inBatch.label);
      single.probabilities.forEach((p: number, j: number) => expect(p).toBeCloseTo(inBatch.probabilities[j], 6));
    }
  });

  it('rejects bad prediction input with 400 naming the row', async () => {
    const wrong = await api(base, 'POST', `/models/${id}/predict`, { instances: [[1, 2], [1, 2, 3]] });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatchObject({ code: 'WRONG_FEATURE_COUNT', details: { path: '/instances/1', expected: 2, actual: 3 } });
    const nan = await api(base, 'POST', `/models/${id}/predict`, { instances: [[1, 'x']] });
    expect(nan.status).toBe(400);
    expect(nan.body.error.code).toBe('INVALID_REQUEST');
    expect(nan.body.error.details.issues[0].path).toBe('/instances/0/1');
    const many = await api(base, 'POST', `/models/${id}/predict`, { instances: Array.from({ length: stack.config.predictMaxRows + 1 }, () => [0, 0]) });
    expect(many.status).toBe(400);
    expect(many.body.error.message).toMatch(/1000/);
    const empty = await api(base, 'POST', `/models/${id}/predict`, { instances: [] });
    expect(empty.status).toBe(400);
  });

  it('cannot be cancelled once finished (409)', async () => {
    const res = await api(base, 'DELETE', `/jobs/${id}`);
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'JOB_FINISHED', details: { status: 'succeeded' } });
  });
});

it('runs two jobs at once', async () => {
  const ids = await Promise.all([submit(base), submit(base, { ...TINY_SPEC, dataset: { id: 'moons', size: 300 } })]);
  const ends = await Promise.all(ids.map((id) => readEvents(base, id)));
  expect(ends.map((events) => events.at(-1)!.event)).toEqual(['completed', 'completed']);
  const listed = await api(base, 'GET', '/jobs?status=succeeded&limit=100');
  expect(listed.body.items.map((j: any) => j.id)).toEqual(expect.arrayContaining(ids));
});

it('pages through the job list newest first', async () => {
  const first = await api(base, 'GET', '/jobs?limit=1');
  expect(first.body.items).toHaveLength(1);
  const second = await api(base, 'GET', `/jobs?limit=1&cursor=${first.body.nextCursor}`);
  expect(second.body.items[0].id < first.body.items[0].id).toBe(true);
});

it('cancels a running job within a step', async () => {
  const id = await submit(base, SLOW_SPEC);
  await waitFor(base, id, (j) => j.progress !== null);
  const res = await api(base, 'DELETE', `/jobs/${id}`);
  expect([200, 202]).toContain(res.status);
  const events = await readEvents(base, id);
  expect(events.at(-1)!.event).toBe('cancelled');
  const job = await waitFor(base, id, (j) => j.status !== 'running');
  expect(job.status).toBe('cancelled');
  expect(job.modelId).toBeNull();
  expect((await api(base, 'GET', `/models/${id}`)).status).toBe(404);
});

it('resumes an event stream after Last-Event-ID with nothing lost or repeated', async () => {
  const id = await submit(base, { ...SLOW_SPEC, training: { ...SLOW_SPEC.training, epochs: 3 } });
  const before = await readEvents(base, id, { stopAfter: 4 });
  expect(before).toHaveLength(4);
  const after = await readEvents(base, id, { lastEventId: before.at(-1)!.id });
  expect(after.at(-1)!.event).toBe('completed');
  const all = await readEvents(base, id);
  expect([...before, ...after].map((e) => e.id)).toEqual(all.map((e) => e.id));
  // The query parameter works like the header.
  const viaQuery = await fetch(`${base}/jobs/${id}/events?lastEventId=${all.at(-2)!.id}`).then((r) => r.text());
  expect(viaQuery.match(/^event: /gm)).toEqual(['event: ']);
});

it('fails a diverging job with DIVERGED, without retrying', async () => {
  // A huge learning rate on a deep net without batch norm: the loss overflows within a few steps.
  const id = await submit(base, {
    dataset: { id: 'spirals', size: 300 },
    model: { hidden: [64, 64, 64, 64, 64, 64], batchNorm: 'none' },
    training: { epochs: 5, optimizer: { type: 'sgd', learningRate: 1000, momentum: 0.9 } },
  });
  const events = await readEvents(base, id);
  const last = events.at(-1)!;
  expect(last.event).toBe('failed');
  expect(last.data.code).toBe('DIVERGED');
  expect(events.filter((e) => e.event === 'started')).toHaveLength(1);
  const job = await api(base, 'GET', `/jobs/${id}`);
  expect(job.body).toMatchObject({ status: 'failed', attempt: 1, modelId: null, error: { code: 'DIVERGED' } });
  expect(job.body.error.details).toMatchObject({ epoch: 1, hint: expect.stringMatching(/learning rate/) });
});
