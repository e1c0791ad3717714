// Which frozen statistics should a model keep? Per case, the same training
// (same spec and seed) ending with inferenceStats moving, population and auto:
// validation and test accuracy, the warnings, and the train/inference gap
// per epoch. Then the cost of the gap: its batch-statistics pass over the
// Fashion-MNIST validation rows against a training epoch.
// Cases: a linearly separable CSV (1000 rows, 2 features) 5 and 50 epochs,
// the README's spirals example at 5 and 20 epochs, Fashion-MNIST 10 epochs,
// every one with default settings otherwise.
// Usage: node bench/bn-stats.mjs [--cases separable-5,spirals-5,...] [--gap-rounds 5]
import { parseArgs } from 'node:util';
import { miniBatchMetrics } from '../dist/src/core/diagnostics.js';
import { getKernels, kernelsInfo } from '../dist/src/core/kernels/index.js';
import { expandLayers } from '../dist/src/core/layers.js';
import { Sequential } from '../dist/src/core/model.js';
import { createRng } from '../dist/src/core/rng.js';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset, parseCsvDataset } from '../dist/src/datasets/index.js';

const CASES = {
  'separable-5': { spec: { dataset: { id: 'separable' }, training: { epochs: 5 } }, csv: true },
  'separable-50': { spec: { dataset: { id: 'separable' }, training: { epochs: 50 } }, csv: true },
  'spirals-5': { spec: { dataset: { id: 'spirals', size: 2000 }, model: { hidden: [64, 64], batchNorm: 'before' }, training: { epochs: 5 } } },
  'spirals-20': { spec: { dataset: { id: 'spirals', size: 2000 }, model: { hidden: [64, 64], batchNorm: 'before' }, training: { epochs: 20 } } },
  'fashion-10': { spec: { dataset: { id: 'fashion-mnist' }, training: { epochs: 10 } } },
};
const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: Object.keys(CASES).join(',') },
    stats: { type: 'string', default: 'moving,population,auto' },
    'gap-rounds': { type: 'string', default: '5' },
  },
});

/** x1 + x2 > 0, uniform in [-1, 1]², from a fixed LCG: the same file every run. */
function separableCsv(rows = 1000) {
  let s = 12345;
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const lines = ['x1,x2,label'];
  for (let i = 0; i < rows; i++) {
    const a = next(), b = next();
    lines.push(`${a.toFixed(4)},${b.toFixed(4)},${a + b > 0 ? 1 : 0}`);
  }
  return lines.join('\n');
}

const pct = (x) => (x === null || x === undefined ? null : Math.round(x * 1e4) / 1e4);
let fashionEpochSeconds = null;
for (const name of values.cases.split(',')) {
  const c = CASES[name];
  const results = {};
  for (const stats of values.stats.split(',')) {
    const spec = resolveSpec({ ...c.spec, batchNorm: { inferenceStats: stats } });
    const ds = c.csv ? parseCsvDataset(separableCsv(), { id: 'separable', name: 'separable' }) : await loadBuiltinDataset(spec.dataset, spec.training.seed);
    const warnings = [];
    let lag = null;
    const result = await train(spec, ds, {
      onEvent: (e) => {
        if (e.type !== 'warning') return;
        warnings.push(e.code);
        if (e.code === 'BN_STATS_LAG') lag = e.details;
      },
    });
    // The comparison made at the end of every run (the same whatever inferenceStats keeps).
    if (lag) results.comparedOn = { split: lag.split, moving: lag.moving, population: lag.population };
    if (stats === values.stats.split(',')[0]) {
      for (const e of result.history) {
        console.log(JSON.stringify({
          bench: 'bn-stats', case: name, epoch: e.epoch, train: pct(e.train.accuracy), val: pct(e.val?.accuracy),
          gapSplit: e.gap.split, gapBatch: pct(e.gap.batch.accuracy), gapFrozen: pct(e.gap.frozen.accuracy), gap: pct(e.gap.accuracy), seconds: e.seconds,
        }));
      }
      if (name === 'fashion-10') fashionEpochSeconds = result.history.map((e) => e.seconds).sort((a, b) => a - b)[4];
    }
    results[stats] = {
      kept: result.metrics.inferenceStats, val: pct(result.metrics.val?.accuracy), valLoss: pct(result.metrics.val?.loss),
      test: pct(result.metrics.test?.accuracy), warnings,
    };
  }
  console.log(JSON.stringify({ bench: 'bn-stats', case: name, summary: true, ...results }));
}

// The gap's extra work per epoch: one forward pass with batch statistics over the validation rows
// (the frozen side is the epoch's validation evaluation, which is there anyway).
if (values.cases.includes('fashion-10')) {
  const spec = resolveSpec({ dataset: { id: 'fashion-mnist' } });
  const ds = await loadBuiltinDataset(spec.dataset, spec.training.seed);
  const nVal = Math.floor(ds.train.n * spec.dataset.validationSplit);
  const f = ds.features;
  const rows = { x: new Float32Array(ds.train.x.subarray(0, nVal * f)).map((v) => v / 255), y: ds.train.y.subarray(0, nVal), n: nVal };
  const layers = expandLayers(spec.model, ds.inputShape, ds.classes);
  const model = new Sequential(layers, getKernels(), 1024, f, spec.batchNorm, createRng(1));
  model.initialize('he', createRng(2));
  const times = [];
  for (let r = 0; r < Number(values['gap-rounds']) + 1; r++) {
    const t0 = performance.now();
    miniBatchMetrics(model, rows, null, spec.training.batchSize, ds.classes, false);
    if (r > 0) times.push((performance.now() - t0) / 1000);
  }
  const gapSeconds = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  console.log(JSON.stringify({
    bench: 'bn-stats', gapCost: true, valRows: nVal, gapSeconds: Math.round(gapSeconds * 1e4) / 1e4, trainingEpochSeconds: fashionEpochSeconds,
    overhead: fashionEpochSeconds ? Math.round((gapSeconds / fashionEpochSeconds) * 1e4) / 1e4 : null, ...kernelsInfo(),
  }));
}
