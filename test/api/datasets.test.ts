/** CSV uploads: store, list, train on one, predict in its raw feature space, delete. */
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
  expect(fm).toMatchObject({ kind: 'image', inputShape: [1, 28, 28], features: 784, classes: 10 });
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
