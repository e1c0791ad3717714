/**
 * A trained model in inference form: frozen batch-norm statistics, batch norm
 * folded into an adjacent dense or conv layer wherever that is exact, the
 * model's own preprocessing applied to raw rows. Each row is computed
 * independently of the others in its batch, in an order that does not depend
 * on the batch: dense and conv layers run denseInfer / conv2dInfer on weights
 * packed once at load, so a row's prediction is the same bytes alone or at any
 * position of any batch (for one kernel set and CPU path). Buffers grow to the
 * largest batch seen and are reused.
 */
import type { Preprocess } from '../datasets/types.js';
import { readWeights, type Artifact, type ModelManifest } from './artifact.js';
import { getKernels } from './kernels/index.js';
import { activationCode, conv2dColSize, NO_ACTIVATION, packedDenseSize, type DenseChain, type Kernels } from './kernels/types.js';
import { outputSize, type LayerInfo } from './layers.js';

/**
 * One step of the inference form in plain layout, before packing (what
 * inferenceForm() gives the ONNX export and the weights download): dense
 * weight [out, in], conv2d, batchnorm (not folded), activation, pool.
 */
export type InferenceOp = Extract<Op, { kind: 'dense' | 'conv2d' | 'batchnorm' | 'activation' | 'pool' }>;
export type InferenceInput = Input;

type Op =
  | { kind: 'dense'; weight: Float32Array; bias: Float32Array; in: number; out: number }
  // Dense and conv layers as predictInto runs them (see lowerOps): dense weights packed by
  // packDense; `act` is an activation fused into the layer's kernel (NO_ACTIVATION: none).
  | { kind: 'matmul'; packed: Float32Array; bias: Float32Array; in: number; out: number; act: number; alpha: number }
  // Consecutive matmuls compiled into one kernel call (Kernels.denseChain).
  | { kind: 'denseChain'; chain: DenseChain; in: number; out: number }
  | { kind: 'convInfer'; weight: Float32Array; bias: Float32Array; layer: Extract<LayerInfo, { type: 'conv2d' }>; act: number; alpha: number }
  | { kind: 'conv2d'; weight: Float32Array; bias: Float32Array; layer: Extract<LayerInfo, { type: 'conv2d' }> }
  | { kind: 'batchnorm'; channels: number; spatial: number; gamma: Float32Array; beta: Float32Array; mean: Float32Array; variance: Float32Array }
  | { kind: 'activation'; code: number; alpha: number; size: number }
  | { kind: 'pool'; layer: Extract<LayerInfo, { type: 'maxpool2d' | 'avgpool2d' | 'globalavgpool' }> };

/**
 * How raw rows enter the first op: `direct`, the first op (a matmul) reads the
 * caller's rows (no preprocessing, or a pure per-feature scale folded into its
 * weights); `copy` into the work buffer (no preprocessing, and the first op
 * works in place); `affine`, the model's preprocessing x' = (x − offset)·factor
 * into the work buffer.
 */
type Input = { kind: 'direct' } | { kind: 'copy' } | { kind: 'affine'; offset: Float64Array; factor: Float64Array };

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

export class InferenceModel {
  readonly features: number;
  readonly classes: number;
  readonly classNames: string[];
  readonly folded: boolean;
  private readonly ops: Op[];
  /** The folded ops before packing, and the input stage (see inferenceForm). */
  private form: { input: InferenceInput; ops: readonly InferenceOp[] } | undefined;
  private readonly bnStats: BatchNormStats[];
  /** Largest row (values) any layer produces. */
  private readonly maxWidth: number;
  private readonly col: Float32Array;
  private capacity = 0;
  private bufA = new Float32Array(0);
  private bufB = new Float32Array(0);
  private argmax = new Int32Array(0);
  /** Per-row softmax scratch. */
  private readonly exps: Float64Array;

