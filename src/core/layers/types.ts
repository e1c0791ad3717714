/**
 * The contract of a layer type. Each type is one module in this folder that
 * says everything the rest of the code needs to know about it: its job-spec
 * fragment, how it expands to a LayerInfo (the manifest's record of it) and
 * what shape it outputs, its tensors (trainable parameters and saved state),
 * its training runtime, its inference op (with folding and ONNX export) and
 * its cost. The generic code (Sequential, InferenceModel, artifact checks,
 * checkpoints, ONNX, submit checks) only iterates modules through ./index.ts.
 */
import type { DenseChainLayer, Kernels } from '../kernels/types.js';
import type { RngState } from '../rng.js';
import type { BatchNormSpec, InitSpec } from '../spec.js';

/** What every LayerInfo has; `type` selects the module. */
export interface LayerInfoBase { index: number; type: string }

/**
 * A tensor a layer owns, saved in the artifact and the checkpoint as
 * `layers.{index}.{name}`. Trainable parameters start at `fill` (default 0)
 * unless `init` says how the seeded PRNG initializes them.
 */
export interface TensorSpec {
  name: string;
  shape: number[];
  fill?: number;
  /**
   * 'fan': the spec's `model.init` (he/glorot/lecun/normal) with fan-in =
   * shape[1]·Π shape[2..] and fan-out = shape[0]·Π shape[2..], drawn in the
   * layer's order. A function initializes the values itself (it must draw
   * from `rng` only, for reproducibility).
   */
  init?: 'fan' | ((value: Float32Array, rng: RngState, init: InitSpec) => void);
}

/** A trainable tensor, its gradient, and its safetensors name suffix. */
export interface Param {
  name: string;
  value: Float32Array;
  grad: Float32Array;
  shape: number[];
  init?: TensorSpec['init'];
}

/** A non-trainable tensor kept with the model (batch-norm running statistics). */
export interface StateTensor {
  name: string;
  value: Float32Array;
  shape: number[];
}

export interface RuntimeLayer {
  readonly info: LayerInfoBase;
  /** Values per row of the output. */
  readonly outputSize: number;
  readonly params: Param[];
  readonly state: StateTensor[];
  /** Forward over n rows of x; returns this layer's output buffer. */
  forward(x: Float32Array, n: number, training: boolean): Float32Array;
  /** Backward from dy (gradient of this layer's output); returns dx, or null when not needed. */
  backward(dy: Float32Array, n: number): Float32Array | null;
}

/** An activation fused into the kernels of the layer before it (kernel code and alpha). */
export interface Fused { code: number; alpha: number }

/** Counts the training steps that updated batch-norm statistics (cumulative momentum, renorm warm-up). */
export interface BatchNormClock { updates: number }

/** What a module's `build` receives from Sequential. */
export interface BuildContext {
  kernels: Kernels;
  /** Rows of the largest batch the model runs. */
  maxBatch: number;
  /** Values per row of this layer's input. */
  inputSize: number;
  /** False for the first layer with tensors and everything before it: no input gradient needed. */
  needsInputGrad: boolean;
  /** The activation of the next layer, when it runs inside this layer's kernels (see fusesActivation); else null. */
  fused: Fused | null;
  /** True when this layer's own computation already runs inside the previous layer (an activation fused there). */
  fusedIntoPrevious: boolean;
  bn: BatchNormSpec;
  clock: BatchNormClock;
  rng: RngState;
  /** Shared scratch of max(module.scratch) floats; its contents never outlive a kernel call. */
  scratch: Float32Array;
  /** This layer's tensors, created from module.params / module.state (zero-filled or `fill`). */
  params: Param[];
  state: StateTensor[];
}

/**
 * One set of batch-norm statistics a layer keeps: a batchnorm layer has one;
 * a layer with normalization inside (a recurrent cell) may keep several (per
 * gate, per time step). Diagnostics, the train/inference gap and the moving
 * versus population comparison read these.
 */
