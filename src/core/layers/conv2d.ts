/** 2-D convolution, NCHW, weights [filters, inChannels, k, k] (PyTorch layout). */
import { Type, type Static } from '@sinclair/typebox';
import { conv2dColSize, convOutputSize, NO_ACTIVATION, type Kernels } from '../kernels/types.js';
import { scaleRows } from './dense.js';
import type { BuildContext, Fused, InferenceOp, InferenceScratch, KernelOp, LayerModule, OnnxGraph, Param, PutTensor, RuntimeLayer } from './types.js';

export const Conv2dSpec = Type.Object({
  type: Type.Literal('conv2d'),
  filters: Type.Integer({ minimum: 1, maximum: 4096 }),
  kernelSize: Type.Integer({ minimum: 1, maximum: 15 }),
  stride: Type.Optional(Type.Integer({ minimum: 1, maximum: 8, description: 'Default 1' })),
  padding: Type.Optional(Type.Union([Type.Literal('same'), Type.Literal('valid')], { description: "Default 'same' (odd kernel sizes, stride 1)" })),
  bias: Type.Optional(Type.Boolean({ description: 'Default true; none directly before a batchnorm layer, whose β replaces it (BN_REDUNDANT_BIAS)' })),
}, { additionalProperties: false });

export interface Conv2dInfo {
  index: number; type: 'conv2d'; inChannels: number; inHeight: number; inWidth: number; filters: number;
  kernelSize: number; stride: number; padding: number; outHeight: number; outWidth: number; bias: boolean;
}

// The conv kernels are called from these three functions and sized by colSize only.
/** Floats of im2col scratch the layer needs (shared by every conv layer of a model). */
const colSize = (l: Conv2dInfo) => conv2dColSize(l.inChannels, l.kernelSize, l.kernelSize, l.outHeight, l.outWidth);

function convForward(k: Kernels, l: Conv2dInfo, x: Float32Array, weight: Float32Array, bias: Float32Array | null, y: Float32Array,
  n: number, col: Float32Array): void {
  k.conv2dForward(x, weight, bias, y, n, l.inChannels, l.inHeight, l.inWidth, l.filters, l.kernelSize, l.kernelSize,
    l.stride, l.stride, l.padding, l.padding, col);
}

function convBackward(k: Kernels, l: Conv2dInfo, x: Float32Array, weight: Float32Array, dy: Float32Array, dx: Float32Array | null,
  dweight: Float32Array, dbias: Float32Array | null, n: number, col: Float32Array): void {
  k.conv2dBackward(x, weight, dy, dx, dweight, dbias, n, l.inChannels, l.inHeight, l.inWidth, l.filters, l.kernelSize,
    l.kernelSize, l.stride, l.stride, l.padding, l.padding, col);
}

function convInfer(k: Kernels, l: Conv2dInfo, x: Float32Array, weight: Float32Array, bias: Float32Array, y: Float32Array, n: number,
  col: Float32Array, act: Fused): void {
  k.conv2dInfer(x, weight, bias, y, n, l.inChannels, l.inHeight, l.inWidth, l.filters, l.kernelSize, l.kernelSize,
    l.stride, l.stride, l.padding, l.padding, col, act.code, act.alpha);
}

class Conv2d implements RuntimeLayer {
  readonly outputSize: number;
  readonly params: Param[];
  readonly state = [];
  readonly weight: Param;
  readonly bias: Param | null;
  private readonly k: Kernels;
  private readonly col: Float32Array;
  private readonly y: Float32Array;
  private readonly dx: Float32Array | null;
  private x: Float32Array | null = null;

  constructor(readonly info: Conv2dInfo, ctx: BuildContext) {
    const { inChannels, inHeight, inWidth } = info;
    this.k = ctx.kernels;
    this.col = ctx.scratch;
    this.outputSize = conv2d.outputSize(info, 0);
    this.params = ctx.params;
    this.weight = ctx.params[0]!;
    this.bias = info.bias ? ctx.params[1]! : null;
    this.y = new Float32Array(ctx.maxBatch * this.outputSize);
    this.dx = ctx.needsInputGrad ? new Float32Array(ctx.maxBatch * inChannels * inHeight * inWidth) : null;
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.x = x;
    convForward(this.k, this.info, x, this.weight.value, this.bias?.value ?? null, this.y, n, this.col);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array | null {
    convBackward(this.k, this.info, this.x!, this.weight.value, dy, this.dx, this.weight.grad, this.bias?.grad ?? null, n, this.col);
    return this.dx;
  }
}

/** Conv2d in plain layout: weight [filters, inChannels, k, k], bias [filters] (zeros when the layer has none). */
class Conv2dOp implements InferenceOp {
  readonly kind = 'conv2d';
  constructor(readonly layer: Conv2dInfo, readonly weight: Float32Array, readonly bias: Float32Array) {}

