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
import { InferenceModel } from './inference.js';
import { portableKernels } from './kernels/portable.js';
import type { OnnxAttribute, OnnxGraph } from './layers/types.js';

const { onnx } = onnxProto;
type Attribute = onnxProto.onnx.IAttributeProto;

export const ONNX_OPSET = 13;
/** IR version 7 goes with opset 13 (ONNX 1.8). */
const IR_VERSION = 7;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

const { AttributeType } = onnx.AttributeProto;
function toProto(a: OnnxAttribute): Attribute {
  if ('ints' in a) return { name: a.name, type: AttributeType.INTS, ints: a.ints };
  if ('int' in a) return { name: a.name, type: AttributeType.INT, i: a.int };
  if ('string' in a) return { name: a.name, type: AttributeType.STRING, s: new TextEncoder().encode(a.string) };
  if ('strings' in a) return { name: a.name, type: AttributeType.STRINGS, strings: a.strings.map((v) => new TextEncoder().encode(v)) };
  return { name: a.name, type: AttributeType.FLOAT, f: a.float };
}
const int = (name: string, i: number): OnnxAttribute => ({ name, int: i });

class GraphBuilder implements OnnxGraph {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private count = 0;

  /** A float32 constant (copied). */
  constant(name: string, dims: number[], values: ArrayLike<number>): string {
    const data = Float32Array.from(values);
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** An int64 constant. */
  constantInt64(name: string, dims: number[], values: number[]): string {
    const data = BigInt64Array.from(values, BigInt);
    this.initializers.push({ name, dims, dataType: INT64, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** Add a node; returns its output's name (`output` or a fresh one). */
  node(opType: string, inputs: string[], attributes: OnnxAttribute[] = [], output = `t${this.count++}`): string {
    return this.add(opType, inputs, attributes, [output])[0]!;
  }

  nodeOutputs(opType: string, inputs: string[], attributes: OnnxAttribute[], outputs: number): string[] {
    return this.add(opType, inputs, attributes, Array.from({ length: outputs }, () => `t${this.count++}`));
  }

  private add(opType: string, inputs: string[], attributes: OnnxAttribute[], output: string[]): string[] {
    const attribute = attributes.map(toProto);
    this.nodes.push({ opType, input: inputs, output, name: `${opType.toLowerCase()}_${this.nodes.length}`, attribute });
    return output;
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
  model.inferenceForm().ops.forEach((op, i) => ({ x, rank } = op.onnx(g, i, x, rank, manifest.epsilon)));
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
