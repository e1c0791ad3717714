/**
 * ONNX export, checked by onnxruntime-node: for MLPs in every batch-norm mode
 * (and a batch norm that cannot fold), CNNs (folded, unfolded, average and
 * global pooling), the exported graph gives predict's probabilities within
 * 1e-5 and its labels, from the same raw rows.
 */
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { InferenceModel } from '../../src/core/inference.js';
import { exportOnnx } from '../../src/core/onnx.js';
import { OnnxUnsupportedError } from '../../src/core/onnx-unsupported.js';
import { resolveSpec } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import { loadBuiltinDataset } from '../../src/datasets/index.js';
import { useFashionMnistDir } from '../helpers/fashion-slice.js';
import { expectClose } from '../helpers/gradcheck.js';

async function trained(raw: Record<string, unknown>) {
  const spec = resolveSpec(raw);
  const dataset = await loadBuiltinDataset(spec.dataset, spec.training.seed);
  const result = await train(spec, dataset);
  return { artifact: result.artifact, rows: (dataset.test ?? dataset.train).x, n: Math.min(64, (dataset.test ?? dataset.train).n) };
}

/** Export, run in onnxruntime-node, compare with predict; returns the graph's op types. */
async function check(raw: Record<string, unknown>): Promise<string[]> {
  const { artifact, rows, n } = await trained(raw);
  const bytes = exportOnnx(artifact);
  const graph = onnxProto.onnx.ModelProto.decode(bytes);
  expect(Number(graph.opsetImport[0]!.version)).toBeGreaterThanOrEqual(13);
  const model = InferenceModel.fromArtifact(artifact);
  const f = model.features;
  const x = rows.slice(0, n * f);
  const expected = model.predict(x, n);
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ input: new ort.Tensor('float32', x, [n, ...artifact.manifest.inputShape]) });
  expect(out.probabilities!.dims).toEqual([n, model.classes]);
  expectClose(out.probabilities!.data as Float32Array, expected, { rtol: 0, atol: 1e-5 }, 'onnxruntime vs predict');
  const labels = Array.from(out.label!.data as BigInt64Array, Number);
  for (let r = 0; r < n; r++) {
    const p = expected.subarray(r * model.classes, (r + 1) * model.classes);
    expect(labels[r]).toBe(p.indexOf(Math.max(...p)));
  }
  return graph.graph!.node!.map((node) => node.opType!);
}

const mlp = (batchNorm: string, over: Record<string, unknown> = {}) => ({
  dataset: { id: 'blobs', size: 600, preprocess: 'standardize' },
  model: { hidden: [16, 12], batchNorm, activation: 'relu' },
  training: { epochs: 2, batchSize: 32 },
  ...over,
});

