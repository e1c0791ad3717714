/**
 * Experiments through the real API, BullMQ flows and Redis: a small grid on
 * moons end to end (the summary's arithmetic checked against the children's
 * own results), cancelling an experiment mid-run, and the bad-input answers.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, readStream, startStack, type ReadOptions, type Stack } from './helpers.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack('experiments', { worker: true, config: { maxExperimentJobs: 12 } });
});
afterAll(async () => {
  await stack?.close();
});

/** Read an experiment's event stream until it ends, or until `until` accepts an event. */
const readExperimentEvents = (id: string, options: ReadOptions = {}) => readStream(`${stack.base}/experiments/${id}/events`, options);

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => Math.sqrt(xs.reduce((s, x) => s + (x - mean(xs)) ** 2, 0) / (xs.length - 1));

const MOONS = {
  name: 'moons bn',
  base: { dataset: { id: 'moons', size: 400, noise: 0.2 }, model: { hidden: [16, 16] }, training: { epochs: 4, batchSize: 32 } },
  grid: { 'model.batchNorm': ['none', 'before'] },
  seeds: [1, 2, 3],
  target: { metric: 'val.accuracy', value: 0.85 },
  baseline: { 'model.batchNorm': 'none' },
};

describe('an experiment end to end', () => {
  it('runs every child as an ordinary job and summarizes them with the arithmetic of their own results', async () => {
    const res = await api(stack.base, 'POST', '/experiments', MOONS);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ variants: 2, jobs: 6, status: 'queued' });
    const { id, jobIds } = res.body as { id: string; jobIds: string[] };
    expect(res.headers.get('location')).toBe(`/v1/experiments/${id}`);

    // Follow it to the end, dropping the connection once on the way and resuming with Last-Event-ID.
    const first = await readExperimentEvents(id, { until: (e) => e.event === 'epoch' });
    const rest = await readExperimentEvents(id, { lastEventId: first.at(-1)!.id });
    const events = [...first, ...rest];
    expect(events[0]!.event).toBe('queued');
    const last = events.at(-1)!;
    expect(last.event).toBe('completed');
    expect(last.data.jobId).toBeUndefined();
    const ids = events.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const jobId of jobIds) {
      const own = events.filter((e) => e.data.jobId === jobId);
      expect(own.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)).toEqual([1, 2, 3, 4]);
      expect(own.at(-1)!.event).toBe('completed');
    }

    const exp = (await api(stack.base, 'GET', `/experiments/${id}`)).body;
    expect(exp).toMatchObject({ status: 'succeeded', counts: { succeeded: 6, queued: 0, running: 0, failed: 0, cancelled: 0 } });
    expect(exp.summary).toEqual(last.data.summary);
    const [none, bn] = exp.summary.variants;
    expect(none.verdict).toBe('model.batchNorm=none is a baseline');
    expect(bn.baseline).toBe(0);

    for (const v of exp.summary.variants) {
      type Child = { job: any; epochs: Array<{ epoch: number; val: { accuracy: number } }> };
      const children: Child[] = await Promise.all((v.jobIds as string[]).map(async (jobId) => ({
        job: (await api(stack.base, 'GET', `/jobs/${jobId}`)).body,
        epochs: (await api(stack.base, 'GET', `/jobs/${jobId}/metrics`)).body.epochs,
      })));
      children.forEach(({ job }, i) => {
        expect(job.experiment).toEqual({ id, variant: v.index, seed: MOONS.seeds[i] });
        expect(job.spec.training.seed).toBe(MOONS.seeds[i]);
        expect(job.spec.model.batchNorm).toBe(v.values['model.batchNorm']);
      });
      const finalVal = children.map((c) => c.job.result.metrics.val.accuracy as number);
      expect(v.finalValAccuracy.mean).toBeCloseTo(mean(finalVal), 12);
      expect(v.finalValAccuracy.sd).toBeCloseTo(sd(finalVal), 12);
      expect(v.finalValAccuracy.min).toBe(Math.min(...finalVal));
      expect(v.finalValAccuracy.max).toBe(Math.max(...finalVal));
      // t(0.975, 2) = 4.302653
      expect(v.finalValAccuracy.ci95[1] - v.finalValAccuracy.mean).toBeCloseTo(4.302653 * sd(finalVal) / Math.sqrt(3), 5);
      const finalTest = children.map((c) => c.job.result.metrics.test.accuracy as number);
      expect(v.finalTestAccuracy.mean).toBeCloseTo(mean(finalTest), 12);
      const seconds = children.map((c) => c.job.result.metrics.trainingSeconds as number);
      expect(v.trainingSeconds.mean).toBeCloseTo(mean(seconds), 12);
      const toTarget = children.map((c) => c.epochs.find((e) => e.val.accuracy >= 0.85)?.epoch ?? null);
      expect(v.runs.map((r: any) => r.epochsToTarget)).toEqual(toTarget);
      const reached = toTarget.filter((e): e is number => e !== null);
      expect(v.epochsToTarget).toMatchObject({ reached: reached.length, runs: 3 });
      if (reached.length > 0) expect(v.epochsToTarget.stats.mean).toBeCloseTo(mean(reached), 12);
      const best = children.map((c) => Math.max(...c.epochs.map((e) => e.val.accuracy)));
      expect(v.bestValAccuracy.mean).toBeCloseTo(mean(best), 12);
      // The gap comes from the jobs' metrics.gap when they have it, and is never made up.
      const gaps = children.map((c) => c.job.result.metrics.gap?.accuracy).filter((g) => typeof g === 'number');
      expect(v.gap.n).toBe(gaps.length);
    }
    const d = bn.comparison.finalAccuracy;
    expect(d.metric).toBe('val.accuracy');
    expect(d.difference).toBeCloseTo(bn.finalValAccuracy.mean - none.finalValAccuracy.mean, 12);
    expect(bn.verdict).toContain('model.batchNorm=before');

    // Long-format metrics: one row per run per epoch, grid values and seed as columns.
    const csv = (await api(stack.base, 'GET', `/experiments/${id}/metrics?format=csv`)).body as string;
    const lines = csv.trim().split('\n');
    expect(lines[0]).toBe('job_id,variant,model.batchNorm,seed,epoch,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,lr,seconds,gap_accuracy');
    expect(lines).toHaveLength(1 + 6 * 4);
    expect(lines[1]!.split(',').slice(0, 5)).toEqual([jobIds[0], '0', 'none', '1', '1']);
    const json = (await api(stack.base, 'GET', `/experiments/${id}/metrics`)).body;
    expect(json.rows).toHaveLength(24);
    expect(json.paths).toEqual(['model.batchNorm']);

    // `normlab experiment` (in-process, worker threads) gives the same summary: same specs and seeds, same weights.
    const dir = mkdtempSync(path.join(tmpdir(), 'normlab-exp-'));
    try {
      writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(MOONS));
      const cli = path.resolve(import.meta.dirname, '../../bin/normlab.js');
      const { stdout } = await promisify(execFile)(process.execPath, [cli, 'experiment', path.join(dir, 'spec.json'), '--json', '--threads', '2']);
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(lines.filter((l) => l.type === 'epoch')).toHaveLength(24);
      const local = lines.at(-1).summary;
      const strip = (v: any) => ({ ...v, jobIds: undefined, trainingSeconds: undefined, runs: v.runs.map((r: any) => ({ ...r, jobId: undefined, trainingSeconds: undefined })) });
      expect(local.variants.map(strip)).toEqual(exp.summary.variants.map(strip));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // A child's model is an ordinary model, with its predict route.
    const predict = await api(stack.base, 'POST', `/models/${jobIds[0]}/predict`, { instances: [[0.5, 0.2]] });
    expect(predict.status).toBe(200);

    const list = (await api(stack.base, 'GET', '/experiments?limit=10')).body;
    expect(list.items.map((e: any) => e.id)).toContain(id);
    expect((await api(stack.base, 'DELETE', `/experiments/${id}`)).status).toBe(409);
  }, 120_000);

  it('cancels every unfinished child of an experiment mid-run and ends cancelled with the summary of what finished', async () => {
    const res = await api(stack.base, 'POST', '/experiments', {
      base: { dataset: { id: 'spirals', size: 20_000 }, model: { hidden: [64, 64] }, training: { epochs: 30, batchSize: 16 } },
      grid: { 'model.batchNorm': ['none', 'before'] }, seeds: [1, 2],
    });
    expect(res.status).toBe(202);
    const { id, jobIds } = res.body;
    await readExperimentEvents(id, { until: (e) => e.event === 'epoch' });
    const del = await api(stack.base, 'DELETE', `/experiments/${id}`);
    expect(del.status).toBe(202);
    const events = await readExperimentEvents(id);
    expect(events.at(-1)!.event).toBe('cancelled');
    const summary = events.at(-1)!.data.summary;
    expect(summary.complete).toBe(true);
    expect(summary.counts.cancelled).toBe(4);
    const exp = (await api(stack.base, 'GET', `/experiments/${id}`)).body;
    expect(exp.status).toBe('cancelled');
    for (const jobId of jobIds) expect((await api(stack.base, 'GET', `/jobs/${jobId}`)).body.status).toBe('cancelled');
  }, 120_000);
});

