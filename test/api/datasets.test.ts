/** CSV uploads: store, list, train on one, read one as sequences (dataset.sequence), predict in its raw feature space, delete. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, readEvents, startStack, submit, type Stack } from './helpers.js';

let stack: Stack;
let base: string;

beforeAll(async () => {
  stack = await startStack('datasets', { worker: true, config: { datasetMaxBytes: 64 * 1024 } });
  base = stack.base;
});
afterAll(async () => stack.close());

/** Two well separated blobs in raw units (heights in cm, weights in kg). */
function csv(rows = 200): string {
  const lines = ['height,weight,kind'];
  for (let i = 0; i < rows; i++) {
    const big = i % 2 === 1;
    lines.push(`${(big ? 190 : 150) + (i % 7)},${(big ? 95 : 50) + (i % 5)},${big ? 'large' : 'small'}`);
  }
  return lines.join('\n') + '\n';
}

const upload = (body: string, query = '') =>
  fetch(`${base}/datasets${query}`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body })
    .then(async (r) => ({ status: r.status, headers: r.headers, body: await r.json() }));

let dsId: string;

it('stores an uploaded CSV (201)', async () => {
  const res = await upload(csv(), '?name=people&label=kind');
  expect(res.status).toBe(201);
  dsId = res.body.id;
  expect(dsId).toMatch(/^ds_/);
  expect(res.body).toMatchObject({ name: 'people', rows: 200, features: 2, classes: 2 });
  expect(res.headers.get('location')).toBe(`/v1/datasets/${dsId}`);
});

it('lists built-ins and uploads', async () => {
  const { body } = await api(base, 'GET', '/datasets');
  const ids = body.items.map((d: any) => d.id);
  expect(ids).toEqual(expect.arrayContaining(['spirals', 'moons', 'blobs', 'xor', 'fashion-mnist', dsId]));
  const fm = body.items.find((d: any) => d.id === 'fashion-mnist');
  expect(fm).toMatchObject({ kind: 'image', inputShape: [1, 28, 28], sequenceShape: [28, 28], features: 784, classes: 10 });
  expect(body.items.find((d: any) => d.id === 'sines')).toMatchObject({ kind: 'synthetic', inputShape: [32, 1], sequenceShape: [32, 1], classes: 4 });
  expect(body.items.find((d: any) => d.id === dsId)).toMatchObject({ inputShape: [2], sequenceShape: null });
  expect(typeof fm.available).toBe('boolean');
  expect((await api(base, 'GET', `/datasets/${dsId}`)).body).toMatchObject({ id: dsId, kind: 'upload', available: true, rows: 200 });
  expect((await api(base, 'GET', '/datasets/spirals')).body).toMatchObject({ id: 'spirals', kind: 'synthetic', rows: null });
});

it('trains on the upload and predicts raw rows', async () => {
  const id = await submit(base, { dataset: { id: dsId }, model: { hidden: [8] }, training: { epochs: 20, batchSize: 16 } });
  const events = await readEvents(base, id);
  expect(events.at(-1)!.event).toBe('completed');
  const res = await api(base, 'POST', `/models/${id}/predict`, { instances: [[150, 50], [193, 97]] });
  expect(res.body.predictions.map((p: any) => p.label)).toEqual(['small', 'large']);
});

/** Two classes of 4-step sequences of 2 values: rising (class up) or falling (class down). */
function sequenceCsv(rows = 120): string {
  const steps = [0, 1, 2, 3];
  const lines = [[...steps.flatMap((t) => [`x${t}`, `y${t}`]), 'trend'].join(',')];
  for (let i = 0; i < rows; i++) {
    const up = i % 2 === 0;
    const jitter = (i % 5) / 10;
    lines.push([...steps.flatMap((t) => [(up ? t : 3 - t) + jitter, (i % 3) - 1]), up ? 'up' : 'down'].join(','));
  }
  return lines.join('\n') + '\n';
}

it('reads an upload as sequences with dataset.sequence.steps: [steps, F/steps] rows, flat or shaped in predictions', async () => {
  const res = await upload(sequenceCsv(), '?name=trends');
  expect(res.body).toMatchObject({ features: 8, classes: 2 });
  const seqId = res.body.id;
  const id = await submit(base, { dataset: { id: seqId, sequence: { steps: 4 } }, model: { hidden: [8] }, training: { epochs: 30, batchSize: 16 } });
  expect((await readEvents(base, id)).at(-1)!.event).toBe('completed');
  const model = await api(base, 'GET', `/models/${id}`);
  expect(model.body).toMatchObject({ inputShape: [4, 2], features: 8 });
  const rising = [0, 0, 1, 0, 2, 0, 3, 0];
  const falling = [3, 0, 2, 0, 1, 0, 0, 0];
  const flat = await api(base, 'POST', `/models/${id}/predict`, { instances: [rising, falling] });
  expect(flat.body.predictions.map((p: any) => p.label)).toEqual(['up', 'down']);
  const v2 = base.replace(/\/v1$/, '/v2');
  const shaped = await api(v2, 'POST', `/models/${id}/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4, 2], data: [...rising, ...falling] }] });
  expect(shaped.status).toBe(200);
  const probabilities = shaped.body.outputs.find((o: any) => o.name === 'probabilities');
  expect(probabilities.shape).toEqual([2, 2]);
  expect(shaped.body.outputs.find((o: any) => o.name === 'label').data).toEqual([1, 0]); // classes sorted: down, up
});

it('steps that do not divide the feature count: 400 INVALID_SPEC at /dataset/sequence/steps, listing the count and the steps that fit', async () => {
  const res = await api(base, 'POST', '/jobs', { dataset: { id: dsId, sequence: { steps: 3 } } });
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('INVALID_SPEC');
  expect(res.body.error.message).toContain('/dataset/sequence/steps: 3 does not divide the 2 features of a row of');
  expect(res.body.error.details.issues).toEqual([expect.objectContaining({ path: '/dataset/sequence/steps', features: 2, allowed: [1, 2] })]);
  const zero = await api(base, 'POST', '/jobs', { dataset: { id: 'sines', sequence: { steps: 0 } } });
  expect(zero.status).toBe(400);
  expect(zero.body.error.details.issues[0]).toMatchObject({ path: '/dataset/sequence/steps', message: 'must be >= 1' });
});

it('rejects a CSV that is not a dataset (400) and one over the size limit (413)', async () => {
  const bad = await upload('a,b,label\n1,x,0\n');
  expect(bad.status).toBe(400);
  expect(bad.body.error.code).toBe('CSV_INVALID');
  expect(bad.body.error.message).toMatch(/line 2/);
  const big = await upload(csv(6000));
  expect(big.status).toBe(413);
  expect(big.body.error).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', details: { limit: 64 * 1024 } });
  const unknownLabel = await upload(csv(), '?label=colour');
  expect(unknownLabel.status).toBe(400);
});

it('needs text/csv', async () => {
  const res = await api(base, 'POST', '/datasets', { rows: [] });
  expect(res.status).toBe(415);
  expect(res.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
});

it('deletes an upload', async () => {
  const res = await fetch(`${base}/datasets/${dsId}`, { method: 'DELETE' });
  expect(res.status).toBe(204);
  expect((await api(base, 'GET', `/datasets/${dsId}`)).status).toBe(404);
  const job = await api(base, 'POST', '/jobs', { dataset: { id: dsId } });
  expect(job.status).toBe(400);
  expect(job.body.error.code).toBe('UNKNOWN_DATASET');
});
