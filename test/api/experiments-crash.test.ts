/**
 * A worker process killed with SIGKILL in the middle of an experiment: its
 * running child resumes on the second worker from its checkpoint, no child is
 * lost, the summary is complete, and every run ends with the weight bytes of
 * an uninterrupted run of its spec.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startStack, type Stack } from './helpers.js';
import { referenceWeights, servedWeights, startWorkerProcess, stopProcess, until, type Proc } from './processes.js';

const EXPERIMENT = {
  base: { dataset: { id: 'spirals', size: 40_000 }, model: { hidden: [64, 64] }, training: { epochs: 12, batchSize: 16 } },
  grid: { 'model.batchNorm': ['none', 'before'] },
  seeds: [3],
};
const WORKER_ENV = { LOCK_DURATION_MS: '3000', STALLED_INTERVAL_MS: '1000' };

let stack: Stack;
let first: Proc | undefined;
let second: Proc | undefined;

beforeAll(async () => {
  stack = await startStack('exp-crash');
});
afterAll(async () => {
  await stopProcess(first);
  await stopProcess(second);
  await stack.close();
});

it('loses no child when a worker is killed mid-experiment; each run matches an uninterrupted one', async () => {
  first = await startWorkerProcess(stack.config, WORKER_ENV);
  const res = await api(stack.base, 'POST', '/experiments', EXPERIMENT);
  expect(res.status).toBe(202);
  const { id, jobIds } = res.body as { id: string; jobIds: string[] };

  // The first worker (one job at a time) takes a child; the second, started then, the other. The
  // first is killed in the middle of an epoch of its own child, after that child's first
  // checkpoint (a finished child's last progress can look mid-epoch too, hence the status). It
  // waits for the first worker's child by id: waiting for any child in its third epoch could
  // see the second worker's while the first worker's had already finished, leaving nothing to lose.
  const job = async (jobId: string) => (await api(stack.base, 'GET', `/jobs/${jobId}`)).body;
  let firstChild = '';
  await until(async () => {
    const running = (await Promise.all(jobIds.map(job))).findIndex((j) => j.status === 'running');
    firstChild = running >= 0 ? jobIds[running]! : '';
    return running >= 0;
  }, 30_000, 'a running child');
  second = await startWorkerProcess(stack.config, WORKER_ENV);
  await until(async () => {
    const j = await job(firstChild);
    return j.status === 'running' && j.progress?.epoch >= 3 && j.progress.step < j.progress.stepsPerEpoch;
  }, 60_000, "the first worker's child in its third epoch");
  first.child.kill('SIGKILL');
  expect(await first.exited).toBe('SIGKILL');

  await until(async () => (await api(stack.base, 'GET', `/experiments/${id}`)).body.status === 'succeeded', 90_000, 'the experiment to finish');
  const exp = (await api(stack.base, 'GET', `/experiments/${id}`)).body;
  expect(exp.summary.complete).toBe(true);
  expect(exp.summary.counts).toEqual({ queued: 0, running: 0, succeeded: 2, failed: 0, cancelled: 0 });
  for (const v of exp.summary.variants) expect(v.finalValAccuracy.n).toBe(1);
  expect(second.output()).toMatch(/job lost its worker/);

  // The killed worker's child was resumed by the second worker.
  const attempts = (await Promise.all(jobIds.map(job))).map((j) => j.attempt).sort();
  expect(attempts).toEqual([1, 2]);
  for (const jobId of jobIds) {
    const child = await job(jobId);
    expect(child.status).toBe('succeeded');
    const epochs = (await api(stack.base, 'GET', `/jobs/${jobId}/metrics`)).body.epochs.map((e: any) => e.epoch);
    expect(epochs).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(await servedWeights(stack.base, jobId)).toBe(await referenceWeights(child.spec));
  }
  // The experiment's stream has every epoch of every child once.
  const metrics = (await api(stack.base, 'GET', `/experiments/${id}/metrics`)).body;
  expect(metrics.rows).toHaveLength(24);
}, 180_000);