export interface NormStatistics {
  /** Index of the layer in the expanded list. */
  readonly layer: number;
  /** 'batchnorm1d' (one value per channel and row), 'batchnorm2d' (per channel over H·W), or the layer's own kind. */
  readonly kind: string;
  readonly channels: number;
  readonly runningMean: Float32Array;
  readonly runningVar: Float32Array;
  readonly gamma: Float32Array | null;
  readonly beta: Float32Array | null;
  readonly epsilon: number;
  /** Batch mean and unbiased variance averaged over the epoch's training batches; null when none used batch statistics. */
  epochStatistics(): { mean: Float64Array; variance: Float64Array } | null;
}

/** A layer with batch statistics in training and frozen statistics at inference. */
export interface NormalizingLayer extends RuntimeLayer {
  /** True: normalize with the running statistics in training too, and leave them alone. */
  frozen: boolean;
  statistics(): NormStatistics[];
  /** Start a new epoch of batch-statistics sums. */
  resetEpochStatistics(): void;
  /**
   * Training-mode output with batch statistics, without touching the running
   * statistics or the training caches (the "batch" side of the gap).
   */
  forwardBatchStatistics(x: Float32Array, n: number): Float32Array;
  /**
   * Population statistics: begin, then accumulate over every training batch
   * (x is this layer's input in inference mode, layers before it already
   * frozen to their population statistics), then finish, which replaces the
   * running statistics.
   */
  beginPopulation(): void;
  accumulatePopulation(x: Float32Array, n: number): void;
  finishPopulation(): void;
}

export function isNormalizing(layer: RuntimeLayer): layer is NormalizingLayer {
  return typeof (layer as Partial<NormalizingLayer>).statistics === 'function';
}

/** The frozen statistics of one set, as the model lists them (GET /v1/models/:id/batchnorm). */
export interface BatchNormStats {
  layer: number;
  channels: number;
  mean: number[];
  variance: number[];
  gamma: number[];
  beta: number[];
  epsilon: number;
  source: 'moving' | 'population';
}

/** An ONNX node attribute (the exporter converts these to AttributeProto). */
export type OnnxAttribute = { name: string; int: number } | { name: string; ints: number[] } | { name: string; float: number }
  | { name: string; string: string } | { name: string; strings: string[] };

/** The graph an op exports into (src/core/onnx.ts). */
export interface OnnxGraph {
  /** A float32 constant (copied); returns its name. */
  constant(name: string, dims: number[], values: ArrayLike<number>): string;
  /** An int64 constant (shapes for Reshape); returns its name. */
  constantInt64(name: string, dims: number[], values: number[]): string;
  /** Add a node; returns its output's name. */
  node(opType: string, inputs: string[], attributes?: OnnxAttribute[], output?: string): string;
  /** Add a node with `outputs` outputs (LSTM's Y and Y_h); returns their names. */
  nodeOutputs(opType: string, inputs: string[], attributes: OnnxAttribute[], outputs: number): string[];
}

/** A tensor of the inference-weights download (ops.{i}.{name}). */
export type PutTensor = (name: string, shape: number[], value: Float32Array) => void;

/** Buffers an inference op may use. */
export interface InferenceScratch {
  /** max(module.scratch) floats. */
  col: Float32Array;
  /** At least n·(widest row) ints. */
  argmax: Int32Array;
  epsilon: number;
}

/** An op in the form predict runs. */
export interface KernelOp {
  /**
   * Compute n rows: from x into y, returning true, or in place in x,
   * returning false. x is never written when the op returns true.
   */
  run(k: Kernels, x: Float32Array, y: Float32Array, n: number, scratch: InferenceScratch): boolean;
  /** A packed dense layer's operands: consecutive ones run as one Kernels.denseChain call. */
  readonly dense?: DenseChainLayer;
}

/**
 * One step of the inference form in plain layout: what the ONNX export and
 * the inference-weights download describe. Ops are immutable; folding and
 * lowering return new ones. An op either runs as it is (run) or is lowered
 * first (lower: packed weights, a following activation fused in).
 */
