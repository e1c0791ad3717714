/** Pooling: max and average over size×size windows, and global average pooling ([C, H, W] → [C]). */
import { Type, type Static } from '@sinclair/typebox';
import { poolOutputSize, type Kernels } from '../kernels/types.js';
import type { BuildContext, InferenceOp, InferenceScratch, LayerModule, OnnxGraph, Param, RuntimeLayer } from './types.js';

export const PoolSpec = Type.Object({
  type: Type.Union([Type.Literal('maxpool2d'), Type.Literal('avgpool2d')]),
  size: Type.Integer({ minimum: 1, maximum: 16 }),
  stride: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'Default: size' })),
}, { additionalProperties: false });

export const GlobalAvgPoolSpec = Type.Object({ type: Type.Literal('globalavgpool') }, { additionalProperties: false });

export interface PoolInfo {
  index: number; type: 'maxpool2d' | 'avgpool2d'; channels: number; inHeight: number; inWidth: number;
  size: number; stride: number; outHeight: number; outWidth: number;
}
export interface GlobalAvgPoolInfo { index: number; type: 'globalavgpool'; channels: number; spatial: number }

const image = (shape: number[], what: string, fail: (m: string) => never): [number, number, number] => {
  if (shape.length !== 3) fail(`${what} needs image input [channels, height, width]; it receives [${shape}]`);
  return shape as [number, number, number];
};

class Pool implements RuntimeLayer {
  readonly params: Param[] = [];
  readonly state = [];
  readonly outputSize: number;
  private readonly k: Kernels;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private readonly argmax: Int32Array;

  constructor(readonly info: PoolInfo, ctx: BuildContext) {
    this.k = ctx.kernels;
    this.outputSize = pool.outputSize(info, 0);
    this.y = new Float32Array(ctx.maxBatch * this.outputSize);
    this.dx = new Float32Array(ctx.maxBatch * info.channels * info.inHeight * info.inWidth);
    this.argmax = new Int32Array(info.type === 'maxpool2d' ? ctx.maxBatch * this.outputSize : 0);
  }

  forward(x: Float32Array, n: number): Float32Array {
    const { channels: c, inHeight: h, inWidth: w, size, stride } = this.info;
    if (this.info.type === 'maxpool2d') this.k.maxPool2dForward(x, this.y, this.argmax, n, c, h, w, size, stride);
    else this.k.avgPool2dForward(x, this.y, n, c, h, w, size, stride);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    const { channels: c, inHeight: h, inWidth: w, size, stride } = this.info;
    if (this.info.type === 'maxpool2d') this.k.maxPool2dBackward(dy, this.argmax, this.dx, n, c, h, w, size, stride);
    else this.k.avgPool2dBackward(dy, this.dx, n, c, h, w, size, stride);
    return this.dx;
  }
}

class GlobalAvgPool implements RuntimeLayer {
  readonly params: Param[] = [];
  readonly state = [];
  readonly outputSize: number;
  private readonly k: Kernels;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;

  constructor(readonly info: GlobalAvgPoolInfo, ctx: BuildContext) {
    this.k = ctx.kernels;
    this.outputSize = info.channels;
    this.y = new Float32Array(ctx.maxBatch * info.channels);
    this.dx = new Float32Array(ctx.maxBatch * info.channels * info.spatial);
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.k.globalAvgPoolForward(x, this.y, n, this.info.channels, this.info.spatial);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    this.k.globalAvgPoolBackward(dy, this.dx, n, this.info.channels, this.info.spatial);
    return this.dx;
  }
}

/** Any of the three pools; the metadata lists the layer's geometry. */
class PoolOp implements InferenceOp {
  readonly kind = 'pool';
  constructor(readonly layer: PoolInfo | GlobalAvgPoolInfo) {}

  run(k: Kernels, x: Float32Array, y: Float32Array, n: number, scratch: InferenceScratch): boolean {
    const l = this.layer;
    if (l.type === 'globalavgpool') k.globalAvgPoolForward(x, y, n, l.channels, l.spatial);
    else if (l.type === 'maxpool2d') k.maxPool2dForward(x, y, scratch.argmax, n, l.channels, l.inHeight, l.inWidth, l.size, l.stride);
    else k.avgPool2dForward(x, y, n, l.channels, l.inHeight, l.inWidth, l.size, l.stride);
    return true;
  }

  describe(): Record<string, unknown> {
    const { index: _index, ...layer } = this.layer;
    return { kind: this.kind, ...layer };
  }

  onnx(g: OnnxGraph, _i: number, x: string): { x: string; rank: number } {
    const l = this.layer;
    if (l.type === 'globalavgpool') return { x: g.node('GlobalAveragePool', [x]), rank: 4 };
    const attrs = [{ name: 'kernel_shape', ints: [l.size, l.size] }, { name: 'strides', ints: [l.stride, l.stride] }];
    return { x: g.node(l.type === 'maxpool2d' ? 'MaxPool' : 'AveragePool', [x], attrs), rank: 4 };
  }
}

export const pool: LayerModule<Static<typeof PoolSpec>, PoolInfo> = {
  types: ['maxpool2d', 'avgpool2d'],
  expand(d, { index, shape, fail }) {
    const [c, h, w] = image(shape, d.type, fail);
    const stride = d.stride ?? d.size;
    const outHeight = poolOutputSize(h, d.size, stride);
    const outWidth = poolOutputSize(w, d.size, stride);
    if (outHeight < 1 || outWidth < 1) fail(`a ${d.size}×${d.size} window does not fit a ${h}×${w} input`);
    return {
      info: { index, type: d.type, channels: c, inHeight: h, inWidth: w, size: d.size, stride, outHeight, outWidth },
      shape: [c, outHeight, outWidth],
    };
  },
  outputSize: (l) => l.channels * l.outHeight * l.outWidth,
  build: (info, ctx) => new Pool(info, ctx),
  inference: (l) => ({ ops: [new PoolOp(l)] }),
};

export const globalAvgPool: LayerModule<Static<typeof GlobalAvgPoolSpec>, GlobalAvgPoolInfo> = {
  types: ['globalavgpool'],
  expand(_d, { index, shape, fail }) {
    const [c, h, w] = image(shape, 'globalavgpool', fail);
    return { info: { index, type: 'globalavgpool', channels: c, spatial: h * w }, shape: [c] };
  },
  outputSize: (l) => l.channels,
  build: (info, ctx) => new GlobalAvgPool(info, ctx),
  inference: (l) => ({ ops: [new PoolOp(l)] }),
};
