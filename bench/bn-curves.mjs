// Fashion-MNIST, MLP 784-256-256-10, SGD lr 0.01 without momentum, batch 64,
// 10 epochs, seed fixed: test accuracy per epoch for batchNorm none/before/after.
// Prints one JSON object per epoch, then a summary line per mode.
// Usage: node bench/bn-curves.mjs [--epochs N] [--modes none,before,after]
import { parseArgs } from 'node:util';
import { kernelsInfo } from '../dist/src/core/kernels/index.js';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset } from '../dist/src/datasets/index.js';

const { values } = parseArgs({ options: { epochs: { type: 'string', default: '10' }, modes: { type: 'string', default: 'none,before,after' } } });
const target = 0.83;
for (const mode of values.modes.split(',')) {
  const spec = resolveSpec({
    name: `bn-curves ${mode}`,
    dataset: { id: 'fashion-mnist', validationSplit: 0, preprocess: 'scale' },
    model: { hidden: [256, 256], batchNorm: mode },
    training: { epochs: Number(values.epochs), batchSize: 64, seed: 42, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0 } },
  });
  const ds = await loadBuiltinDataset(spec.dataset, spec.training.seed);
  let reached = null;
  await train(spec, ds, {
    onEvent: (e) => {
      if (e.type !== 'epoch') return;
      if (reached === null && e.test.accuracy >= target) reached = e.epoch;
      console.log(JSON.stringify({ bench: 'bn-curves', peer: 'normlab', mode, epoch: e.epoch, testAccuracy: round(e.test.accuracy), trainLoss: round(e.train.loss), seconds: e.seconds, samplesPerSec: Math.round(ds.train.n / e.seconds) }));
    },
  });
  console.log(JSON.stringify({ bench: 'bn-curves', peer: 'normlab', mode, summary: true, target, epochsToTarget: reached, ...kernelsInfo() }));
}

function round(x) {
  return Math.round(x * 1e4) / 1e4;
}
