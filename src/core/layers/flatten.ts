/** Flatten: [C, H, W] → C·H·W features. NCHW rows are already flat, so values and gradients pass through. */
import { Type, type Static } from '@sinclair/typebox';
import type { LayerInfoBase, LayerModule, Param, RuntimeLayer } from './types.js';

export const FlattenSpec = Type.Object({ type: Type.Literal('flatten') }, { additionalProperties: false });

export interface FlattenInfo { index: number; type: 'flatten'; features: number }

/** Values and gradients pass through unchanged (flatten; an activation computed inside the layer before it). */
export class PassThrough implements RuntimeLayer {
  readonly params: Param[] = [];
  readonly state = [];
  constructor(readonly info: LayerInfoBase, readonly outputSize: number) {}
  forward(x: Float32Array): Float32Array {
    return x;
  }
  backward(dy: Float32Array): Float32Array {
    return dy;
  }
}

export const flatten: LayerModule<Static<typeof FlattenSpec>, FlattenInfo> = {
  types: ['flatten'],
  expand(_d, { index, shape }) {
    const features = shape.reduce((a, b) => a * b, 1);
    return { info: { index, type: 'flatten', features }, shape: [features] };
  },
  outputSize: (_l, inputSize) => inputSize,
  build: (info, ctx) => new PassThrough(info, ctx.inputSize),
  inference: () => ({ ops: [] }),
};