describe('a failed child is a result', () => {
  it('a diverged run is counted as diverged and the experiment still succeeds with a complete summary', async () => {
    const res = await api(stack.base, 'POST', '/experiments', {
      base: { dataset: { id: 'moons', size: 300 }, model: { hidden: [16, 16], batchNorm: 'none', activation: 'leaky_relu' }, training: { epochs: 3 } },
      grid: { 'training.optimizer.learningRate': [0.1, 1000] }, seeds: [1, 2],
    });
    expect(res.status).toBe(202);
    const events = await readExperimentEvents(res.body.id);
    expect(events.at(-1)!.event).toBe('completed');
    expect(events.filter((e) => e.event === 'failed').map((e) => e.data.code)).toEqual(['DIVERGED', 'DIVERGED']);
    const { summary, status } = (await api(stack.base, 'GET', `/experiments/${res.body.id}`)).body;
    expect(status).toBe('succeeded');
    expect(summary).toMatchObject({ complete: true, counts: { succeeded: 2, failed: 2 } });
    const high = summary.variants[1];
    expect(high).toMatchObject({ diverged: 2, counts: { failed: 2 } });
    expect(high.runs.map((r: any) => r.error.code)).toEqual(['DIVERGED', 'DIVERGED']);
    expect(high.verdict).toContain('diverged: 2 of 2 seeds for training.optimizer.learningRate=1000, 0 of 2 for 0.1');
  }, 60_000);
});

