import { describe as group, expect, it } from 'vitest';
import { resolveExperiment, specHasPath } from '../../src/experiments/grid.js';
import { ExperimentError, ExperimentTooLargeError } from '../../src/experiments/spec.js';
import { describe, welch } from '../../src/experiments/stats.js';
import { summarize, type RunInput } from '../../src/experiments/summary.js';
import { TEMPLATES } from '../../src/experiments/templates.js';

const BASE = { dataset: { id: 'moons', size: 200 }, model: { hidden: [8] }, training: { epochs: 3 } };

function issuesOf(input: unknown, maxJobs = 64): Array<{ path: string; message: string }> {
  try {
    resolveExperiment(input, maxJobs);
  } catch (err) {
    if (err instanceof ExperimentError) return err.issues;
    throw err;
  }
  throw new Error('expected an ExperimentError');
}

group('grid expansion', () => {
  it('expands the cartesian product, first axis slowest, one run per seed with training.seed set', () => {
    const x = resolveExperiment({
      base: BASE, seeds: [1, 2],
      grid: { 'model.batchNorm': ['none', 'before'], 'training.optimizer.learningRate': [0.01, 0.1] },
    }, 64);
    expect(x.variants.map((v) => v.label)).toEqual([
      'model.batchNorm=none, training.optimizer.learningRate=0.01', 'model.batchNorm=none, training.optimizer.learningRate=0.1',
      'model.batchNorm=before, training.optimizer.learningRate=0.01', 'model.batchNorm=before, training.optimizer.learningRate=0.1',
    ]);
    expect(x.variants[3]!.spec.model.batchNorm).toBe('before');
    expect(x.variants[3]!.spec.training.optimizer.learningRate).toBe(0.1);
    expect(x.runs).toHaveLength(8);
    expect(x.runs.map((r) => [r.variant, r.seed, r.spec.training.seed])).toEqual([[0, 1, 1], [0, 2, 2], [1, 1, 1], [1, 2, 2], [2, 1, 1], [2, 2, 2], [3, 1, 1], [3, 2, 2]]);
    // Default baseline: the first variant, for everyone.
    expect(x.variants.map((v) => v.baseline)).toEqual([0, 0, 0, 0]);
  });

  it('a partial baseline compares each variant with the baseline value at its own other values, and the verdict names them', () => {
    const x = resolveExperiment({
      base: BASE, grid: { 'model.batchNorm': ['none', 'before'], 'training.optimizer.learningRate': [0.01, 0.1] },
      baseline: { 'model.batchNorm': 'none' },
    }, 64);
    expect(x.variants.map((v) => v.baseline)).toEqual([0, 1, 0, 1]);
    const runs = x.runs.map((r, i) => ({
      jobId: `j${i}`, variant: r.variant, seed: r.seed, status: 'succeeded' as const, history: [], error: null,
      final: { val: { loss: 1, accuracy: 0.5 + r.variant / 10 + r.seed / 100 }, test: null, trainingSeconds: 1 },
    }));
    expect(summarize(x.variants, runs, null).variants[3]!.verdict).toBe(
      // sd 0.01 each, df 4: half-width t(0.975, 4)·sqrt(2·1e-4/3) = 2.776445 × 0.008165 = 0.0227
      'model.batchNorm=before vs none at training.optimizer.learningRate=0.1: final val.accuracy 0.820 vs 0.620 (+0.200, 95% CI +0.177 to +0.223: higher)');
  });

  it('a comma-joined axis varies its paths together', () => {
    const x = resolveExperiment({
      base: BASE, seeds: [1],
      grid: { 'model.batchNorm,batchNorm.renorm': [['none', null], ['before', { rMax: 2 }]] },
      baseline: { 'model.batchNorm,batchNorm.renorm': ['before', { rMax: 2 }] },
    }, 64);
    expect(x.variants[1]!.spec.batchNorm.renorm).toEqual({ rMax: 2, dMax: 5, warmupSteps: 5000 });
    expect(x.variants[0]!.spec.batchNorm.renorm).toBeNull();
    expect(x.variants.map((v) => v.baseline)).toEqual([1, 1]);
  });

  it('knows the spec paths, through unions', () => {
    expect(specHasPath('training.optimizer.beta1')).toBe(true);
    expect(specHasPath('batchNorm.renorm.rMax')).toBe(true);
    expect(specHasPath('model.batchNrom')).toBe(false);
    expect(specHasPath('training.optimizer.learningRate.x')).toBe(false);
  });

  it('bad input names the field', () => {
    expect(issuesOf({ base: BASE, grid: { 'model.batchNrom': ['none'] } })).toEqual([
      { path: '/grid/model.batchNrom', message: 'model.batchNrom is not a field of the job spec' },
    ]);
    const bad = issuesOf({ base: BASE, grid: { 'model.dropout': [0, 1.5] } });
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatchObject({ path: '/model/dropout', variant: 1 });
    expect(bad[0]!.message).toMatch(/^variant 1 \(model\.dropout=1\.5\): \/model\/dropout: /);
    expect(issuesOf({ base: BASE, grid: { 'model.dropout': [] } })[0]).toEqual({ path: '/grid/model.dropout', message: 'needs at least one value' });
    expect(issuesOf({ base: BASE, grid: { 'model.dropout': [0.1, 0.1] } })[0]!.path).toBe('/grid/model.dropout/1');
    // Different grid values, same job: sgd without momentum has momentum 0.
    expect(issuesOf({ base: BASE, grid: { 'training.optimizer': [{ type: 'sgd' }, { type: 'sgd', momentum: 0 }] } })[0]!.message)
      .toMatch(/^variants 0 \(.*\) and 1 \(.*\) are the same job spec$/);
    expect(issuesOf({ base: BASE, grid: {}, seeds: [1, 2.5] })[0]!.path).toBe('/seeds/1');
    expect(issuesOf({ base: BASE, grid: {}, seeds: [1, 1] })[0]).toEqual({ path: '/seeds/1', message: 'duplicates seed 1 (seeds/0)' });
    expect(issuesOf({ base: BASE, grid: {}, seeds: [] })[0]!.path).toBe('/seeds');
    expect(issuesOf({ base: BASE, grid: {}, target: { metric: 'val.acc', value: 0.9 } })[0]!.path).toBe('/target/metric');
    expect(issuesOf({ base: BASE, grid: { 'model.batchNorm': ['none'] }, baseline: { 'model.dropout': 0 } })[0]!.path).toBe('/baseline/model.dropout');
    expect(issuesOf({ base: BASE, grid: { 'training.seed': [1] } })[0]!.path).toBe('/grid/training.seed');
    expect(issuesOf({ template: 'nope' })[0]!.path).toBe('/template');
  });

  it('refuses more runs than the limit before building any variant', () => {
    expect(() => resolveExperiment({ base: BASE, grid: { 'training.epochs': [1, 2, 3] }, seeds: [1, 2, 3] }, 8))
      .toThrow(new ExperimentTooLargeError(9, 8, 3, 3));
  });

  it('every template resolves within the default limit, small and full', () => {
    for (const t of TEMPLATES) {
      for (const full of [false, true]) {
        const x = resolveExperiment({ template: t.id, overrides: { full } }, 64);
        expect(x.runs.length, t.id).toBeLessThanOrEqual(64);
        expect(x.seeds).toEqual([1, 2, 3]);
        if (!full && x.runs[0]!.spec.dataset.id === 'fashion-mnist') expect(x.runs[0]!.spec.dataset.limit).not.toBeNull();
      }
    }
    const rnn = resolveExperiment({ template: 'rnn-bn', overrides: { full: true } }, 64);
    expect(rnn.variants.map((v) => v.spec.model)).toEqual(['none', 'sequence', 'recurrent'].map((batchNorm) =>
      expect.objectContaining({ architecture: 'rnn', cell: 'lstm', hidden: [128], batchNorm })));
    expect(rnn.runs[0]!.spec).toMatchObject({
      dataset: { id: 'fashion-mnist', limit: null, sequence: null },
      training: { epochs: 3, batchSize: 128, targetAccuracy: 0.85, optimizer: { type: 'adam', learningRate: 0.001 } },
    });
    expect(rnn.target).toEqual({ metric: 'test.accuracy', value: 0.85 });
    const x = resolveExperiment({ template: 'bn-epochs', overrides: { seeds: [7], base: { training: { epochs: 2 } } } }, 64);
    expect(x.runs.map((r) => [r.seed, r.spec.training.epochs, r.spec.training.batchSize])).toEqual([[7, 2, 64], [7, 2, 64]]);
  });
});