  private constructor(readonly manifest: ModelManifest, private readonly k: Kernels, ops: Op[], folded: boolean, bnStats: BatchNormStats[],
    private readonly input: Input) {
    this.features = manifest.features;
    this.classes = manifest.classes;
    this.classNames = manifest.classNames;
    this.ops = ops;
    this.folded = folded;
    this.bnStats = bnStats;
    this.exps = new Float64Array(manifest.classes);
    let width = manifest.features;
    this.maxWidth = width;
    for (const l of manifest.layers) this.maxWidth = Math.max(this.maxWidth, (width = outputSize(l, width)));
    this.col = new Float32Array(Math.max(0, ...manifest.layers.map((l) => (l.type === 'conv2d'
      ? conv2dColSize(l.inChannels, l.kernelSize, l.kernelSize, l.outHeight, l.outWidth) : 0))));
  }

  static fromArtifact(artifact: Artifact, options: { kernels?: Kernels; fold?: boolean } = {}): InferenceModel {
    const { manifest } = artifact;
    const tensors = readWeights(artifact);
    const get = (layer: number, name: string) => tensors.get(`layers.${layer}.${name}`)?.value ?? null;
    const eps = manifest.epsilon;
    const bnStats: BatchNormStats[] = [];
    let ops: Op[] = [];
    let width = manifest.features;
    for (const l of manifest.layers) {
      switch (l.type) {
        case 'dense':
          ops.push({ kind: 'dense', in: l.in, out: l.out, weight: get(l.index, 'weight')!, bias: get(l.index, 'bias') ?? new Float32Array(l.out) });
          break;
        case 'conv2d':
          ops.push({ kind: 'conv2d', layer: l, weight: get(l.index, 'weight')!, bias: get(l.index, 'bias') ?? new Float32Array(l.filters) });
          break;
        case 'batchnorm': {
          const c = l.channels;
          const op = {
            kind: 'batchnorm' as const, channels: c, spatial: l.spatial,
            gamma: get(l.index, 'gamma') ?? new Float32Array(c).fill(1), beta: get(l.index, 'beta') ?? new Float32Array(c),
            mean: get(l.index, 'running_mean')!, variance: get(l.index, 'running_var')!,
          };
          ops.push(op);
          bnStats.push({
            layer: l.index, channels: c, mean: [...op.mean], variance: [...op.variance], gamma: [...op.gamma],
            beta: [...op.beta], epsilon: eps, source: manifest.inferenceStats,
          });
          break;
        }
        case 'maxpool2d': case 'avgpool2d': case 'globalavgpool':
          ops.push({ kind: 'pool', layer: l });
          break;
        case 'dropout': case 'flatten': // identity at inference / NCHW rows are already flat
          break;
        default:
          ops.push({ kind: 'activation', code: activationCode(l.type), alpha: l.alpha, size: width });
      }
      width = outputSize(l, width);
    }
    const fold = options.fold ?? true;
    if (fold) ops = foldBatchNorm(ops, eps);
    const input = inputStage(manifest.preprocess, ops, fold);
    const kernels = options.kernels ?? getKernels();
    const model = new InferenceModel(manifest, kernels, lowerOps(ops, kernels), fold, bnStats, input);
    model.form = { input, ops: ops as InferenceOp[] }; // folding leaves no other kinds
    return model;
  }

  /**
   * The tensors predict computes with, in plain layout (before packing), not
   * to be written to: how raw rows enter (the preprocessing left after
   * folding), then the folded ops in order.
   */
  inferenceForm(): { input: InferenceInput; ops: readonly InferenceOp[] } {
    return this.form!;
  }

  /** The frozen statistics of each batch-norm layer, as trained (before folding). */
  batchNormStats(): BatchNormStats[] {
    return this.bnStats;
  }

  /** Class probabilities [n, classes] for n raw rows [n, features]. */
  predict(rows: Float32Array, n: number): Float32Array {
    const out = new Float32Array(n * this.classes);
    this.predictInto(rows, n, out);
    return out;
  }