describe('templates', () => {
  it('lists the nine templates with their question, claim and size', async () => {
    const { body } = await api(stack.base, 'GET', '/experiments/templates');
    expect(body.items.map((t: any) => t.id)).toEqual(['bn-epochs', 'bn-placement', 'learning-rate', 'dropout', 'init', 'small-batch', 'input-bn', 'inference-stats', 'rnn-bn']);
    for (const t of body.items) {
      expect(t.question).toMatch(/\?$/);
      expect(t.jobs).toBe(t.variants * 3);
    }
  });
});

describe('bad input', () => {
  const post = (body: unknown) => api(stack.base, 'POST', '/experiments', body);
  const base = MOONS.base;

  it('names the unknown grid path', async () => {
    const res = await post({ base, grid: { 'model.batchNrom': ['none', 'before'] } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_EXPERIMENT');
    expect(res.body.error.details.issues[0].path).toBe('/grid/model.batchNrom');
    expect(res.body.error.message).toContain('/grid/model.batchNrom');
  });

  it('names the variant and the field of a value the job schema rejects', async () => {
    const res = await post({ base, grid: { 'model.dropout': [0.2, 2] } });
    expect(res.status).toBe(400);
    expect(res.body.error.details.issues[0]).toMatchObject({ path: '/model/dropout', variant: 1, values: { 'model.dropout': 2 } });
    expect(res.body.error.message).toContain('variant 1 (model.dropout=2): /model/dropout');
  });

  it('names the variant whose job the dataset\'s shape rejects (dataset.sequence.steps that does not divide its features)', async () => {
    const res = await post({ base, grid: { 'dataset.sequence': [{ steps: 2 }, { steps: 3 }] }, seeds: [1] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_SPEC');
    expect(res.body.error.message).toMatch(/^variant 1 \(.*\): invalid job spec: \/dataset\/sequence\/steps: 3 does not divide the 2 features of a row of moons/);
    expect(res.body.error.details).toMatchObject({ variant: 1, issues: [{ path: '/dataset/sequence/steps', allowed: [1, 2] }] });
  });

  it('refuses empty axes, duplicate variants, non-integer seeds, an unknown target metric', async () => {
    for (const [body, path] of [
      [{ base, grid: { 'model.batchNorm': [] } }, '/grid/model.batchNorm'],
      [{ base, grid: { 'model.batchNorm': ['none', 'none'] } }, '/grid/model.batchNorm/1'],
      [{ base, grid: { 'training.optimizer': [{ type: 'sgd' }, { type: 'sgd', learningRate: 0.1 }] } }, '/grid'],
      [{ base, grid: {}, seeds: [1, 1.5] }, '/seeds/1'],
      [{ base, grid: {}, seeds: ['1'] }, '/seeds/0'],
      [{ base, grid: {}, target: { metric: 'val.auc', value: 0.9 } }, '/target/metric'],
      [{ template: 'bn-epoch' }, '/template'],
      [{ base, grid: { 'model.batchNorm': ['none'] }, extra: 1 }, '/extra'],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.details.issues.map((i: any) => i.path), JSON.stringify(body)).toContain(path);
    }
  });

  it('refuses an experiment over MAX_EXPERIMENT_JOBS with LIMIT_EXCEEDED naming the setting, and a variant over a job limit', async () => {
    const res = await post({ base, grid: { 'model.batchNorm': ['none', 'before', 'after'], 'model.dropout': [0, 0.1] }, seeds: [1, 2, 3] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('LIMIT_EXCEEDED');
    expect(res.body.error.details.issues[0]).toMatchObject({ setting: 'MAX_EXPERIMENT_JOBS', limit: 12, value: 18 });
    const big = await post({ base, grid: { 'training.epochs': [2, 5000] }, seeds: [1] });
    expect(big.status).toBe(400);
    expect(big.body.error.code).toBe('LIMIT_EXCEEDED');
    expect(big.body.error.message).toMatch(/^variant 1 \(training\.epochs=5000\): \/training\/epochs/);
    expect(big.body.error.details).toMatchObject({ variant: 1 });
  });

  it('keeps experiments to their tenant and 404s an unknown one', async () => {
    const res = await api(stack.base, 'GET', '/experiments/exp_000000000000000000000');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('EXPERIMENT_NOT_FOUND');
  });
});