group('statistics', () => {
  it('mean, sample sd, range and the Student-t interval, by hand', () => {
    const s = describe([4, 5, 6]);
    // sd = sqrt(((−1)² + 0 + 1²)/2) = 1; t(0.975, 2) = 0.95/sqrt(2·0.975·0.025) = 4.302653 (df 2 closed form); half = 4.302653/√3 = 2.484138
    expect(s).toMatchObject({ n: 3, mean: 5, sd: 1, min: 4, max: 6 });
    expect(s.ci95![0]).toBeCloseTo(5 - 2.484138, 5);
    expect(s.ci95![1]).toBeCloseTo(5 + 2.484138, 5);
    expect(describe([0.7])).toEqual({ n: 1, mean: 0.7, sd: null, min: 0.7, max: 0.7, ci95: null });
    expect(describe([])).toMatchObject({ n: 0, mean: null });
    // t(0.975, 10) = 2.228139 (tables): values 0..10, mean 5, sd = sqrt(11) = 3.316625
    const t = describe(Array.from({ length: 11 }, (_, i) => i));
    expect(t.ci95![1] - 5).toBeCloseTo(2.228139 * Math.sqrt(11) / Math.sqrt(11), 5);
  });

  it("Welch's interval: difference, Welch–Satterthwaite df, t between its integer neighbours", () => {
    // a: mean 2, var 1; b: mean 6, var 4; se² = 1/3 + 4/3 = 5/3; df = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 50/17
    const d = welch([1, 2, 3], [4, 6, 8])!;
    expect(d.difference).toBe(-4);
    expect(d.df).toBeCloseTo(50 / 17, 12);
    const half = (d.ci95[1] - d.ci95[0]) / 2;
    const t = half / Math.sqrt(5 / 3);
    expect(t).toBeLessThan(4.302653); // t(0.975, 2)
    expect(t).toBeGreaterThan(3.182446); // t(0.975, 3)
    expect(d.ci95[0] + d.ci95[1]).toBeCloseTo(-8, 12);
    // Equal sizes and variances: df = 2(n − 1) = 4, t(0.975, 4) = 2.776445; se = sqrt(1/3 + 1/3)
    const e = welch([1, 2, 3], [2, 3, 4])!;
    expect(e.df).toBeCloseTo(4, 12);
    expect(e.ci95[1]).toBeCloseTo(-1 + 2.776445 * Math.sqrt(2 / 3), 5);
    expect(welch([1], [2, 3])).toBeNull();
  });
});

