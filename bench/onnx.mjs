// In-process inference, NormLab vs onnxruntime-node on the same model: µs per
// call at batch 1 and 64. Models: the MLP 784-256-256-10 with batch norm
// before the activation trained one epoch on Fashion-MNIST (batch 128), and
// the default CNN (conv 32-64, dense 128, BN before) trained one epoch on
// 2000 images. NormLab: InferenceModel.predictInto (BN folded); onnxruntime:
// the GET /v1/models/:id/onnx bytes (exportOnnx), one intra-op thread (NormLab
// uses one core too), `await session.run` per call. Both from raw rows of the
// test split. Median of --samples samples of ~--ms each, after a warm-up.
// Also the largest |difference| of the probabilities over 1000 test rows.
// One JSON line per model, peer and batch size.
// --peers onnxruntime-node times only onnxruntime (bench/compare.mjs times NormLab with bench/infer.mjs).
// Usage: npx tsc -p tsconfig.json && node bench/onnx.mjs [--batches 1,64] [--samples 11] [--ms 200] [--models mlp,cnn]
//          [--peers normlab,onnxruntime-node]
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { InferenceModel } from '../dist/src/core/inference.js';
import { kernelsInfo } from '../dist/src/core/kernels/index.js';
import { exportOnnx } from '../dist/src/core/onnx.js';
import { resolveSpec } from '../dist/src/core/spec.js';
import { train } from '../dist/src/core/train.js';
import { loadBuiltinDataset } from '../dist/src/datasets/index.js';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '1,64' },
    samples: { type: 'string', default: '11' },
    ms: { type: 'string', default: '200' },
    models: { type: 'string', default: 'mlp,cnn' },
    peers: { type: 'string', default: 'normlab,onnxruntime-node' },
  },
});
const samples = Number(values.samples);
const sampleMs = Number(values.ms);
const peers = values.peers.split(',');

const SPECS = {
  mlp: { name: '784-256-256-10 bn-before', spec: {
    dataset: { id: 'fashion-mnist', validationSplit: 0 }, model: { hidden: [256, 256], batchNorm: 'before' },
    training: { epochs: 1, batchSize: 128, seed: 42, optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 } } } },
  cnn: { name: 'cnn conv32-64 dense128 bn-before', spec: {
    dataset: { id: 'fashion-mnist', validationSplit: 0, limit: 2000 }, model: { architecture: 'cnn' },
    training: { epochs: 1, batchSize: 64, seed: 42, optimizer: { type: 'adam', learningRate: 0.001 } } } },
};

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** Median µs per call of `call` (sync or async). */
async function time(call) {
  for (let i = 0; i < 200; i++) await call();
  let reps = 8;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await call();
    const ms = performance.now() - t0;
    if (ms >= sampleMs / 4) { reps = Math.max(1, Math.round((reps * sampleMs) / ms)); break; }
    reps *= 4;
  }
  const us = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await call();
    us.push(((performance.now() - t0) * 1000) / reps);
  }
  return median(us);
}

for (const key of values.models.split(',')) {
  const { name, spec: raw } = SPECS[key];
  const spec = resolveSpec(raw);
  const ds = await loadBuiltinDataset(spec.dataset, 42);
  const { artifact } = await train(spec, ds);
  const model = InferenceModel.fromArtifact(artifact);
  const session = await ort.InferenceSession.create(exportOnnx(artifact), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const f = ds.features;
  const shape = artifact.manifest.inputShape;
  const test = ds.test;

  const m = 1000;
  const x = test.x.slice(0, m * f);
  const ours = model.predict(x, m);
  const theirs = (await session.run({ input: new ort.Tensor('float32', x, [m, ...shape]) })).probabilities.data;
  let maxAbsDiff = 0;
  for (let i = 0; i < ours.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ours[i] - theirs[i]));

  for (const n of values.batches.split(',').map(Number)) {
    const views = Array.from({ length: 16 }, (_, i) => test.x.slice(i * n * f, (i + 1) * n * f));
    const out = new Float32Array(n * model.classes);
    const tensors = views.map((v) => new ort.Tensor('float32', v, [n, ...shape]));
    let w = 0;
    const normlab = peers.includes('normlab') ? await time(() => { model.predictInto(views[w], n, out); w = (w + 1) % views.length; }) : null;
    let v = 0;
    const onnxruntime = peers.includes('onnxruntime-node')
      ? await time(async () => { await session.run({ input: tensors[v] }); v = (v + 1) % tensors.length; }) : null;
    for (const [peer, us] of [['normlab', normlab], ['onnxruntime-node', onnxruntime]]) {
      if (us === null) continue;
      console.log(JSON.stringify({
        bench: 'onnx', model: name, peer, batch: n, usPerCall: Math.round(us * 100) / 100, usPerRow: Math.round((us / n) * 1000) / 1000,
        maxAbsDiff, ...(peer === 'normlab' ? kernelsInfo() : { threads: 1 }),
      }));
    }
  }
}
