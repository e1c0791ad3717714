/** Dense (fully connected) layer: y = x·Wᵀ + b, W [out, in]; a [C, H, W] input is read as C·H·W features. */
import { Type, type Static } from '@sinclair/typebox';
import { NO_ACTIVATION, packedDenseSize, type Kernels } from '../kernels/types.js';
import type { BuildContext, Fused, InferenceOp, KernelOp, LayerModule, OnnxGraph, Param, PutTensor, RuntimeLayer } from './types.js';

export const DenseSpec = Type.Object({
  type: Type.Literal('dense'),
  units: Type.Integer({ minimum: 1, maximum: 65536 }),
  bias: Type.Optional(Type.Boolean({ description: 'Default true; none directly before a batchnorm layer, whose β replaces it (BN_REDUNDANT_BIAS)' })),
}, { additionalProperties: false });

export interface DenseInfo { index: number; type: 'dense'; in: number; out: number; bias: boolean }

class Dense implements RuntimeLayer {
  readonly outputSize: number;
  readonly params: Param[];
  readonly state = [];
  readonly weight: Param;
  readonly bias: Param | null;
  private readonly k: Kernels;
  private readonly act: Fused;
  private readonly y: Float32Array;
  private readonly dx: Float32Array | null;
  private x: Float32Array | null = null;

  constructor(readonly info: DenseInfo, ctx: BuildContext) {
    this.k = ctx.kernels;
    this.act = ctx.fused ?? { code: NO_ACTIVATION, alpha: 0 };
    this.outputSize = info.out;
    this.params = ctx.params;
    this.weight = ctx.params[0]!;
    this.bias = info.bias ? ctx.params[1]! : null;
    this.y = new Float32Array(ctx.maxBatch * info.out);
    this.dx = ctx.needsInputGrad ? new Float32Array(ctx.maxBatch * info.in) : null;
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.x = x;
    const { in: fanIn, out } = this.info;
    this.k.gemm(false, true, n, out, fanIn, 1, x, this.weight.value, 0, this.y); // y = x·Wᵀ
    if (this.bias) this.k.addBias(this.y, this.bias.value, n, out, 1, this.act.code, this.act.alpha); // y = f(y + b)
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array | null {
    const { in: fanIn, out } = this.info;
    // With a fused activation this first turns dy into the gradient at the pre-activation, in place.
    if (this.bias) this.k.biasGrad(dy, this.bias.grad, n, out, 1, this.act.code, this.act.alpha, this.y);
    this.k.gemm(true, false, out, fanIn, n, 1, dy, this.x!, 0, this.weight.grad); // dW = dyᵀ·x
    if (!this.dx) return null;
    this.k.gemm(false, false, n, fanIn, out, 1, dy, this.weight.value, 0, this.dx); // dx = dy·W
    return this.dx;
  }
}

/** Dense in plain layout: weight [out, in], bias [out] (zeros when the layer has none). */
export class DenseOp implements InferenceOp {
  readonly kind = 'dense';
  readonly readsRawInput = true;
  constructor(readonly weight: Float32Array, readonly bias: Float32Array, readonly inputs: number, readonly out: number) {}

  describe(put: PutTensor): Record<string, unknown> {
    put('weight', [this.out, this.inputs], this.weight);
    put('bias', [this.out], this.bias);
    return { kind: this.kind, in: this.inputs, out: this.out };
  }

  onnx(g: OnnxGraph, i: number, x: string, rank: number): { x: string; rank: number } {
    const flat = rank > 2 ? g.node('Flatten', [x], [{ name: 'axis', int: 1 }]) : x;
    const w = g.constant(`op${i}.weight`, [this.out, this.inputs], this.weight);
    const b = g.constant(`op${i}.bias`, [this.out], this.bias);
    return { x: g.node('Gemm', [flat, w, b], [{ name: 'transB', int: 1 }]), rank: 2 };
  }

  foldOutputAffine(s: Float64Array, t: Float64Array): InferenceOp {
    return new DenseOp(...scaleRows(this.weight, this.bias, this.out, s, t), this.inputs, this.out);
  }

  /** A flattened [C, H, W] input has `spatial` = H·W columns per channel. */
  foldInputAffine(s: Float64Array, t: Float64Array, spatial: number): InferenceOp {
    const { inputs, out } = this;
    const weight = this.weight.slice();
    const bias = this.bias.slice();
    for (let o = 0; o < out; o++) {
      let shift = 0;
      for (let j = 0; j < inputs; j++) {
        const c = Math.floor(j / spatial);
        shift += weight[o * inputs + j]! * t[c]!;
        weight[o * inputs + j] = weight[o * inputs + j]! * s[c]!;
      }
      bias[o] = bias[o]! + shift;
    }
    return new DenseOp(weight, bias, inputs, out);
  }

  foldInputScale(factor: readonly number[]): InferenceOp {
    const weight = this.weight.slice();
    for (let o = 0; o < this.out; o++) {
      for (let j = 0; j < this.inputs; j++) weight[o * this.inputs + j] = weight[o * this.inputs + j]! * factor[j]!;
    }
    return new DenseOp(weight, this.bias, this.inputs, this.out);
  }

  /** Packed once by packDense (a copy; the artifact's tensors stay as they are). */
  lower(k: Kernels, fused: Fused | null): KernelOp {
    const packed = k.alignedFloat32Array(packedDenseSize(this.out, this.inputs));
    k.packDense(this.weight, this.out, this.inputs, packed);
    const { bias, inputs, out } = this;
    const act = fused ?? { code: NO_ACTIVATION, alpha: 0 };
    return {
      run(kernels: Kernels, x: Float32Array, y: Float32Array, n: number): boolean {
        kernels.denseInfer(x, packed, bias, y, n, inputs, out, act.code, act.alpha);
        return true;
      },
      dense: { packed, bias, in: inputs, out, activation: act.code, alpha: act.alpha },
    };
  }
}

/**
 * A per-output affine map y = s·(W·x + b) + t folded into the rows of a
 * weight [rows, …] and its bias (copies): exact in real arithmetic.
 */
export function scaleRows(weight: Float32Array, bias: Float32Array, rows: number, s: Float64Array, t: Float64Array): [Float32Array, Float32Array] {
  const w = weight.slice();
  const b = bias.slice();
  const per = w.length / rows;
  for (let o = 0; o < rows; o++) {
    for (let j = 0; j < per; j++) w[o * per + j] = w[o * per + j]! * s[o]!;
    b[o] = b[o]! * s[o]! + t[o]!;
  }
  return [w, b];
}

export const dense: LayerModule<Static<typeof DenseSpec>, DenseInfo> = {
  types: ['dense'],
  expand(d, { index, shape, biasAllowed }) {
    const size = shape.reduce((a, b) => a * b, 1);
    return { info: { index, type: 'dense', in: size, out: d.units, bias: biasAllowed && (d.bias ?? true) }, shape: [d.units] };
  },
  outputSize: (l) => l.out,
  params: (l) => [{ name: 'weight', shape: [l.out, l.in], init: 'fan' }, ...(l.bias ? [{ name: 'bias', shape: [l.out] }] : [])],
  // The activation goes into addBias/biasGrad, so only a layer with a bias can take it.
  fusesActivation: (l) => l.bias,
  multiplyAdds: (l) => l.in * l.out,
  build: (info, ctx) => new Dense(info, ctx),
  inference(l, ctx) {
    return { ops: [new DenseOp(ctx.tensor('weight')!, ctx.tensor('bias') ?? new Float32Array(l.out), l.in, l.out)] };
  },
};
