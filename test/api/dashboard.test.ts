/**
 * The dashboard's HTTP side: pages and scripts are served without a key (they hold no data) with a
 * strict content security policy, only the two uPlot files leave node_modules, and
 * GET /v1/datasets/:id/samples is bounded and shows an upload to its own tenant only.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readIdxFile } from '../../src/datasets/idx.js';
import { api, startStack, type Stack } from './helpers.js';

const ALICE = 'alice-dashboard-key-0123456789';
const BOB = 'bob-dashboard-key-0123456789ab';
const CSV = ['a,b,label', ...Array.from({ length: 30 }, (_, i) => `${i},${i * 0.5},${i % 3 === 0 ? 'x' : 'y'}`)].join('\n');

let stack: Stack;
let origin: string;

beforeAll(async () => {
  stack = await startStack('dashboard', { config: { apiKeys: [{ key: ALICE, tenant: 'alice' }, { key: BOB, tenant: 'bob' }], rateLimitMax: 0 } });
  origin = stack.base.replace(/\/v1$/, '');
});
afterAll(async () => stack.close());

describe('pages', () => {
  it('serves the same shell at every page URL, without a key, with a content security policy', async () => {
    const shell = readFileSync(new URL('../../src/server/public/index.html', import.meta.url), 'utf8');
    for (const page of ['/', '/jobs/job_0mx59gel86fdb7c536f6f', '/experiments/exp_1', '/models/job_0mx59gel86fdb7c536f6f']) {
      const res = await fetch(origin + page);
      expect(res.status, page).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await res.text()).toBe(shell);
    }
  });

  it('serves the scripts and uPlot from node_modules, and nothing else from there', async () => {
    for (const file of ['/ui/app.js', '/ui/api.js', '/ui/pages/job.js', '/ui/style.css', '/ui/vendor/uplot/uPlot.iife.min.js', '/ui/vendor/uplot/uPlot.min.css']) {
      const res = await fetch(origin + file);
      expect(res.status, file).toBe(200);
      await res.arrayBuffer();
    }
    for (const file of ['/ui/vendor/uplot/uPlot.esm.js', '/ui/vendor/uplot/../package.json', '/ui/../../package.json', '/ui/%2e%2e/routes/dashboard.ts']) {
      // 404, or 401 where the URL normalizes to a path outside the dashboard (then the API's auth answers).
      const res = await fetch(origin + file);
      expect([401, 404], file).toContain(res.status);
      expect(await res.text()).not.toContain('"name": "normlab"');
    }
  });

  it('keeps the API behind the key, the docs public', async () => {
    expect((await api(stack.base, 'GET', '/jobs')).status).toBe(401);
    expect((await api(stack.base, 'GET', '/datasets/fashion-mnist/samples')).status).toBe(401);
    expect((await fetch(`${stack.base}/docs`)).status).toBe(200);
  });
});

describe('GET /v1/datasets/:id/samples', () => {
  it('returns Fashion-MNIST test images as raw pixels with their labels, in file order', async () => {
    const res = await api(stack.base, 'GET', '/datasets/fashion-mnist/samples?split=test&offset=5&limit=3', undefined, ALICE);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ datasetId: 'fashion-mnist', split: 'test', offset: 5, total: 10000, inputShape: [1, 28, 28] });
    expect(res.body.classNames).toHaveLength(10);
    const dir = process.env.FASHION_MNIST_DIR || '/usr/share/datasets/fashion-mnist';
    const images = await readIdxFile(`${dir}/t10k-images-idx3-ubyte.gz`);
    const labels = await readIdxFile(`${dir}/t10k-labels-idx1-ubyte.gz`);
    expect(res.body.samples.map((s: { index: number }) => s.index)).toEqual([5, 6, 7]);
    for (const s of res.body.samples) {
      expect(s.label).toBe(labels.data[s.index]);
      expect(s.features).toEqual(Array.from(images.data.subarray(s.index * 784, (s.index + 1) * 784)));
    }
  });

  it('is bounded and names the field it rejects', async () => {
    const get = (q: string, id = 'fashion-mnist') => api(stack.base, 'GET', `/datasets/${id}/samples${q}`, undefined, ALICE);
    const tooMany = await get('?limit=65');
    expect(tooMany.status).toBe(400);
    expect(JSON.stringify(tooMany.body.error)).toContain('/limit');
    expect((await get('?limit=0')).status).toBe(400);
    expect((await get('?offset=-1')).status).toBe(400);
    expect((await get('?split=validation')).status).toBe(400);
    const past = await get('?offset=10000');
    expect(past.status).toBe(400);
    expect(past.body.error).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', details: { path: '/querystring/offset', maximum: 9999 } });
    const train = await get('?split=train');
    expect(train.body.error).toMatchObject({ code: 'SPLIT_UNAVAILABLE', details: { path: '/querystring/split', allowed: ['test'] } });
    const synthetic = await get('', 'spirals');
    expect(synthetic.status).toBe(400);
    expect(synthetic.body.error).toMatchObject({ code: 'SPLIT_UNAVAILABLE', details: { allowed: [] } });
    expect((await get('', 'ds_0mx59gel86fdb7c536f6f')).status).toBe(404);
  });

  it('shows an upload\'s rows to its own tenant only', async () => {
    const res = await fetch(`${stack.base}/datasets?name=small`, { method: 'POST', headers: { 'content-type': 'text/csv', authorization: `Bearer ${ALICE}` }, body: CSV });
    expect(res.status).toBe(201);
    const { id } = await res.json();
    const own = await api(stack.base, 'GET', `/datasets/${id}/samples?split=train&limit=2`, undefined, ALICE);
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ total: 30, inputShape: [2], classNames: ['x', 'y'] });
    expect(own.body.samples).toEqual([{ index: 0, label: 0, features: [0, 0] }, { index: 1, label: 1, features: [1, 0.5] }]);
    const other = await api(stack.base, 'GET', `/datasets/${id}/samples?split=train`, undefined, BOB);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('DATASET_NOT_FOUND');
    expect((await api(stack.base, 'GET', `/datasets/${id}/samples?split=test`, undefined, ALICE)).body.error.code).toBe('SPLIT_UNAVAILABLE');
  });
});
