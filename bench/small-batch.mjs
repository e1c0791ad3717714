// Small mini-batches: MLP 784-256-256-10 on Fashion-MNIST with batch size 4,
// no BN vs BN (before) vs BN + batch renormalization, the same epochs and seed.
// Reports per run: test accuracy with the frozen statistics, the training-mode
// accuracy of the last epoch (batch statistics), validation accuracy (frozen),
// and the gap between the two. One JSON line per run.
// Usage: node bench/small-batch.mjs [--epochs 3] [--seed 42] [--only 'BN + renorm']
import { parseArgs } from 'node:util';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset } from '../dist/src/datasets/index.js';

const { values } = parseArgs({
  options: { epochs: { type: 'string', default: '3' }, seed: { type: 'string', default: '42' }, only: { type: 'string' } },
});
const seed = Number(values.seed);
const runs = [
  { name: 'no BN', batchNorm: 'none', renorm: null },
  { name: 'BN', batchNorm: 'before', renorm: null },
  { name: 'BN + renorm', batchNorm: 'before', renorm: { rMax: 3, dMax: 5, warmupSteps: 5000 } },
].filter((run) => values.only === undefined || run.name === values.only);
for (const run of runs) {
  const spec = resolveSpec({
    dataset: { id: 'fashion-mnist', validationSplit: 0.1 },
    model: { hidden: [256, 256], batchNorm: run.batchNorm },
    // The README's figures keep the moving averages (they predate the auto default; bench/bn-stats.mjs compares the two).
    batchNorm: { renorm: run.renorm, inferenceStats: 'moving' },
    training: { epochs: Number(values.epochs), batchSize: 4, seed, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 } },
  });
  const ds = await loadBuiltinDataset(spec.dataset, seed);
  const { history, metrics } = await train(spec, ds);
  const last = history[history.length - 1];
  const round = (x) => Math.round(x * 1e4) / 1e4;
  console.log(JSON.stringify({
    bench: 'small-batch', run: run.name, seed, batch: 4, epochs: history.length,
    testAccuracy: round(metrics.test.accuracy), trainAccuracyBatchStats: round(last.train.accuracy),
    valAccuracyFrozen: round(metrics.val.accuracy), gap: round(last.train.accuracy - metrics.val.accuracy),
    perEpochTest: history.map((h) => round(h.test.accuracy)), seconds: metrics.trainingSeconds,
  }));
}
