/**
 * Checkpoints in Redis: saved every CHECKPOINT_EVERY_STEPS steps and at epoch
 * ends, deleted when a job succeeds or is cancelled, kept when it fails (the
 * last good state of a diverged job, served by GET /jobs/:id/checkpoint).
 * An epoch that a resumed attempt trains again is recorded once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../src/core/checkpoint.js';
import { resolveSpec } from '../../src/core/spec.js';
import { api, readEvents, startStack, submit, TINY_SPEC, waitFor, type Stack } from './helpers.js';

let stack: Stack;
let base: string;

beforeAll(async () => {
  stack = await startStack('checkpoints', { worker: true, config: { checkpointEverySteps: 1 } });
  base = stack.base;
});
afterAll(async () => stack.close());

it('checkpoints every N steps and at epoch ends, and drops the checkpoint on success', async () => {
  const id = await submit(base, TINY_SPEC);
  const events = await readEvents(base, id);
  expect(events.at(-1)!.event).toBe('completed');
  const checkpoints = events.filter((e) => e.event === 'checkpoint').map((e) => [e.data.epoch, e.data.step]);
  // 270 training rows in batches of 128: 3 steps per epoch, a checkpoint after each but the last, then one at the epoch end.
  expect(checkpoints).toEqual([[1, 1], [1, 2], [2, 0], [2, 1], [2, 2], [3, 0], [3, 1], [3, 2]]);
  expect((await api(base, 'GET', `/jobs/${id}/checkpoint`)).body.error).toMatchObject({ code: 'NO_CHECKPOINT', details: { status: 'succeeded' } });
  expect(await stack.app.services.redis.exists(stack.app.services.keys.checkpoint(id))).toBe(0);
});

it('keeps the last good checkpoint of a diverged job and serves it', async () => {
  const spec = {
    dataset: { id: 'spirals', size: 300 },
    model: { hidden: [64, 64, 64, 64, 64, 64], batchNorm: 'none' },
    training: { epochs: 5, batchSize: 32, optimizer: { type: 'sgd', learningRate: 1000, momentum: 0.9 } },
  };
  const id = await submit(base, spec);
  const failed = (await readEvents(base, id)).at(-1)!;
  expect(failed.data).toMatchObject({
    type: 'failed', code: 'DIVERGED',
    details: { epoch: 1, step: expect.any(Number), hint: expect.stringMatching(/learning rate/), checkpoint: { epoch: 1, step: expect.any(Number) } },
  });
  const res = await fetch(`${base}/jobs/${id}/checkpoint`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/octet-stream');
  const checkpoint = decodeCheckpoint(new Uint8Array(await res.arrayBuffer()));
  expect(checkpoint.spec).toBe(JSON.stringify(resolveSpec(spec)));
  expect({ epoch: checkpoint.state.epoch, step: checkpoint.state.step }).toEqual(failed.data.details.checkpoint);
  expect(checkpoint.state.step).toBeLessThan(failed.data.details.step);
  // It lives as long as the failed job.
  expect(await stack.app.services.redis.ttl(stack.app.services.keys.checkpoint(id))).toBeGreaterThan(0);
});

it('drops the checkpoint of a cancelled job', async () => {
  const id = await submit(base, { dataset: { id: 'spirals', size: 20_000 }, model: { hidden: [64] }, training: { epochs: 100, batchSize: 64 } });
  await readEvents(base, id, { until: (e) => e.event === 'checkpoint' });
  await api(base, 'DELETE', `/jobs/${id}`);
  await waitFor(base, id, (j) => j.status === 'cancelled');
  expect((await api(base, 'GET', `/jobs/${id}/checkpoint`)).body.error.code).toBe('NO_CHECKPOINT');
});

it('records an epoch once when a resumed attempt trains it again', async () => {
  const { jobStore } = stack.app.services;
  const id = `job_${'0'.repeat(20)}2`;
  await jobStore.create('default', id, resolveSpec(TINY_SPEC));
  const epoch = (n: number) => ({ type: 'epoch' as const, epoch: n, train: { loss: 1, accuracy: 0.5 }, val: null, test: null, lr: 0.1, seconds: 0, bn: [] });
  expect(await jobStore.append(id, epoch(1))).not.toBeNull();
  expect(await jobStore.append(id, epoch(2))).not.toBeNull();
  expect(await jobStore.append(id, epoch(2))).toBeNull();
  expect(await jobStore.append(id, epoch(1))).toBeNull();
  expect(await jobStore.append(id, epoch(3))).not.toBeNull();
  expect((await jobStore.history(id)).map((e) => e.epoch)).toEqual([1, 2, 3]);
  expect((await jobStore.events(id)).filter((e) => e.event.type === 'epoch')).toHaveLength(3);
});
