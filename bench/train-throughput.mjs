// Training throughput on Fashion-MNIST, MLP 784-256-256-10, SGD momentum 0.9,
// single thread: samples/s per epoch (median of 3 epochs after a warm-up epoch)
// for batchNorm none/before/after at batch 32/128/512. One JSON line per run.
// --gemm openblas or builtin runs every multiply on that gemm (by default the
// direct AVX-512 kernel takes the small-batch ones where the CPU has it).
// `gcs` counts the garbage collections during the measured epochs (training and
// their test evaluations): the step loop allocates nothing, so it stays near 0.
// Usage: node bench/train-throughput.mjs [--batches 32,128,512] [--modes none,before,after] [--epochs 3] [--gemm openblas|builtin]
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { kernelsInfo } from '../dist/src/core/kernels/index.js';
import { loadNativeKernels } from '../dist/src/core/kernels/native.js';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset } from '../dist/src/datasets/index.js';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '32,128,512' },
    modes: { type: 'string', default: 'none,before,after' },
    epochs: { type: 'string', default: '3' },
    gemm: { type: 'string' },
  },
});
const kernels = values.gemm ? loadNativeKernels({ gemm: values.gemm }) : undefined;
if (kernels === null) throw new Error(`the native kernels with the ${values.gemm} gemm did not load`);
const info = kernels ? { kernels: kernels.name, gemm: kernels.gemmBackend } : kernelsInfo();
const measured = Number(values.epochs);
let gcs = 0;
new PerformanceObserver((list) => { gcs += list.getEntries().length; }).observe({ entryTypes: ['gc'] });
for (const batchSize of values.batches.split(',').map(Number)) {
  for (const mode of values.modes.split(',')) {
    const spec = resolveSpec({
      dataset: { id: 'fashion-mnist', validationSplit: 0 },
      model: { hidden: [256, 256], batchNorm: mode },
      training: { epochs: 1 + measured, batchSize, seed: 42, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 } },
    });
    const ds = await loadBuiltinDataset(spec.dataset, 42);
    const rates = [];
    let gcsAtStart = 0;
    await train(spec, ds, {
      kernels,
      onEvent: (e) => {
        if (e.type === 'epoch' && e.epoch === 1) gcsAtStart = gcs;
        if (e.type === 'epoch' && e.epoch > 1) rates.push(ds.train.n / e.seconds);
      },
    });
    rates.sort((a, b) => a - b);
    console.log(JSON.stringify({
      bench: 'train-throughput', peer: 'normlab', mode, batch: batchSize,
      samplesPerSec: Math.round(rates[Math.floor(rates.length / 2)]), runs: rates.map(Math.round), gcs: gcs - gcsAtStart, ...info,
    }));
  }
}
