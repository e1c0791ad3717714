// Training throughput on Fashion-MNIST, MLP 784-256-256-10, SGD momentum 0.9,
// single thread: samples/s per epoch (median of 3 epochs after a warm-up epoch)
// for batchNorm none/before/after at batch 32/128/512. One JSON line per run.
// Usage: node bench/train-throughput.mjs [--batches 32,128,512] [--modes none,before,after] [--epochs 3]
import { parseArgs } from 'node:util';
import { kernelsInfo } from '../dist/src/core/kernels/index.js';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset } from '../dist/src/datasets/index.js';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '32,128,512' },
    modes: { type: 'string', default: 'none,before,after' },
    epochs: { type: 'string', default: '3' },
  },
});
const measured = Number(values.epochs);
for (const batchSize of values.batches.split(',').map(Number)) {
  for (const mode of values.modes.split(',')) {
    const spec = resolveSpec({
      dataset: { id: 'fashion-mnist', validationSplit: 0 },
      model: { hidden: [256, 256], batchNorm: mode },
      training: { epochs: 1 + measured, batchSize, seed: 42, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 } },
    });
    const ds = await loadBuiltinDataset(spec.dataset, 42);
    const rates = [];
    await train(spec, ds, { onEvent: (e) => { if (e.type === 'epoch' && e.epoch > 1) rates.push(ds.train.n / e.seconds); } });
    rates.sort((a, b) => a - b);
    console.log(JSON.stringify({
      bench: 'train-throughput', peer: 'normlab', mode, batch: batchSize,
      samplesPerSec: Math.round(rates[Math.floor(rates.length / 2)]), runs: rates.map(Math.round), ...kernelsInfo(),
    }));
  }
}