group('summary and verdicts', () => {
  const x = resolveExperiment({
    base: BASE, seeds: [1, 2, 3], grid: { 'model.batchNorm': ['none', 'before'] },
    target: { metric: 'val.accuracy', value: 0.8 },
  }, 64);
  /** A run whose validation accuracy per epoch is `curve`. */
  const run = (variant: number, seed: number, curve: number[], extra: Partial<RunInput> = {}): RunInput => ({
    jobId: `job_${variant}_${seed}`, variant, seed, status: 'succeeded',
    history: curve.map((a, i) => ({ epoch: i + 1, train: { loss: 1, accuracy: a }, val: { loss: 1, accuracy: a }, test: null })),
    final: { val: { loss: 1, accuracy: curve.at(-1)! }, test: null, trainingSeconds: 1 },
    error: null, ...extra,
  });

  it('counts runs that never reach the target, compares by seed and states the ratio', () => {
    const s = summarize(x.variants, [
      run(0, 1, [0.5, 0.6, 0.7, 0.8, 0.82]), run(0, 2, [0.5, 0.6, 0.7, 0.75, 0.81]), run(0, 3, [0.5, 0.6, 0.7, 0.79, 0.8]),
      run(1, 1, [0.7, 0.85, 0.86, 0.87, 0.88]), run(1, 2, [0.81, 0.85, 0.86, 0.87, 0.9]), run(1, 3, [0.7, 0.8, 0.86, 0.87, 0.89]),
    ], x.target);
    const [none, bn] = s.variants;
    expect(none!.epochsToTarget).toMatchObject({ reached: 3, runs: 3, stats: { mean: 14 / 3, min: 4, max: 5 } });
    expect(bn!.epochsToTarget!.stats).toMatchObject({ mean: 5 / 3, min: 1, max: 2 });
    expect(bn!.comparison!.epochsToTarget).toEqual({ ratio: (14 / 3) / (5 / 3), pairs: 3, fewer: 3, more: 0, equal: 0 });
    expect(bn!.bestValAccuracy.mean).toBeCloseTo((0.88 + 0.9 + 0.89) / 3, 12);
    expect(bn!.bestEpoch.mean).toBe(5);
    // final val: bn 0.88 0.9 0.89 (mean 0.89, var 1e-4); none 0.82 0.81 0.8 (mean 0.81, var 1e-4); df 4
    const d = bn!.comparison!.finalAccuracy!;
    expect(d.difference).toBeCloseTo(0.08, 12);
    expect(d.ci95[0]).toBeCloseTo(0.08 - 2.776445 * Math.sqrt(2e-4 / 3), 5);
    expect(bn!.verdict).toBe('model.batchNorm=before reaches val.accuracy 0.8 in 1.7 ± 0.6 epochs vs 4.7 ± 0.6 epochs for none (2.8× fewer, 3 of 3 seeds); ' +
      'final val.accuracy 0.890 vs 0.810 (+0.080, 95% CI +0.057 to +0.103: higher)');
    expect(none!.verdict).toBe('model.batchNorm=none is a baseline');
    expect(s.complete).toBe(true);
    expect(bn!.gap).toMatchObject({ n: 0, mean: null });
  });

  it('says so when seeds disagree, when runs never reach the target and when the interval spans zero', () => {
    const s = summarize(x.variants, [
      run(0, 1, [0.5, 0.81]), run(0, 2, [0.85, 0.86]), run(0, 3, [0.5, 0.6]),
      run(1, 1, [0.81, 0.82]), run(1, 2, [0.5, 0.84]), run(1, 3, [0.5, 0.5], { status: 'failed', final: null, error: { code: 'DIVERGED', message: 'nan' } }),
    ], x.target);
    const bn = s.variants[1]!;
    expect(s.variants[0]!.epochsToTarget).toMatchObject({ reached: 2, runs: 3 });
    expect(bn.epochsToTarget).toMatchObject({ reached: 2, runs: 3 });
    // seed 1: 1 < 2; seed 2: 2 > 1; seed 3: neither reaches.
    expect(bn.comparison!.epochsToTarget).toEqual({ ratio: null, pairs: 3, fewer: 1, more: 1, equal: 1 });
    expect(bn.diverged).toBe(1);
    expect(bn.verdict).toContain('seeds disagree: fewer epochs in 1, more in 1, the same in 1 of 3; no winner');
    expect(bn.verdict).toContain('2 of 3 seeds (1.5 ± 0.7 epochs where reached)');
    expect(bn.verdict).toContain('the interval spans zero, no difference shown');
    expect(bn.verdict).toContain('diverged: 1 of 3 seeds for model.batchNorm=before, 0 of 3 for none');
    // Without enough final accuracies there is no interval, and the verdict says why.
    const one = summarize(x.variants, [run(0, 1, [0.5]), run(1, 1, [0.9])], x.target).variants[1]!;
    expect(one.comparison!.finalAccuracy).toBeNull();
    expect(one.verdict).toContain('final accuracy not compared (it needs two seeds of each; seeds with a final accuracy: 1 of 1 for model.batchNorm=before, 1 of 1 for none)');
  });

  it('waits for unfinished runs before a verdict, and reports the gap when the jobs have it', () => {
    const gap = (g: number) => ({ final: { val: { loss: 1, accuracy: 0.8 }, test: null, trainingSeconds: 1, gap: { accuracy: g } } });
    const s = summarize(x.variants, [
      run(0, 1, [0.8]), run(0, 2, [0.8]), run(0, 3, [0.8]),
      run(1, 1, [0.8], gap(0.01)), run(1, 2, [0.8], gap(0.03)), run(1, 3, [], { status: 'running', final: null }),
    ], x.target);
    expect(s.complete).toBe(false);
    expect(s.counts).toEqual({ queued: 0, running: 1, succeeded: 5, failed: 0, cancelled: 0 });
    expect(s.variants[1]!.verdict).toBe('waiting for 1 run of model.batchNorm=before and model.batchNorm=none');
    expect(s.variants[1]!.gap).toMatchObject({ n: 2, mean: 0.02 });
  });
});
