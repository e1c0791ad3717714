// Where a training step's time goes, layer by layer: one training-mode forward
// and backward of every layer on a fixed batch, then the optimizer's update,
// each timed on its own. --net cnn is the Fashion-MNIST CNN of bench/cnn.mjs
// (conv32-BN-relu-pool, conv64-BN-relu-pool, dense128-relu, dense10; Adam),
// --net mlp the MLP of bench/train-throughput.mjs (784-256-256-10, BN before
// the activation; SGD momentum 0.9). One JSON line per layer: median ms per
// call over --reps after a warm-up (an activation fused into the layer before
// it costs nothing of its own), one for the update, then one with the sums.
// Usage: npx tsc -p tsconfig.json && node bench/layers.mjs [--net cnn|mlp] [--batch 128] [--reps 20]
import { parseArgs } from 'node:util';
import { getKernels, kernelsInfo } from '../dist/src/core/kernels/index.js';
import { expandLayers } from '../dist/src/core/layers.js';
import { Sequential } from '../dist/src/core/model.js';
import { Optimizer } from '../dist/src/core/optimizer.js';
import { createRng } from '../dist/src/core/rng.js';
import { resolveSpec } from '../dist/src/core/spec.js';

const { values } = parseArgs({
  options: {
    net: { type: 'string', default: 'cnn' },
    batch: { type: 'string', default: '128' },
    reps: { type: 'string', default: '20' },
  },
});
const N = Number(values.batch);
const reps = Number(values.reps);

const block = (filters) => [{ type: 'conv2d', filters, kernelSize: 3 }, { type: 'batchnorm' }, { type: 'relu' }, { type: 'maxpool2d', size: 2 }];
const nets = {
  cnn: {
    model: { layers: [...block(32), ...block(64), { type: 'flatten' }, { type: 'dense', units: 128 }, { type: 'relu' }] },
    optimizer: { type: 'adam', learningRate: 0.001 },
    shape: [1, 28, 28],
  },
  mlp: {
    model: { architecture: 'mlp', hidden: [256, 256], batchNorm: 'before' },
    optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 },
    shape: [784],
  },
};
const net = nets[values.net];
if (!net) throw new Error(`--net must be one of ${Object.keys(nets).join(', ')}`);
const spec = resolveSpec({ dataset: { id: 'fashion-mnist' }, model: net.model, training: { batchSize: N, optimizer: net.optimizer } });
const infos = expandLayers(spec.model, net.shape, 10);
const rng = createRng(42);
const kernels = getKernels();
const model = new Sequential(infos, kernels, N, 784, spec.batchNorm, rng);
model.initialize(spec.model.init, rng);
const optimizer = new Optimizer(spec.training.optimizer, model.params, kernels);

const x = Float32Array.from({ length: N * 784 }, (_, i) => Math.sin(i * 0.37));
// The loss gradient at the output layer (its N·10 logits), made once.
const dLogits = Float32Array.from({ length: N * 10 }, (_, i) => Math.cos(i) * 0.01);
const forward = infos.map(() => []);
const backward = infos.map(() => []);
const update = [];
const warmUp = Math.max(3, Math.ceil(reps / 10));
for (let r = 0; r < reps + warmUp; r++) {
  let h = x;
  for (let i = 0; i < infos.length; i++) {
    const t = performance.now();
    h = model.layers[i].forward(h, N, true);
    if (r >= warmUp) forward[i].push(performance.now() - t);
  }
  let g = dLogits;
  for (let i = infos.length - 1; i >= 0 && g; i--) {
    const t = performance.now();
    g = model.layers[i].backward(g, N);
    if (r >= warmUp) backward[i].push(performance.now() - t);
  }
  const t = performance.now();
  optimizer.update(spec.training.optimizer.learningRate);
  if (r >= warmUp) update.push(performance.now() - t);
}

const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)] ?? 0;
const ms = (v) => Math.round(v * 1000) / 1000;
let sumForward = 0;
let sumBackward = 0;
infos.forEach((info, i) => {
  const f = median(forward[i]);
  const b = median(backward[i]);
  sumForward += f;
  sumBackward += b;
  console.log(JSON.stringify({ bench: 'layers', net: values.net, layer: i, type: info.type, batch: N, forwardMs: ms(f), backwardMs: ms(b) }));
});
const updateMs = median(update);
console.log(JSON.stringify({ bench: 'layers', net: values.net, layer: 'update', type: spec.training.optimizer.type, batch: N,
  parameters: model.params.reduce((n, p) => n + p.value.length, 0), updateMs: ms(updateMs) }));
console.log(JSON.stringify({ bench: 'layers', net: values.net, layer: 'all', batch: N, forwardMs: ms(sumForward), backwardMs: ms(sumBackward),
  updateMs: ms(updateMs), stepMs: ms(sumForward + sumBackward + updateMs), reps, ...kernelsInfo() }));
