/**
 * A trained model in inference form: frozen batch-norm statistics, batch norm
 * folded into an adjacent dense layer wherever that is exact, the model's own
 * preprocessing applied to raw rows. Each row is computed independently of the
 * others in its batch. Buffers grow to the largest batch seen and are reused.
 */
import { applyPreprocess } from '../datasets/preprocess.js';
import { readWeights, type Artifact, type ModelManifest } from './artifact.js';
import { getKernels } from './kernels/index.js';
import { activationCode, type Kernels } from './kernels/types.js';
import type { LayerInfo } from './layers.js';

type Op =
  | { kind: 'dense'; weight: Float32Array; bias: Float32Array; in: number; out: number }
  | { kind: 'batchnorm'; channels: number; gamma: Float32Array; beta: Float32Array; mean: Float32Array; variance: Float32Array }
  | { kind: 'activation'; code: number; alpha: number };

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
  private readonly bnStats: BatchNormStats[];
  private readonly maxWidth: number;
  private capacity = 0;
  private bufA = new Float32Array(0);
  private bufB = new Float32Array(0);

  private constructor(readonly manifest: ModelManifest, private readonly k: Kernels, ops: Op[], folded: boolean, bnStats: BatchNormStats[]) {
    this.features = manifest.features;
    this.classes = manifest.classes;
    this.classNames = manifest.classNames;
    this.ops = ops;
    this.folded = folded;
    this.bnStats = bnStats;
    this.maxWidth = Math.max(manifest.features, ...manifest.layers.map((l) => (l.type === 'dense' ? l.out : 0)));
  }

  static fromArtifact(artifact: Artifact, options: { kernels?: Kernels; fold?: boolean } = {}): InferenceModel {
    const { manifest } = artifact;
    const tensors = readWeights(artifact);
    const get = (layer: number, name: string) => tensors.get(`layers.${layer}.${name}`)?.value ?? null;
    const eps = manifest.epsilon;
    const bnStats: BatchNormStats[] = [];
    let ops: Op[] = [];
    for (const l of manifest.layers) {
      if (l.type === 'dense') {
        ops.push({ kind: 'dense', in: l.in, out: l.out, weight: get(l.index, 'weight')!, bias: get(l.index, 'bias') ?? new Float32Array(l.out) });
      } else if (l.type === 'batchnorm') {
        const c = l.channels;
        const op = {
          kind: 'batchnorm' as const, channels: c,
          gamma: get(l.index, 'gamma') ?? new Float32Array(c).fill(1), beta: get(l.index, 'beta') ?? new Float32Array(c),
          mean: get(l.index, 'running_mean')!, variance: get(l.index, 'running_var')!,
        };
        ops.push(op);
        bnStats.push({
          layer: l.index, channels: c, mean: [...op.mean], variance: [...op.variance], gamma: [...op.gamma],
          beta: [...op.beta], epsilon: eps, source: manifest.inferenceStats,
        });
      } else if (l.type !== 'dropout') { // dropout is the identity at inference
        ops.push({ kind: 'activation', code: activationCode(l.type), alpha: l.alpha });
      }
    }
    const fold = options.fold ?? true;
    if (fold) ops = foldBatchNorm(ops, eps);
    return new InferenceModel(manifest, options.kernels ?? getKernels(), ops, fold, bnStats);
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
    }
    applyPreprocess(this.manifest.preprocess, rows, this.bufA, n, this.features);
    let x = this.bufA;
    let y = this.bufB;
    const eps = this.manifest.epsilon;
    let width = this.features;
    for (const op of this.ops) {
      if (op.kind === 'dense') {
        this.k.gemm(false, true, n, op.out, op.in, 1, x, op.weight, 0, y);
        this.k.addBias(y, op.bias, n, op.out, 1);
        [x, y] = [y, x];
        width = op.out;
      } else if (op.kind === 'batchnorm') {
        this.k.batchNormForwardInfer(x, x, n, op.channels, 1, op.gamma, op.beta, op.mean, op.variance, eps);
      } else {
        this.k.activationForward(op.code, x, x, n * width, op.alpha);
      }
    }
    softmaxRows(x, out, n, this.classes);
  }
}

function softmaxRows(logits: Float32Array, out: Float32Array, n: number, c: number): void {
  for (let r = 0; r < n; r++) {
    let max = -Infinity;
    for (let j = 0; j < c; j++) max = Math.max(max, logits[r * c + j]!);
    let sum = 0;
    for (let j = 0; j < c; j++) sum += Math.exp(logits[r * c + j]! - max);
    for (let j = 0; j < c; j++) out[r * c + j] = Math.exp(logits[r * c + j]! - max) / sum;
  }
}

/**
 * Frozen batch norm is a per-channel affine map y = s·x + t with
 * s = γ/√(var+ε), t = β − mean·s. Right after a dense layer it folds into that
 * layer's rows; otherwise (after an activation, or on the raw inputs) it folds
 * into the columns of the next dense layer when only dropout lies between.
 * Both are exact in real arithmetic; anything else stays a batch-norm op.
 */
function foldBatchNorm(ops: Op[], eps: number): Op[] {
  const out: Op[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.kind !== 'batchnorm') {
      out.push(op.kind === 'dense' ? { ...op, weight: op.weight.slice(), bias: op.bias.slice() } : op);
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
    if (prev?.kind === 'dense') {
      for (let o = 0; o < prev.out; o++) {
        for (let j = 0; j < prev.in; j++) prev.weight[o * prev.in + j] = prev.weight[o * prev.in + j]! * s[o]!;
        prev.bias[o] = prev.bias[o]! * s[o]! + t[o]!;
      }
    } else if (next?.kind === 'dense') {
      const weight = next.weight.slice();
      const bias = next.bias.slice();
      for (let o = 0; o < next.out; o++) {
        let shift = 0;
        for (let j = 0; j < next.in; j++) {
          shift += weight[o * next.in + j]! * t[j]!;
          weight[o * next.in + j] = weight[o * next.in + j]! * s[j]!;
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