describe('ONNX export (onnxruntime-node vs predict, 1e-5)', () => {
  for (const mode of ['none', 'before', 'after', 'input']) {
    it(`MLP, batch norm ${mode}: preprocessing first, batch norm folded`, async () => {
      const ops = await check(mlp(mode));
      expect(ops.slice(0, 2)).toEqual(['Sub', 'Mul']);
      expect(ops).not.toContain('BatchNormalization');
      expect(ops.slice(-2)).toEqual(['Softmax', 'ArgMax']);
    });
  }

  it('MLP with population statistics, scale preprocessing, elu and sigmoid', async () => {
    const ops = await check({
      ...mlp('before'), dataset: { id: 'spirals', size: 600, preprocess: 'scale' },
      model: { hidden: [16], batchNorm: 'before', activation: 'elu' }, batchNorm: { inferenceStats: 'population' },
    });
    expect(ops).toContain('Elu');
    const tanh = await check({ ...mlp('after'), model: { hidden: [8], batchNorm: 'after', activation: 'sigmoid' } });
    expect(tanh).toContain('Sigmoid');
  });

  it('MLP whose batch norm sits between two activations: a BatchNormalization op', async () => {
    const ops = await check({
      ...mlp('none'),
      model: { layers: [{ type: 'dense', units: 16 }, { type: 'leaky_relu' }, { type: 'batchnorm' }, { type: 'tanh' }, { type: 'dense', units: 8 }, { type: 'relu' }] },
    });
    expect(ops).toEqual(expect.arrayContaining(['BatchNormalization', 'LeakyRelu', 'Tanh']));
  });

  it('CNN on Fashion-MNIST, batch norm before (folded into the convs) and after (BatchNormalization ops)', async () => {
    useFashionMnistDir();
    const cnn = (batchNorm: string) => ({
      dataset: { id: 'fashion-mnist', limit: 300, validationSplit: 0 },
      model: { architecture: 'cnn', conv: [4, 8], dense: [16], batchNorm }, training: { epochs: 1, batchSize: 32 },
    });
    const before = await check(cnn('before'));
    expect(before).toEqual(expect.arrayContaining(['Conv', 'MaxPool', 'Flatten', 'Gemm']));
    expect(before).not.toContain('BatchNormalization');
    expect(await check(cnn('after'))).toContain('BatchNormalization');
  }, 120_000);

  it('CNN with average and global average pooling and a batch norm on the raw image', async () => {
    useFashionMnistDir();
    const ops = await check({
      dataset: { id: 'fashion-mnist', limit: 200, validationSplit: 0 },
      model: { layers: [{ type: 'batchnorm' }, { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same' }, { type: 'relu' },
        { type: 'avgpool2d', size: 2 }, { type: 'conv2d', filters: 6, kernelSize: 3, stride: 2, padding: 'valid' }, { type: 'batchnorm' }, { type: 'relu' },
        { type: 'globalavgpool' }, { type: 'flatten' }] },
      training: { epochs: 1, batchSize: 32 },
    });
    expect(ops).toEqual(expect.arrayContaining(['AveragePool', 'GlobalAveragePool', 'BatchNormalization']));
  }, 120_000);
});

describe('ONNX export of recurrent models', () => {
  const sequences = (model: Record<string, unknown>) => ({
    dataset: { id: 'fashion-mnist', limit: 200, validationSplit: 0 }, model, training: { epochs: 1, batchSize: 32, optimizer: { type: 'adam' } },
  });

  for (const [name, model, op] of [
    ['LSTM, sequence-wise BN folded into W_ih', { architecture: 'rnn', cell: 'lstm', hidden: [12], batchNorm: 'sequence' }, 'LSTM'],
    ['stacked bidirectional GRU', { architecture: 'rnn', cell: 'gru', hidden: [6, 5], bidirectional: true }, 'GRU'],
    ['Elman over the whole sequence into a dense layer', { layers: [{ type: 'rnn', units: 7, returnSequences: true }, { type: 'dense', units: 8 }, { type: 'relu' }] }, 'RNN'],
    ['bidirectional Elman with relu (activations Relu)', { architecture: 'rnn', cell: 'rnn', nonlinearity: 'relu', hidden: [6], bidirectional: true }, 'RNN'],
  ] as const) {
    it(`${name}: ONNX's ${op} op, within 1e-5 of predict`, async () => {
      useFashionMnistDir();
      const ops = await check(sequences(model));
      expect(ops).toContain(op);
      expect(ops).not.toContain('BatchNormalization');
    }, 120_000);
  }

  it('recurrent batch norm: OnnxUnsupportedError naming the layer and why', async () => {
    useFashionMnistDir();
    const { artifact } = await trained(sequences({ architecture: 'rnn', hidden: [4], batchNorm: 'recurrent' }));
    expect(() => exportOnnx(artifact)).toThrow(OnnxUnsupportedError);
    expect(() => exportOnnx(artifact)).toThrow(/ONNX export: layer 0 \(lstm\) has recurrent batch norm/);
  }, 120_000);
});
