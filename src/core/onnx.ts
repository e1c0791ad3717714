/**
 * ONNX export of a trained model (opset 13), written with onnx-proto (ONNX's
 * own .proto compiled by protobufjs). The graph takes raw features shaped
 * [N, …inputShape], as /v2 infer does, and gives `probabilities` [N, classes]
 * (softmax) and `label` [N] (int64 class index, the first of equal maxima),
 * as predict does:
 *   - the model's fitted preprocessing (x − offset)·factor as the first ops,
 *   - then the inference form predict runs: frozen batch norm folded into the
 *     adjacent dense/conv layer where that is exact, a BatchNormalization op
 *     where it is not, activations, pooling, Gemm for dense layers.
 */
import onnxProto from 'onnx-proto';
import type { Artifact } from './artifact.js';
import { InferenceModel, type InferenceOp } from './inference.js';
import { portableKernels } from './kernels/portable.js';
import { ACTIVATIONS } from './kernels/types.js';

const { onnx } = onnxProto;
type Attribute = onnxProto.onnx.IAttributeProto;

export const ONNX_OPSET = 13;
/** IR version 7 goes with opset 13 (ONNX 1.8). */
const IR_VERSION = 7;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

const ints = (name: string, values: number[]): Attribute => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: values });
const int = (name: string, i: number): Attribute => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
const float = (name: string, f: number): Attribute => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f });

class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private count = 0;

  /** A float32 constant (copied). */
  constant(name: string, dims: number[], values: ArrayLike<number>): string {
    const data = Float32Array.from(values);
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** Add a node; returns its output's name (`output` or a fresh one). */
  node(opType: string, inputs: string[], attribute: Attribute[] = [], output = `t${this.count++}`): string {
    this.nodes.push({ opType, input: inputs, output: [output], name: `${opType.toLowerCase()}_${this.nodes.length}`, attribute });
    return output;
  }
}

function activation(g: GraphBuilder, code: number, alpha: number, x: string): string {
  const kind = ACTIVATIONS[code];
  switch (kind) {
    case 'relu': return g.node('Relu', [x]);
    case 'leaky_relu': return g.node('LeakyRelu', [x], [float('alpha', alpha)]);
    case 'elu': return g.node('Elu', [x], [float('alpha', alpha)]);
    case 'tanh': return g.node('Tanh', [x]);
    case 'sigmoid': return g.node('Sigmoid', [x]);
    default: throw new Error(`ONNX export: activation code ${code} has no ONNX op`);
  }
}

/** The ops of one inference step; `rank` is the rank of x (2 for [N, features], 4 for [N, C, H, W]). */
function emit(g: GraphBuilder, op: InferenceOp, i: number, x: string, rank: number, epsilon: number): { x: string; rank: number } {
  switch (op.kind) {
    case 'dense': {
      const flat = rank > 2 ? g.node('Flatten', [x], [int('axis', 1)]) : x;
      const w = g.constant(`op${i}.weight`, [op.out, op.in], op.weight);
      const b = g.constant(`op${i}.bias`, [op.out], op.bias);
      return { x: g.node('Gemm', [flat, w, b], [int('transB', 1)]), rank: 2 };
    }
    case 'conv2d': {
      const l = op.layer;
      const w = g.constant(`op${i}.weight`, [l.filters, l.inChannels, l.kernelSize, l.kernelSize], op.weight);
      const b = g.constant(`op${i}.bias`, [l.filters], op.bias);
      return {
        x: g.node('Conv', [x, w, b], [ints('kernel_shape', [l.kernelSize, l.kernelSize]), ints('strides', [l.stride, l.stride]),
          ints('pads', [l.padding, l.padding, l.padding, l.padding])]),
        rank: 4,
      };
    }
    case 'batchnorm': {
      // Per channel over dimension 1: [N, C] (spatial 1) or [N, C, H, W].
      if ((rank === 2) !== (op.spatial === 1)) throw new Error(`ONNX export: batch norm over ${op.channels}x${op.spatial} on a rank-${rank} tensor`);
      const c = [op.channels];
      const inputs = [x, g.constant(`op${i}.gamma`, c, op.gamma), g.constant(`op${i}.beta`, c, op.beta),
        g.constant(`op${i}.mean`, c, op.mean), g.constant(`op${i}.variance`, c, op.variance)];
      return { x: g.node('BatchNormalization', inputs, [float('epsilon', epsilon)]), rank };
    }
    case 'activation':
      return { x: activation(g, op.code, op.alpha, x), rank };
    case 'pool': {
      const l = op.layer;
      if (l.type === 'globalavgpool') return { x: g.node('GlobalAveragePool', [x]), rank: 4 };
      const attrs = [ints('kernel_shape', [l.size, l.size]), ints('strides', [l.stride, l.stride])];
      return { x: g.node(l.type === 'maxpool2d' ? 'MaxPool' : 'AveragePool', [x], attrs), rank: 4 };
    }
  }
}

/** The model as an ONNX file (ModelProto bytes). */
export function exportOnnx(artifact: Artifact, options: { name?: string; producerVersion?: string } = {}): Uint8Array {
  const { manifest } = artifact;
  // The inference form without the preprocessing folded into the first layer: it becomes explicit ops here.
  const model = InferenceModel.fromArtifact({ ...artifact, manifest: { ...manifest, preprocess: { kind: 'none' } } }, { kernels: portableKernels, fold: true });
  const g = new GraphBuilder();
  const shape = manifest.inputShape;
  let x = 'input';
  const p = manifest.preprocess;
  if (p.kind !== 'none') {
    if (p.offset.some((o) => o !== 0)) x = g.node('Sub', [x, g.constant('preprocess.offset', shape, p.offset)]);
    x = g.node('Mul', [x, g.constant('preprocess.factor', shape, p.factor)]);
  }
  let rank = 1 + shape.length;
  model.inferenceForm().ops.forEach((op, i) => ({ x, rank } = emit(g, op, i, x, rank, manifest.epsilon)));
  g.node('Softmax', [x], [int('axis', 1)], 'probabilities');
  g.node('ArgMax', ['probabilities'], [int('axis', 1), int('keepdims', 0), int('select_last_index', 0)], 'label');

  const tensor = (elemType: number, dims: Array<number | string>) => ({
    tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } },
  });
  const proto = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'normlab',
    producerVersion: options.producerVersion ?? '',
    docString: 'NormLab model: raw features in (the fitted preprocessing is the first ops), class probabilities and label out',
    graph: {
      name: options.name ?? 'normlab',
      node: g.nodes,
      initializer: g.initializers,
      input: [{ name: 'input', type: tensor(FLOAT, ['N', ...shape]) }],
      output: [
        { name: 'probabilities', type: tensor(FLOAT, ['N', manifest.classes]) },
        { name: 'label', type: tensor(INT64, ['N']) },
      ],
    },
    metadataProps: [{ key: 'classNames', value: JSON.stringify(manifest.classNames) }, { key: 'inferenceStats', value: manifest.inferenceStats }],
  });
  return onnx.ModelProto.encode(proto).finish();
}
