/**
 * The registry of layer types: `type` → module (./types.ts says what a module
 * owns). Adding a layer type is adding its module here; nothing else switches
 * on a layer's type.
 */
import type { BatchNormSpec } from '../spec.js';
import { activation, ActivationSpec, type ActivationInfo } from './activation.js';
import { batchnorm, BatchNormLayerSpec, type BatchNormInfo } from './batchnorm.js';
import { conv2d, Conv2dSpec, type Conv2dInfo } from './conv2d.js';
import { dense, DenseSpec, type DenseInfo } from './dense.js';
import { dropout, DropoutSpec, type DropoutInfo } from './dropout.js';
import { flatten, FlattenSpec, type FlattenInfo } from './flatten.js';
import { globalAvgPool, GlobalAvgPoolSpec, pool, PoolSpec, type GlobalAvgPoolInfo, type PoolInfo } from './pool.js';
import { recurrent, RecurrentLayerSpec, type RecurrentInfo } from './recurrent.js';
import type { Fused, LayerInfoBase, LayerModule, TensorSpec } from './types.js';
import { activationCode, type ActivationKind } from '../kernels/types.js';

/** Every layer module. */
export const LAYER_MODULES = [dense, batchnorm, activation, dropout, conv2d, pool, globalAvgPool, flatten, recurrent] as const;

/**
 * The modules' spec fragments for the explicit `model.layers` list, from
 * which spec.ts makes the union (a tuple, so the union keeps each fragment's
 * type; error messages list the types in this order).
 */
export const LAYER_SPECS: [typeof DenseSpec, typeof BatchNormLayerSpec, typeof ActivationSpec, typeof DropoutSpec, typeof Conv2dSpec,
  typeof PoolSpec, typeof GlobalAvgPoolSpec, typeof FlattenSpec, typeof RecurrentLayerSpec] = [DenseSpec, BatchNormLayerSpec, ActivationSpec, DropoutSpec,
  Conv2dSpec, PoolSpec, GlobalAvgPoolSpec, FlattenSpec, RecurrentLayerSpec];

/** What the manifest records of each layer. */
export type LayerInfo = DenseInfo | BatchNormInfo | ActivationInfo | DropoutInfo | Conv2dInfo | PoolInfo | GlobalAvgPoolInfo | FlattenInfo | RecurrentInfo;

const byType = new Map<string, LayerModule>();
for (const m of LAYER_MODULES) for (const t of m.types) byType.set(t, m as unknown as LayerModule);
// A spec fragment without a module (or the reverse) is a registration mistake: fail at load, not on the first job.
const specTypes = LAYER_SPECS.flatMap((s) => {
  const tag = s.properties.type as unknown as { const?: string; anyOf?: Array<{ const: string }> };
  return tag.anyOf ? tag.anyOf.map((v) => v.const) : [tag.const!];
});
if (specTypes.length !== byType.size || specTypes.some((t) => !byType.has(t))) {
  throw new Error(`layer registry: spec types [${specTypes}] and module types [${[...byType.keys()]}] differ`);
}

/** The module of a layer type (a spec fragment's or a LayerInfo's `type`). */
export function moduleOf(type: string): LayerModule {
  const m = byType.get(type);
  if (!m) throw new Error(`unknown layer type ${type}`);
  return m;
}

/** Trainable tensors, then saved state, of a layer. */
export function layerTensors(l: LayerInfoBase, bn: BatchNormSpec): { params: TensorSpec[]; state: TensorSpec[] } {
  const m = moduleOf(l.type);
  return { params: m.params?.(l, bn) ?? [], state: m.state?.(l, bn) ?? [] };
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Trainable values of the layers (what `parameters` in the manifest says). */
export function parameterCount(layers: LayerInfoBase[], bn: BatchNormSpec): number {
  let total = 0;
  for (const l of layers) for (const p of layerTensors(l, bn).params) total += size(p.shape);
  return total;
}

/** Values per row after a layer (its output size). */
export function outputSize(l: LayerInfoBase, inputSize: number): number {
  return moduleOf(l.type).outputSize(l, inputSize);
}

/** Multiply-adds of one row through the layers (the layers that declare a cost; the rest is linear in the widths). */
export function multiplyAddsPerRow(layers: LayerInfoBase[]): number {
  let total = 0;
  for (const l of layers) total += moduleOf(l.type).multiplyAdds?.(l) ?? 0;
  return Math.max(1, total);
}

/** Values per row the layers keep beyond their inputs and outputs (memory estimate). */
export function cacheValuesPerRow(layers: LayerInfoBase[]): number {
  let total = 0;
  for (const l of layers) total += moduleOf(l.type).cacheValues?.(l) ?? 0;
  return total;
}

/** Floats of the scratch buffer the layers share (the largest any of them needs). */
export function scratchSize(layers: LayerInfoBase[]): number {
  return Math.max(0, ...layers.map((l) => moduleOf(l.type).scratch?.(l) ?? 0));
}

/**
 * The activation fusion rule, the one place it is written: an activation
 * layer directly after a layer whose module says it fuses activations (a
 * dense layer with a bias; batch norm except renormalization) runs inside
 * that layer's kernels. Returns the fused activation for layer i, or null.
 */
export function fusedActivation(layers: LayerInfoBase[], i: number, bn: BatchNormSpec, fuse: boolean): Fused | null {
  const next = layers[i + 1];
  if (!fuse || !next || !moduleOf(next.type).isActivation) return null;
  const l = layers[i]!;
  if (!moduleOf(l.type).fusesActivation?.(l, bn)) return null;
  const act = next as ActivationInfo;
  return { code: activationCode(act.type as ActivationKind), alpha: act.alpha };
}

export type { ActivationInfo, BatchNormInfo, Conv2dInfo, DenseInfo, DropoutInfo, FlattenInfo, GlobalAvgPoolInfo, PoolInfo, RecurrentInfo };