  /** As predict, writing into out; allocates nothing once the buffers fit n rows. */
  predictInto(rows: Float32Array, n: number, out: Float32Array): void {
    if (rows.length < n * this.features) throw new RangeError(`expected ${n * this.features} values for ${n} rows, got ${rows.length}`);
    if (n > this.capacity) {
      this.capacity = n;
      this.bufA = new Float32Array(n * this.maxWidth);
      this.bufB = new Float32Array(n * this.maxWidth);
      this.argmax = new Int32Array(n * this.maxWidth);
    }
    let x: Float32Array = this.bufA;
    let y: Float32Array = this.bufB;
    const input = this.input;
    const size = n * this.features;
    if (input.kind === 'direct') {
      x = rows;
      y = this.bufA;
    } else if (input.kind === 'copy') {
      x.set(rows.subarray(0, size));
    } else {
      // (x − offset)·factor in double precision, as applyPreprocess (src/datasets/preprocess.ts).
      const { offset, factor } = input;
      const f = this.features;
      for (let base = 0; base < size; base += f) {
        for (let j = 0; j < f; j++) x[base + j] = (rows[base + j]! - offset[j]!) * factor[j]!;
      }
    }
    const eps = this.manifest.epsilon;
    const k = this.k;
    for (const op of this.ops) {
      switch (op.kind) {
        case 'denseChain': {
          op.chain.run(x, n, y);
          const t = x;
          x = y;
          y = t === rows ? this.bufB : t; // never write into the caller's rows
          break;
        }
        case 'convInfer': {
          const l = op.layer;
          k.conv2dInfer(x, op.weight, op.bias, y, n, l.inChannels, l.inHeight, l.inWidth, l.filters, l.kernelSize,
            l.kernelSize, l.stride, l.stride, l.padding, l.padding, this.col, op.act, op.alpha);
          [x, y] = [y, x];
          break;
        }
        case 'dense': case 'conv2d': case 'matmul':
          throw new Error('unreachable: lowerOps packs every dense and conv layer and chains every matmul');
        case 'batchnorm':
          k.batchNormForwardInfer(x, x, n, op.channels, op.spatial, op.gamma, op.beta, op.mean, op.variance, eps);
          break;
        case 'activation':
          k.activationForward(op.code, x, x, n * op.size, op.alpha);
          break;
        case 'pool': {
          const l = op.layer;
          if (l.type === 'globalavgpool') k.globalAvgPoolForward(x, y, n, l.channels, l.spatial);
          else if (l.type === 'maxpool2d') k.maxPool2dForward(x, y, this.argmax, n, l.channels, l.inHeight, l.inWidth, l.size, l.stride);
          else k.avgPool2dForward(x, y, n, l.channels, l.inHeight, l.inWidth, l.size, l.stride);
          [x, y] = [y, x];
        }
      }
    }
    softmaxRows(x, out, n, this.classes, this.exps);
  }
}

/** Row-wise softmax, max-subtracted, in double precision (exps: scratch of c values). */
function softmaxRows(logits: Float32Array, out: Float32Array, n: number, c: number, exps: Float64Array): void {
  for (let r = 0; r < n; r++) {
    const base = r * c;
    let max = -Infinity;
    for (let j = 0; j < c; j++) max = Math.max(max, logits[base + j]!);
    let sum = 0;
    for (let j = 0; j < c; j++) sum += (exps[j] = Math.exp(logits[base + j]! - max));
    for (let j = 0; j < c; j++) out[base + j] = exps[j]! / sum;
  }
}

/**
 * How raw rows reach the first op (see Input). With folding on, a
 * preprocessing that is a pure per-feature scale (every offset 0, as `scale`
 * of pixel values in [0, 255]) folds into the input columns of a leading dense
 * layer: W'[o, j] = W[o, j]·factor[j], exact in real arithmetic like the BN
 * folding. A nonzero offset is not folded (W·offset would cancel against W·x in
 * single precision); it stays an explicit pass.
 */
function inputStage(p: Preprocess, ops: Op[], fold: boolean): Input {
  const first = ops[0];
  if (p.kind === 'none') return first?.kind === 'dense' ? { kind: 'direct' } : { kind: 'copy' };
  if (fold && first?.kind === 'dense' && p.offset.every((o) => o === 0)) {
    const weight = first.weight.slice();
    for (let o = 0; o < first.out; o++) {
      for (let j = 0; j < first.in; j++) weight[o * first.in + j] = weight[o * first.in + j]! * p.factor[j]!;
    }
    ops[0] = { ...first, weight };
    return { kind: 'direct' };
  }
  return { kind: 'affine', offset: Float64Array.from(p.offset), factor: Float64Array.from(p.factor) };
}

