/** Inverted dropout: scaled random mask in training, identity at inference. */
import { Type, type Static } from '@sinclair/typebox';
import type { Kernels } from '../kernels/types.js';
import type { RngState } from '../rng.js';
import type { BuildContext, LayerModule, Param, RuntimeLayer } from './types.js';

export const DropoutSpec = Type.Object({
  type: Type.Literal('dropout'),
  rate: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
}, { additionalProperties: false });

export interface DropoutInfo { index: number; type: 'dropout'; rate: number }

class Dropout implements RuntimeLayer {
  readonly params: Param[] = [];
  readonly state = [];
  readonly outputSize: number;
  private readonly k: Kernels;
  private readonly rng: RngState;
  private readonly y: Float32Array;
  private readonly mask: Float32Array;
  private readonly dx: Float32Array;

  constructor(readonly info: DropoutInfo, ctx: BuildContext) {
    this.k = ctx.kernels;
    this.rng = ctx.rng;
    this.outputSize = ctx.inputSize;
    this.y = new Float32Array(ctx.maxBatch * this.outputSize);
    this.mask = new Float32Array(ctx.maxBatch * this.outputSize);
    this.dx = new Float32Array(ctx.maxBatch * this.outputSize);
  }

  forward(x: Float32Array, n: number, training: boolean): Float32Array {
    if (!training) return x; // inverted dropout: identity at inference
    this.k.dropoutForward(x, this.y, this.mask, n * this.outputSize, this.info.rate, this.rng);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    this.k.multiply(dy, this.mask, this.dx, n * this.outputSize);
    return this.dx;
  }
}

export const dropout: LayerModule<Static<typeof DropoutSpec>, DropoutInfo> = {
  types: ['dropout'],
  expand: (d, { index, shape }) => ({ info: { index, type: 'dropout', rate: d.rate }, shape }),
  outputSize: (_l, inputSize) => inputSize,
  build: (info, ctx) => new Dropout(info, ctx),
  inference: () => ({ ops: [] }),
};
