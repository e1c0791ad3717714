/**
 * A worker process killed with SIGKILL mid-epoch while a second one runs:
 * its lock expires, the second worker's stalled check takes the job, which
 * resumes from its last checkpoint. The event stream has every epoch once,
 * and the model has the weight bytes of an uninterrupted run.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, readEvents, startStack, submit, type Stack } from './helpers.js';
import { referenceWeights, servedWeights, startWorkerProcess, stopProcess, type Proc } from './processes.js';

/** About 0.1–0.3 s per epoch: long enough to be killed in the middle of one. */
const SPEC = {
  dataset: { id: 'spirals', size: 40_000 },
  model: { hidden: [64, 64] },
  training: { epochs: 16, batchSize: 16, seed: 7 },
};
const EPOCHS = Array.from({ length: SPEC.training.epochs }, (_, i) => i + 1);
/** A crash is noticed within LOCK_DURATION_MS + 2 × STALLED_INTERVAL_MS. */
const WORKER_ENV = { LOCK_DURATION_MS: '3000', STALLED_INTERVAL_MS: '1000' };

let stack: Stack;
let first: Proc | undefined;
let second: Proc | undefined;

beforeAll(async () => {
  stack = await startStack('crash');
});
afterAll(async () => {
  await stopProcess(first);
  await stopProcess(second);
  await stack.close();
});

it('resumes a job killed mid-epoch on another worker, with no gap in epochs and the same weights', async () => {
  const reference = referenceWeights(SPEC);
  first = await startWorkerProcess(stack.config, WORKER_ENV);
  const id = await submit(stack.base, SPEC);
  // The second worker starts once the first has the job.
  await readEvents(stack.base, id, { until: (e) => e.event === 'started' });
  second = await startWorkerProcess(stack.config, WORKER_ENV);

  const before = await readEvents(stack.base, id, {
    until: (e) => e.event === 'progress' && e.data.epoch >= 3 && e.data.step < e.data.stepsPerEpoch,
  });
  first.child.kill('SIGKILL');
  expect(await first.exited).toBe('SIGKILL');
  expect(before.map((e) => e.event)).toContain('checkpoint');

  const events = await readEvents(stack.base, id);
  const types = events.map((e) => e.event);
  expect(types.at(-1)).toBe('completed');
  const starts = events.filter((e) => e.event === 'started').map((e) => e.data);
  expect(starts).toHaveLength(2);
  expect(starts[0]).toEqual({ type: 'started', attempt: 1, resumedFrom: null });
  expect(starts[1]).toMatchObject({ attempt: 2, resumedFrom: { epoch: expect.any(Number), step: 0 } });
  expect(starts[1].resumedFrom.epoch).toBeGreaterThanOrEqual(2);
  expect(events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)).toEqual(EPOCHS);
  expect(second.output()).toMatch(/job lost its worker/);

  const job = (await api(stack.base, 'GET', `/jobs/${id}`)).body;
  expect(job).toMatchObject({ status: 'succeeded', attempt: 2 });
  const metrics = (await api(stack.base, 'GET', `/jobs/${id}/metrics`)).body;
  expect(metrics.epochs.map((e: any) => e.epoch)).toEqual(EPOCHS);
  expect(await servedWeights(stack.base, id)).toBe(await reference);
  // A succeeded job keeps no checkpoint.
  expect((await api(stack.base, 'GET', `/jobs/${id}/checkpoint`)).body.error.code).toBe('NO_CHECKPOINT');
}, 120_000);
