/** Elementwise activations: relu, leaky_relu, elu, tanh, sigmoid. */
import { Type, type Static } from '@sinclair/typebox';
import { ACTIVATIONS, activationCode, type ActivationKind, type Kernels } from '../kernels/types.js';
import { PassThrough } from './flatten.js';
import type { BuildContext, Fused, InferenceOp, LayerModule, OnnxGraph, Param, RuntimeLayer } from './types.js';

export const ActivationName = Type.Union(
  [Type.Literal('relu'), Type.Literal('leaky_relu'), Type.Literal('elu'), Type.Literal('tanh'), Type.Literal('sigmoid')],
  { description: 'Activation function' },
);

export const ActivationSpec = Type.Object({
  type: ActivationName,
  alpha: Type.Optional(Type.Number({ minimum: 0, maximum: 10, description: 'leaky_relu slope / elu alpha' })),
}, { additionalProperties: false });

export interface ActivationInfo { index: number; type: ActivationKind; alpha: number }

/** Default alpha: leaky_relu negative slope 0.01 (PyTorch), elu alpha 1. */
function defaultAlpha(kind: ActivationKind): number {
  return kind === 'leaky_relu' ? 0.01 : kind === 'elu' ? 1 : 0;
}

class Activation implements RuntimeLayer {
  readonly params: Param[] = [];
  readonly state = [];
  private readonly k: Kernels;
  private readonly code: number;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private x: Float32Array | null = null;
  readonly outputSize: number;

  constructor(readonly info: ActivationInfo, ctx: BuildContext) {
    this.k = ctx.kernels;
    this.outputSize = ctx.inputSize;
    this.code = activationCode(info.type);
    this.y = new Float32Array(ctx.maxBatch * this.outputSize);
    this.dx = new Float32Array(ctx.maxBatch * this.outputSize);
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.x = x;
    this.k.activationForward(this.code, x, this.y, n * this.outputSize, this.info.alpha);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    this.k.activationBackward(this.code, this.x!, this.y, dy, this.dx, n * this.outputSize, this.info.alpha);
    return this.dx;
  }
}

/** f in place over the n·size values of a batch. */
class ActivationOp implements InferenceOp {
  readonly kind = 'activation';
  readonly activation: Fused;
  constructor(code: number, alpha: number, readonly size: number) {
    this.activation = { code, alpha };
  }

  run(k: Kernels, x: Float32Array, _y: Float32Array, n: number): boolean {
    k.activationForward(this.activation.code, x, x, n * this.size, this.activation.alpha);
    return false;
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, activation: ACTIVATIONS[this.activation.code]!, alpha: this.activation.alpha };
  }

  onnx(g: OnnxGraph, _i: number, x: string, rank: number): { x: string; rank: number } {
    const { code, alpha } = this.activation;
    const kind = ACTIVATIONS[code];
    const out = (() => {
      switch (kind) {
        case 'relu': return g.node('Relu', [x]);
        case 'leaky_relu': return g.node('LeakyRelu', [x], [{ name: 'alpha', float: alpha }]);
        case 'elu': return g.node('Elu', [x], [{ name: 'alpha', float: alpha }]);
        case 'tanh': return g.node('Tanh', [x]);
        case 'sigmoid': return g.node('Sigmoid', [x]);
        default: throw new Error(`ONNX export: activation code ${code} has no ONNX op`);
      }
    })();
    return { x: out, rank };
  }
}

export const activation: LayerModule<Static<typeof ActivationSpec>, ActivationInfo> = {
  types: ACTIVATIONS,
  isActivation: true,
  expand: (d, { index, shape }) => ({ info: { index, type: d.type, alpha: d.alpha ?? defaultAlpha(d.type) }, shape }),
  outputSize: (_l, inputSize) => inputSize,
  build: (info, ctx) => (ctx.fusedIntoPrevious ? new PassThrough(info, ctx.inputSize) : new Activation(info, ctx)),
  inference: (l, ctx) => ({ ops: [new ActivationOp(activationCode(l.type), l.alpha, ctx.inputSize)] }),
};
