// CNN on Fashion-MNIST: conv32-BN-relu-pool, conv64-BN-relu-pool, dense128, dense10,
// batch 128, single thread. Two measurements, one JSON line each:
//   throughput: samples/s over epochs of `--rows` training rows (median of --epochs after a warm-up), with and without BN
//   accuracy:   test accuracy after each of 3 full epochs (Adam, lr 0.001)
// Usage: node bench/cnn.mjs [throughput|accuracy] [--rows 6000] [--epochs 3]
import { parseArgs } from 'node:util';
import { kernelsInfo } from '../dist/src/core/kernels/index.js';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset } from '../dist/src/datasets/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rows: { type: 'string', default: '6000' }, epochs: { type: 'string', default: '3' } },
});
const what = positionals[0] ?? 'throughput';

function layers(bn) {
  const block = (filters) => bn
    ? [{ type: 'conv2d', filters, kernelSize: 3 }, { type: 'batchnorm' }, { type: 'relu' }, { type: 'maxpool2d', size: 2 }]
    : [{ type: 'conv2d', filters, kernelSize: 3 }, { type: 'relu' }, { type: 'maxpool2d', size: 2 }];
  return [...block(32), ...block(64), { type: 'flatten' }, { type: 'dense', units: 128 }, { type: 'relu' }];
}

function spec(bn, training, dataset = {}) {
  return resolveSpec({
    dataset: { id: 'fashion-mnist', validationSplit: 0, ...dataset },
    model: { layers: layers(bn) },
    training: { batchSize: 128, seed: 42, optimizer: { type: 'adam', learningRate: 0.001 }, ...training },
  });
}

if (what === 'throughput') {
  const rows = Number(values.rows);
  for (const bn of [true, false]) {
    const s = spec(bn, { epochs: 1 + Number(values.epochs) }, { limit: rows });
    const ds = await loadBuiltinDataset(s.dataset, 42);
    const rates = [];
    await train(s, { ...ds, test: null }, { onEvent: (e) => { if (e.type === 'epoch' && e.epoch > 1) rates.push(ds.train.n / e.seconds); } });
    rates.sort((a, b) => a - b);
    console.log(JSON.stringify({ bench: 'cnn-throughput', peer: 'normlab', batchNorm: bn, batch: 128, rows,
      samplesPerSec: Math.round(rates[Math.floor(rates.length / 2)]), runs: rates.map(Math.round), ...kernelsInfo() }));
  }
} else {
  const s = spec(true, { epochs: 3 });
  const ds = await loadBuiltinDataset(s.dataset, 42);
  await train(s, ds, {
    onEvent: (e) => {
      if (e.type === 'epoch') {
        console.log(JSON.stringify({ bench: 'cnn-accuracy', peer: 'normlab', epoch: e.epoch, testAccuracy: e.test.accuracy,
          trainLoss: Math.round(e.train.loss * 1e4) / 1e4, seconds: e.seconds, optimizer: 'adam lr 0.001' }));
      }
    },
  });
}
