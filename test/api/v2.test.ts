/**
 * Open Inference Protocol v2: metadata, health, infer (flat and nested data,
 * the same bits as /v1 predict), the protocol's errors, and the same keys and
 * tenants as /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_SLICE_DIR } from '../helpers/fashion-slice.js';
import { buildApp } from '../../src/server/app.js';
import { api, readEvents, startStack, submit, testConfig, TINY_SPEC, type Stack } from './helpers.js';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef00';

let stack: Stack;
let v2: string;
let mlp: string;
let cnn: string;

const v2call = (method: string, path: string, body?: unknown, key = ALICE) => api(v2, method, path, body, key);

beforeAll(async () => {
  process.env.FASHION_MNIST_DIR = FASHION_MNIST_SLICE_DIR; // the worker threads read the committed slice
  stack = await startStack('v2', { worker: true, config: { apiKeys: [{ key: ALICE, tenant: 'alice' }, { key: BOB, tenant: 'bob' }], rateLimitMax: 0 } });
  v2 = stack.base.replace(/\/v1$/, '/v2');
  mlp = await submit(stack.base, { ...TINY_SPEC, model: { hidden: [16, 16], batchNorm: 'before' } }, ALICE);
  cnn = await submit(stack.base, {
    dataset: { id: 'fashion-mnist', limit: 200, validationSplit: 0 },
    model: { architecture: 'cnn', conv: [2], dense: [8] }, training: { epochs: 1, batchSize: 50 },
  }, ALICE);
  for (const id of [mlp, cnn]) expect((await readEvents(stack.base, id, { key: ALICE })).at(-1)!.event).toBe('completed');
}, 120_000);
afterAll(async () => {
  delete process.env.FASHION_MNIST_DIR;
  await stack.close();
});

const rows = [[0.5, -0.25], [1.5, 2], [-3, 0.125], [0, 0]];

describe('metadata and health', () => {
  it('describes the server, and health answers without a key', async () => {
    expect((await v2call('GET', '')).body).toMatchObject({ name: 'normlab', version: expect.any(String), extensions: [] });
    expect(await api(v2, 'GET', '/health/live')).toMatchObject({ status: 200, body: { live: true } });
    expect(await api(v2, 'GET', '/health/ready')).toMatchObject({ status: 200, body: { ready: true } });
  });

  it('is not ready (400 {"ready": false}) while Redis is away, and still live', async () => {
    const app = await buildApp(testConfig('v2-noredis', { redisUrl: 'redis://127.0.0.1:1', logLevel: 'silent' }));
    try {
      const ready = await app.inject({ url: '/v2/health/ready' });
      expect([ready.statusCode, ready.json()]).toEqual([400, { ready: false }]);
      expect((await app.inject({ url: '/v2/health/live' })).json()).toEqual({ live: true });
    } finally {
      await app.close();
    }
  });

  it('describes a model: FP32 input [-1, ...inputShape], probabilities FP32 [-1, classes], label INT64 [-1]', async () => {
    expect((await v2call('GET', `/models/${mlp}`)).body).toEqual({
      name: mlp, versions: [], platform: 'normlab',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 2] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 3] }, { name: 'label', datatype: 'INT64', shape: [-1] }],
    });
    expect((await v2call('GET', `/models/${cnn}`)).body.inputs[0].shape).toEqual([-1, 1, 28, 28]);
    expect(await v2call('GET', `/models/${mlp}/ready`)).toMatchObject({ status: 200, body: { name: mlp, ready: true } });
  });
});

describe('infer', () => {
  it('answers what /v1 predict answers, to the last bit, with the request id echoed', async () => {
    const v1 = await api(stack.base, 'POST', `/models/${mlp}/predict`, { instances: rows }, ALICE);
    expect(v1.status).toBe(200);
    const res = await v2call('POST', `/models/${mlp}/infer`, {
      id: 'req-7', inputs: [{ name: 'input', shape: [4, 2], datatype: 'FP32', data: rows.flat() }],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ model_name: mlp, id: 'req-7' });
    const [probs, label] = res.body.outputs;
    expect(probs).toMatchObject({ name: 'probabilities', datatype: 'FP32', shape: [4, 3] }); // spirals: 3 classes
    expect(label).toMatchObject({ name: 'label', datatype: 'INT64', shape: [4] });
    const v1probs: number[] = v1.body.predictions.flatMap((p: any) => p.probabilities);
    // Same numbers in the same JSON text, and the same float32 bits.
    expect(JSON.stringify(probs.data)).toBe(JSON.stringify(v1probs));
    expect(new Uint8Array(Float32Array.from(probs.data).buffer)).toEqual(new Uint8Array(Float32Array.from(v1probs).buffer));
    const classNames: string[] = (await api(stack.base, 'GET', `/models/${mlp}`, undefined, ALICE)).body.classNames;
    expect(label.data).toEqual(v1.body.predictions.map((p: any) => classNames.indexOf(p.label)));
  });

  it('takes nested data as the shape, [n, features] for an image model, and returns only the outputs asked for', async () => {
    const image = Array.from({ length: 28 }, (_, y) => Array.from({ length: 28 }, (_, x) => (x * 7 + y * 13) % 256));
    const nested = await v2call('POST', `/models/${cnn}/infer`, { inputs: [{ name: 'input', shape: [2, 1, 28, 28], datatype: 'FP32', data: [[image], [image.map((r) => r.map((v) => 255 - v))]] }] });
    expect(nested.status).toBe(200);
    const flat = await v2call('POST', `/models/${cnn}/infer`, {
      inputs: [{ name: 'input', shape: [2, 784], datatype: 'FP32', data: [...image.flat(), ...image.flat().map((v) => 255 - v)] }],
      outputs: [{ name: 'probabilities' }],
    });
    expect(flat.body.outputs).toHaveLength(1);
    expect(flat.body.outputs[0].data).toEqual(nested.body.outputs[0].data);
    expect(flat.body.id).toBeUndefined();
    const one = await v2call('POST', `/models/${cnn}/infer`, { inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: [[image]] }] });
    const v1 = await api(stack.base, 'POST', `/models/${cnn}/predict`, { instances: [image.flat()] }, ALICE);
    expect(one.body.outputs[0].data).toEqual(v1.body.predictions[0].probabilities);
  });
});

describe('errors as the protocol says: {"error": "…"}', () => {
  const input = (over: Record<string, unknown>) => ({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [1, 2], ...over }] });
  const cases: Array<[string, unknown, RegExp]> = [
    ['a datatype other than FP32', input({ datatype: 'INT32' }), /datatype: INT32 is not supported; send FP32/],
    ['a shape that does not fit', input({ shape: [1, 3], data: [1, 2, 3] }), /shape: \[1, 3\] does not fit the model; expected \[n, 2\]/],
    ['too few values', input({ shape: [2, 2] }), /data\[0\]: expected 2 values \(shape \[2, 2\], or 4 values flat\)/],
    ['a string among the values', input({ data: [1, 'x'] }), /data\[1\]: "x" is not a finite FP32 number/],
    ['a value beyond float32', input({ data: [1, 1e39] }), /data\[1\]: 1e\+39 is not a finite FP32 number/],
    ['no inputs', { inputs: [] }, /inputs/],
    ['an unknown output', { ...input({}), outputs: [{ name: 'logits' }] }, /outputs/],
  ];
  for (const [what, body, message] of cases) {
    it(`400 for ${what}`, async () => {
      const res = await v2call('POST', `/models/${mlp}/infer`, body);
      expect(res.status).toBe(400);
      expect(Object.keys(res.body)).toEqual(['error']);
      expect(res.body.error).toMatch(message);
    });
  }

  it('400 for malformed JSON, 404 for an unknown model or route', async () => {
    expect(await v2call('POST', `/models/${mlp}/infer`, '{"inputs": [')).toMatchObject({ status: 400, body: { error: expect.any(String) } });
    expect(await v2call('GET', '/models/job_000000000000000000000')).toMatchObject({ status: 404, body: { error: 'no model named job_000000000000000000000' } });
    expect(await v2call('GET', '/nothing')).toMatchObject({ status: 404, body: { error: 'no route GET /v2/nothing' } });
  });

  it('needs a key (401), and another tenant\'s model is unknown (404) on every route', async () => {
    const none = await fetch(`${v2}/models/${mlp}`);
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: expect.stringMatching(/needs an API key/) });
    for (const [method, path, body] of [['GET', `/models/${mlp}`], ['GET', `/models/${mlp}/ready`], ['POST', `/models/${mlp}/infer`, input({})]] as const) {
      expect(await v2call(method, path, body, BOB)).toMatchObject({ status: 404, body: { error: `no model named ${mlp}` } });
    }
  });
});
