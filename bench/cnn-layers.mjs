// Where a CNN training step's time goes: the Fashion-MNIST CNN of bench/cnn.mjs
// (conv32-BN-relu-pool, conv64-BN-relu-pool, dense128-relu, dense10), one
// training-mode forward and backward of every layer on a fixed batch, timed
// layer by layer. One JSON line per layer: median ms per call over --reps
// after 3 warm-up steps (an activation fused into the layer before it costs
// nothing of its own), then one line with the sums.
// Usage: npx tsc -p tsconfig.json && node bench/cnn-layers.mjs [--batch 128] [--reps 20]
import { parseArgs } from 'node:util';
import { getKernels, kernelsInfo } from '../dist/src/core/kernels/index.js';
import { expandLayers } from '../dist/src/core/layers.js';
import { Sequential } from '../dist/src/core/model.js';
import { createRng } from '../dist/src/core/rng.js';
import { resolveSpec } from '../dist/src/core/spec.js';

const { values } = parseArgs({
  options: { batch: { type: 'string', default: '128' }, reps: { type: 'string', default: '20' } },
});
const N = Number(values.batch);
const reps = Number(values.reps);

const block = (filters) => [{ type: 'conv2d', filters, kernelSize: 3 }, { type: 'batchnorm' }, { type: 'relu' }, { type: 'maxpool2d', size: 2 }];
const spec = resolveSpec({
  dataset: { id: 'fashion-mnist' },
  model: { layers: [...block(32), ...block(64), { type: 'flatten' }, { type: 'dense', units: 128 }, { type: 'relu' }] },
  training: { batchSize: N, optimizer: { type: 'adam', learningRate: 0.001 } },
});
const infos = expandLayers(spec.model, [1, 28, 28], 10);
const rng = createRng(42);
const model = new Sequential(infos, getKernels(), N, 784, spec.batchNorm, rng);
model.initialize(spec.model.init, rng);

const x = Float32Array.from({ length: N * 784 }, (_, i) => Math.sin(i * 0.37));
const forward = infos.map(() => []);
const backward = infos.map(() => []);
for (let r = 0; r < reps + 3; r++) {
  let h = x;
  for (let i = 0; i < infos.length; i++) {
    const t = performance.now();
    h = model.layers[i].forward(h, N, true);
    if (r >= 3) forward[i].push(performance.now() - t);
  }
  let g = Float32Array.from({ length: h.length }, (_, i) => Math.cos(i) * 0.01);
  for (let i = infos.length - 1; i >= 0 && g; i--) {
    const t = performance.now();
    g = model.layers[i].backward(g, N);
    if (r >= 3) backward[i].push(performance.now() - t);
  }
}

const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)] ?? 0;
const ms = (v) => Math.round(v * 100) / 100;
let sumForward = 0;
let sumBackward = 0;
infos.forEach((info, i) => {
  const f = median(forward[i]);
  const b = median(backward[i]);
  sumForward += f;
  sumBackward += b;
  console.log(JSON.stringify({ bench: 'cnn-layers', layer: i, type: info.type, batch: N, forwardMs: ms(f), backwardMs: ms(b) }));
});
console.log(JSON.stringify({ bench: 'cnn-layers', layer: 'all', batch: N, forwardMs: ms(sumForward), backwardMs: ms(sumBackward),
  reps, ...kernelsInfo() }));
