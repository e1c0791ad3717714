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
import type { DenseChainLayer, Kernels } from './kernels/types.js';
import { moduleOf, outputSize, scratchSize } from './layers/index.js';
import type { BatchNormStats, InferenceOp, InferenceScratch, KernelOp } from './layers/types.js';

export type { BatchNormStats, InferenceOp };

/**
 * How raw rows enter the first op: `direct`, the first op (a matmul) reads the
 * caller's rows (no preprocessing, or a pure per-feature scale folded into its
 * weights); `copy` into the work buffer (no preprocessing, and the first op
 * works in place); `affine`, the model's preprocessing x' = (x − offset)·factor
 * into the work buffer.
 */
export type InferenceInput = { kind: 'direct' } | { kind: 'copy' } | { kind: 'affine'; offset: Float64Array; factor: Float64Array };

export class InferenceModel {
  readonly features: number;
  readonly classes: number;
  readonly classNames: string[];
  readonly folded: boolean;
  private readonly ops: KernelOp[];
  /** The folded ops before packing, and the input stage (see inferenceForm). */
  private form: { input: InferenceInput; ops: readonly InferenceOp[] } | undefined;
  private readonly bnStats: BatchNormStats[];
  /** Largest row (values) any layer produces. */
  private readonly maxWidth: number;
  private readonly scratch: InferenceScratch;
  private capacity = 0;
  private bufA = new Float32Array(0);
  private bufB = new Float32Array(0);

  private constructor(readonly manifest: ModelManifest, private readonly k: Kernels, ops: KernelOp[], folded: boolean, bnStats: BatchNormStats[],
    private readonly input: InferenceInput) {
    this.features = manifest.features;
    this.classes = manifest.classes;
    this.classNames = manifest.classNames;
    this.ops = ops;
    this.folded = folded;
    this.bnStats = bnStats;
    let width = manifest.features;
    this.maxWidth = width;
    for (const l of manifest.layers) this.maxWidth = Math.max(this.maxWidth, (width = outputSize(l, width)));
    this.scratch = { col: new Float32Array(scratchSize(manifest.layers)), argmax: new Int32Array(0), epsilon: manifest.epsilon };
  }

  static fromArtifact(artifact: Artifact, options: { kernels?: Kernels; fold?: boolean } = {}): InferenceModel {
    const { manifest } = artifact;
    const tensors = readWeights(artifact);
    const eps = manifest.epsilon;
    const bnStats: BatchNormStats[] = [];
    let ops: InferenceOp[] = [];
    let width = manifest.features;
    for (const l of manifest.layers) {
      const built = moduleOf(l.type).inference(l, {
        tensor: (name) => tensors.get(`layers.${l.index}.${name}`)?.value ?? null,
        inputSize: width, epsilon: eps, inferenceStats: manifest.inferenceStats, bn: manifest.spec.batchNorm,
      });
      ops.push(...built.ops);
      bnStats.push(...(built.stats ?? []));
      width = outputSize(l, width);
    }
    const fold = options.fold ?? true;
    if (fold) ops = foldBatchNorm(ops, eps);
    const input = inputStage(manifest.preprocess, ops, fold);
    const kernels = options.kernels ?? getKernels();
    const model = new InferenceModel(manifest, kernels, lowerOps(ops, kernels), fold, bnStats, input);
    model.form = { input, ops };
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
      this.scratch.argmax = new Int32Array(n * this.maxWidth);
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
    for (const op of this.ops) {
      if (!op.run(this.k, x, y, n, this.scratch)) continue; // in place
      const t = x;
      x = y;
      y = t === rows ? this.bufB : t; // never write into the caller's rows
    }
    this.k.softmaxRows(x, out, n, this.classes);
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
function inputStage(p: Preprocess, ops: InferenceOp[], fold: boolean): InferenceInput {
  const first = ops[0];
  if (p.kind === 'none') return first?.readsRawInput ? { kind: 'direct' } : { kind: 'copy' };
  const scaled = fold && p.offset.every((o) => o === 0) ? first?.foldInputScale?.(p.factor) : null;
  if (scaled?.readsRawInput) {
    ops[0] = scaled;
    return { kind: 'direct' };
  }
  return { kind: 'affine', offset: Float64Array.from(p.offset), factor: Float64Array.from(p.factor) };
}

/**
 * The ops in the form predictInto runs: each op's `lower` (dense weights
 * packed once, a copy; the artifact's tensors stay as they are), with an
 * activation op right after fused into its kernel.
 */
function lowerOps(ops: InferenceOp[], k: Kernels): KernelOp[] {
  const out: KernelOp[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (!op.lower) {
      if (!op.run) throw new Error(`inference op ${op.kind} can neither run nor be lowered`);
      out.push(op as KernelOp);
      continue;
    }
    const fused = ops[i + 1]?.activation ?? null;
    if (fused) i++;
    out.push(op.lower(k, fused));
  }
  // Each run of packed dense layers becomes one chain: one kernel call per run.
  const chained: KernelOp[] = [];
  for (let i = 0; i < out.length;) {
    const run: DenseChainLayer[] = [];
    for (let op = out[i]; op?.dense; op = out[++i]) run.push(op.dense);
    if (run.length === 0) {
      chained.push(out[i++]!);
      continue;
    }
    const chain = k.denseChain(run);
    chained.push({ run: (_k, x, y, n) => { chain.run(x, n, y); return true; } });
  }
  return chained;
}

/**
 * Folds every per-channel affine op (frozen batch norm) where that is exact:
 * into the output rows of the op before it when that op takes it, else into
 * the input columns of the op after it (which that op then replaces); an
 * affine neither takes stays an op of its own. Each op says what it takes.
 */
function foldBatchNorm(ops: InferenceOp[], eps: number): InferenceOp[] {
  const out: InferenceOp[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const affine = op.affine?.(eps);
    if (!affine) {
      out.push(op);
      continue;
    }
    const intoPrev = out[out.length - 1]?.foldOutputAffine?.(affine.s, affine.t);
    if (intoPrev) {
      out[out.length - 1] = intoPrev;
      continue;
    }
    const intoNext = ops[i + 1]?.foldInputAffine?.(affine.s, affine.t, affine.spatial);
    if (intoNext) {
      out.push(intoNext);
      i++; // the next op is consumed
      continue;
    }
    out.push(op);
  }
  return out;
}