export interface InferenceOp extends Partial<KernelOp> {
  /** The op's name in the inference-weights metadata: dense, conv2d, batchnorm, activation, pool, … */
  readonly kind: string;
  /** The inference-weights metadata of this op; its tensors go through put. */
  describe(put: PutTensor, epsilon: number): Record<string, unknown>;
  /** ONNX nodes for this op; rank is the rank of x (2 for [N, features], 4 for [N, C, H, W]). */
  onnx(g: OnnxGraph, i: number, x: string, rank: number, epsilon: number): { x: string; rank: number };
  /** When the op is a per-channel affine map y = s·x + t (frozen batch norm): s, t and values per channel. */
  affine?(epsilon: number): { s: Float64Array; t: Float64Array; spatial: number };
  /** This op with a per-output affine map applied to its outputs (folding an affine that follows), or null when not exact. */
  foldOutputAffine?(s: Float64Array, t: Float64Array): InferenceOp | null;
  /** This op with a per-channel affine map of its input folded into its input columns, or null when not exact. */
  foldInputAffine?(s: Float64Array, t: Float64Array, spatial: number): InferenceOp | null;
  /** This op with its input columns scaled by factor (a pure-scale preprocessing), or null. */
  foldInputScale?(factor: readonly number[]): InferenceOp | null;
  /** True when the lowered op may read the caller's rows (it computes out of place). */
  readonly readsRawInput?: boolean;
  /** An activation op's kernel code and alpha (for fusing into the op before it). */
  readonly activation?: Fused;
  /** The form predict runs, with `fused` (an activation op right after it) inside its kernel. */
  lower?(k: Kernels, fused: Fused | null): KernelOp;
}

/** What a module's `inference` receives. */
export interface InferenceBuildContext {
  /** The layer's tensor by name, or null. */
  tensor(name: string): Float32Array | null;
  /** Values per row of the layer's input. */
  inputSize: number;
  epsilon: number;
  inferenceStats: 'moving' | 'population';
  bn: BatchNormSpec;
}

/** What a module's `expand` receives: where it sits and what it is given. */
export interface ExpandContext {
  index: number;
  /** The shape of the layer's input: [features], [C, H, W], or whatever the layer before produced. */
  shape: number[];
  /** False when the next layer is a batchnorm (a bias there is redundant). */
  biasAllowed: boolean;
  /** Throw a SpecError at the layer's path. */
  fail(message: string): never;
}

/**
 * A layer type. S is its spec fragment's static type, I its LayerInfo.
 * Optional members have the obvious default (no tensors, no fusing, no cost).
 */
export interface LayerModule<S extends { type: string } = { type: string }, I extends LayerInfoBase = LayerInfoBase> {
  /** The `type` values it handles. */
  readonly types: readonly string[];
  /** The LayerInfo for spec d and the shape of the layer's output. */
  expand(d: S, ctx: ExpandContext): { info: I; shape: number[] };
  /** Values per row of the output for an input of inputSize values. */
  outputSize(info: I, inputSize: number): number;
  /** Trainable tensors, in checkpoint order. */
  params?(info: I, bn: BatchNormSpec): TensorSpec[];
  /** Saved non-trainable tensors (running statistics), after the parameters. */
  state?(info: I, bn: BatchNormSpec): TensorSpec[];
  /** Whether an activation directly after this layer runs inside its kernels (the one fusion rule: see fusedActivation). */
  fusesActivation?(info: I, bn: BatchNormSpec): boolean;
  /** True for activation layers (the ones that can be fused into the layer before). */
  readonly isActivation?: boolean;
  /** Floats of shared scratch the layer needs (conv im2col). */
  scratch?(info: I): number;
  /** Multiply-adds per row of a forward pass (cost estimate and predict limits). */
  multiplyAdds?(info: I): number;
  /** Values per row the layer keeps for its backward pass beyond its input and output (gates, per-step states): memory estimate. */
  cacheValues?(info: I): number;
  /** The training runtime. */
  build(info: I, ctx: BuildContext): RuntimeLayer;
  /** The inference ops (empty: identity) and the statistics it lists. */
  inference(info: I, ctx: InferenceBuildContext): { ops: InferenceOp[]; stats?: BatchNormStats[] };
}