/**
 * Dense and conv ops in the form predictInto runs: dense weights packed once
 * by packDense (a copy; the artifact's tensors stay as they are), and an
 * activation right after fused into the layer's kernel.
 */
function lowerOps(ops: Op[], k: Kernels): Op[] {
  const out: Op[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.kind !== 'dense' && op.kind !== 'conv2d') {
      out.push(op);
      continue;
    }
    const next = ops[i + 1];
    const fused = next?.kind === 'activation';
    if (fused) i++;
    const act = fused ? next.code : NO_ACTIVATION;
    const alpha = fused ? next.alpha : 0;
    if (op.kind === 'dense') {
      const packed = k.alignedFloat32Array(packedDenseSize(op.out, op.in));
      k.packDense(op.weight, op.out, op.in, packed);
      out.push({ kind: 'matmul', packed, bias: op.bias, in: op.in, out: op.out, act, alpha });
    } else {
      out.push({ kind: 'convInfer', weight: op.weight, bias: op.bias, layer: op.layer, act, alpha });
    }
  }
  // Each run of matmuls becomes one chain: one kernel call per run.
  const chained: Op[] = [];
  for (let i = 0; i < out.length;) {
    const run: Extract<Op, { kind: 'matmul' }>[] = [];
    for (let op = out[i]; op?.kind === 'matmul'; op = out[++i]) run.push(op);
    if (run.length === 0) {
      chained.push(out[i++]!);
      continue;
    }
    const chain = k.denseChain(run.map((m) => ({ packed: m.packed, bias: m.bias, in: m.in, out: m.out, activation: m.act, alpha: m.alpha })));
    chained.push({ kind: 'denseChain', chain, in: run[0]!.in, out: run[run.length - 1]!.out });
  }
  return chained;
}

/**
 * Frozen batch norm is a per-channel affine map y = s·x + t with
 * s = γ/√(var+ε), t = β − mean·s. Right after a dense or conv layer it folds
 * into that layer's output rows (filters); otherwise (after an activation, or
 * on the raw inputs) it folds into the input columns of the next dense layer
 * (a flattened [C, H, W] input has H·W columns per channel). Both are exact in
 * real arithmetic. Folding into a following conv is not (zero padding would
 * be shifted too), so such a BN stays an op of its own.
 */
function foldBatchNorm(ops: Op[], eps: number): Op[] {
  const out: Op[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.kind !== 'batchnorm') {
      out.push(op.kind === 'dense' || op.kind === 'conv2d' ? { ...op, weight: op.weight.slice(), bias: op.bias.slice() } : op);
      continue;
    }
    const s = new Float64Array(op.channels);
    const t = new Float64Array(op.channels);
    for (let c = 0; c < op.channels; c++) {
      s[c] = op.gamma[c]! / Math.sqrt(op.variance[c]! + eps);
      t[c] = op.beta[c]! - op.mean[c]! * s[c]!;
    }
    const prev = out[out.length - 1];
    const next = ops[i + 1];
    if (prev?.kind === 'dense' || prev?.kind === 'conv2d') {
      const rows = prev.kind === 'dense' ? prev.out : prev.layer.filters;
      const per = prev.weight.length / rows;
      for (let o = 0; o < rows; o++) {
        for (let j = 0; j < per; j++) prev.weight[o * per + j] = prev.weight[o * per + j]! * s[o]!;
        prev.bias[o] = prev.bias[o]! * s[o]! + t[o]!;
      }
    } else if (next?.kind === 'dense') {
      const weight = next.weight.slice();
      const bias = next.bias.slice();
      for (let o = 0; o < next.out; o++) {
        let shift = 0;
        for (let j = 0; j < next.in; j++) {
          const c = Math.floor(j / op.spatial);
          shift += weight[o * next.in + j]! * t[c]!;
          weight[o * next.in + j] = weight[o * next.in + j]! * s[c]!;
        }
        bias[o] = bias[o]! + shift;
      }
      out.push({ ...next, weight, bias });
      i++; // the next dense layer is consumed
    } else {
      out.push(op);
    }
  }
  return out;
}