  describe(put: PutTensor): Record<string, unknown> {
    const l = this.layer;
    put('weight', [l.filters, l.inChannels, l.kernelSize, l.kernelSize], this.weight);
    put('bias', [l.filters], this.bias);
    return { kind: this.kind, inChannels: l.inChannels, inHeight: l.inHeight, inWidth: l.inWidth, filters: l.filters, kernelSize: l.kernelSize, stride: l.stride, padding: l.padding };
  }

  onnx(g: OnnxGraph, i: number, x: string): { x: string; rank: number } {
    const l = this.layer;
    const w = g.constant(`op${i}.weight`, [l.filters, l.inChannels, l.kernelSize, l.kernelSize], this.weight);
    const b = g.constant(`op${i}.bias`, [l.filters], this.bias);
    return {
      x: g.node('Conv', [x, w, b], [{ name: 'kernel_shape', ints: [l.kernelSize, l.kernelSize] }, { name: 'strides', ints: [l.stride, l.stride] },
        { name: 'pads', ints: [l.padding, l.padding, l.padding, l.padding] }]),
      rank: 4,
    };
  }

  foldOutputAffine(s: Float64Array, t: Float64Array): InferenceOp {
    return new Conv2dOp(this.layer, ...scaleRows(this.weight, this.bias, this.layer.filters, s, t));
  }

  lower(k: Kernels, fused: Fused | null): KernelOp {
    const { layer, bias } = this;
    const packed = k.packConv(this.weight, layer.filters, layer.inChannels, layer.kernelSize, layer.kernelSize, layer.stride, layer.stride);
    const act = fused ?? { code: NO_ACTIVATION, alpha: 0 };
    return {
      run(k: Kernels, x: Float32Array, y: Float32Array, n: number, scratch: InferenceScratch): boolean {
        convInfer(k, layer, x, packed, bias, y, n, scratch.col, act);
        return true;
      },
    };
  }
}

export const conv2d: LayerModule<Static<typeof Conv2dSpec>, Conv2dInfo> = {
  types: ['conv2d'],
  expand(d, { index, shape, biasAllowed, fail }) {
    if (shape.length !== 3) fail(`conv2d needs image input [channels, height, width]; it receives [${shape}]`);
    const [c, h, w] = shape as [number, number, number];
    const stride = d.stride ?? 1;
    const same = (d.padding ?? 'same') === 'same';
    if (same && (d.kernelSize % 2 === 0 || stride !== 1)) fail("padding 'same' needs an odd kernelSize and stride 1");
    const padding = same ? (d.kernelSize - 1) / 2 : 0;
    const outHeight = convOutputSize(h, d.kernelSize, stride, padding);
    const outWidth = convOutputSize(w, d.kernelSize, stride, padding);
    if (outHeight < 1 || outWidth < 1) fail(`a ${d.kernelSize}×${d.kernelSize} kernel does not fit a ${h}×${w} input`);
    return {
      info: {
        index, type: 'conv2d', inChannels: c, inHeight: h, inWidth: w, filters: d.filters, kernelSize: d.kernelSize,
        stride, padding, outHeight, outWidth, bias: biasAllowed && (d.bias ?? true),
      },
      shape: [d.filters, outHeight, outWidth],
    };
  },
  outputSize: (l) => l.filters * l.outHeight * l.outWidth,
  params: (l) => [
    { name: 'weight', shape: [l.filters, l.inChannels, l.kernelSize, l.kernelSize], init: 'fan' },
    ...(l.bias ? [{ name: 'bias', shape: [l.filters] }] : []),
  ],
  scratch: colSize,
  multiplyAdds: (l) => l.outHeight * l.outWidth * l.filters * l.inChannels * l.kernelSize * l.kernelSize,
  build: (info, ctx) => new Conv2d(info, ctx),
  inference(l, ctx) {
    return { ops: [new Conv2dOp(l, ctx.tensor('weight')!, ctx.tensor('bias') ?? new Float32Array(l.filters))] };
  },
};
