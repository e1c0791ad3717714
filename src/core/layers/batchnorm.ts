/**
 * Batch norm (Ioffe & Szegedy 2015) per channel: [features] rows (batchnorm1d)
 * or [C, H, W] with statistics over H·W too (batchnorm2d). Its variants
 * (renormalization, ghost batches, cumulative averages, frozen statistics)
 * are configured by the job's top-level `batchNorm` object, not per layer.
 */
import { Type, type Static } from '@sinclair/typebox';
import { NO_ACTIVATION, type Kernels } from '../kernels/types.js';
import type { BatchNormSpec } from '../spec.js';
import type {
  BatchNormClock, BuildContext, Fused, InferenceOp, LayerModule, NormalizingLayer, NormStatistics, OnnxGraph, Param, PutTensor, StateTensor,
} from './types.js';

export const BatchNormLayerSpec = Type.Object({ type: Type.Literal('batchnorm') }, { additionalProperties: false });

/** spatial: values per channel and row (H·W after a conv, 1 after a dense layer). */
export interface BatchNormInfo { index: number; type: 'batchnorm'; channels: number; spatial: number }

const NONE: Fused = { code: NO_ACTIVATION, alpha: 0 };

/**
 * Batch norm over `channels` with `spatial` values per channel and row, in
 * every variant the spec offers: plain, batch renormalization, ghost batch
 * norm (statistics per virtual batch), cumulative-average running statistics
 * (momentum null), and frozen statistics in training (after
 * freezeBatchNormAfterEpoch).
 */
export class BatchNorm implements NormalizingLayer {
  readonly outputSize: number;
  readonly params: Param[];
  readonly state: StateTensor[];
  private readonly stats: NormStatistics;
  readonly gamma: Param | null;
  readonly beta: Param | null;
  readonly runningMean: Float32Array;
  readonly runningVar: Float32Array;
  /** Per virtual batch (one unless ghost batch norm): statistics of the last training batch. */
  readonly saveMean: Float32Array;
  readonly saveRstd: Float32Array;
  private readonly saveR: Float32Array;
  private readonly saveD: Float32Array;
  /** True: normalize with the running statistics in training too, and leave them alone. */
  frozen = false;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private readonly chunkGrads: Float32Array;
  private x: Float32Array | null = null;
  private chunks = 1;
  private trainedFrozen = false;
  /** Sums over the epoch's training batches of the per-channel batch mean and unbiased variance (diagnostics). */
  private readonly epochMeanSum: Float64Array;
  private readonly epochVarSum: Float64Array;
  private epochBatches = 0;
  /** Scratch statistics of forwardBatchStatistics (so the training caches stay as they are). */
  private readonly probeMean: Float32Array;
  private readonly probeRstd: Float32Array;
  /** Ghost batch norm: the mean over virtual batches of their mean and unbiased variance. */
  private readonly chunkMean: Float64Array;
  private readonly chunkVar: Float64Array;

  private readonly k: Kernels;
  readonly cfg: BatchNormSpec;
  private readonly act: Fused;
  private readonly clock: BatchNormClock;
  /** Population statistics in progress (see beginPopulation). */
  private population: { sums: Float64Array; shift: Float64Array; rows: number } | null = null;

  constructor(readonly info: BatchNormInfo, ctx: BuildContext) {
    const c = info.channels;
    const cfg = ctx.bn;
    this.k = ctx.kernels;
    this.cfg = cfg;
    this.act = ctx.fused ?? NONE;
    this.clock = ctx.clock;
    const maxBatch = ctx.maxBatch;
    this.outputSize = c * info.spatial;
    this.params = ctx.params;
    this.gamma = ctx.params.find((p) => p.name === 'gamma') ?? null;
    this.beta = ctx.params.find((p) => p.name === 'beta') ?? null;
    this.state = ctx.state;
    this.runningMean = ctx.state[0]!.value;
    this.runningVar = ctx.state[1]!.value;
    const maxChunks = cfg.virtualBatchSize ? Math.ceil(maxBatch / cfg.virtualBatchSize) : 1;
    this.saveMean = new Float32Array(maxChunks * c);
    this.saveRstd = new Float32Array(maxChunks * c);
    this.saveR = new Float32Array(cfg.renorm ? maxChunks * c : 0);
    this.saveD = new Float32Array(cfg.renorm ? maxChunks * c : 0);
    this.chunkGrads = new Float32Array(maxChunks > 1 ? 2 * c : 0);
    this.epochMeanSum = new Float64Array(c);
    this.epochVarSum = new Float64Array(c);
    this.probeMean = new Float32Array(c);
    this.probeRstd = new Float32Array(c);
    this.chunkMean = new Float64Array(maxChunks > 1 ? c : 0);
    this.chunkVar = new Float64Array(maxChunks > 1 ? c : 0);
    this.y = new Float32Array(maxBatch * this.outputSize);
    this.dx = new Float32Array(maxBatch * this.outputSize);
    const self = this;
    this.stats = {
      layer: info.index, kind: info.spatial > 1 ? 'batchnorm2d' : 'batchnorm1d', channels: c,
      runningMean: this.runningMean, runningVar: this.runningVar, gamma: this.gamma?.value ?? null, beta: this.beta?.value ?? null,
      epsilon: cfg.epsilon, epochStatistics: () => self.epochStatistics(),
    };
  }

  statistics(): NormStatistics[] {
    return [this.stats];
  }

  beginPopulation(): void {
    const c = this.info.channels;
    this.population = { sums: new Float64Array(2 * c), shift: new Float64Array(c), rows: 0 };
  }

  /** Sums around the first row's values (kept well-conditioned), in double precision, over every batch. */
  accumulatePopulation(h: Float32Array, n: number): void {
    const { channels: c, spatial: s } = this.info;
    const { sums, shift } = this.population!;
    if (this.population!.rows === 0) for (let j = 0; j < c; j++) shift[j] = h[j * s]!;
    this.k.channelShiftedSums(h, n, c, s, shift, sums);
    this.population!.rows += n;
  }

  /** The exact mean and unbiased variance of every value seen become the running statistics. */
  finishPopulation(): void {
    const { channels: c, spatial: s } = this.info;
    const { sums, shift, rows } = this.population!;
    const m = rows * s;
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    for (let j = 0; j < c; j++) {
      const meanShifted = sums[2 * j]! / m;
      mean[j] = shift[j]! + meanShifted;
      variance[j] = m > 1 ? Math.max(0, (sums[2 * j + 1]! - m * meanShifted * meanShifted) / (m - 1)) : 0; // unbiased
    }
    // Momentum 0: the exact statistics replace the running ones.
    this.k.batchNormUpdateRunning(this.runningMean, this.runningVar, mean, variance, c, 0, 0);
    this.population = null;
  }

  forward(x: Float32Array, n: number, training: boolean): Float32Array {
    this.x = x;
    const { channels: c, spatial: s } = this.info;
    this.trainedFrozen = training && this.frozen;
    if (!training || this.frozen) {
      this.k.batchNormForwardInfer(x, this.y, n, c, s, this.gamma?.value ?? null, this.beta?.value ?? null,
        this.runningMean, this.runningVar, this.cfg.epsilon);
      if (this.act !== NONE) this.k.activationForward(this.act.code, this.y, this.y, n * c * s, this.act.alpha);
      return this.y;
    }
    // Keras convention (weight of the old value); null: cumulative average, as PyTorch's momentum=None.
    const momentum = this.cfg.momentum ?? 1 - 1 / this.clock.updates;
    const vbs = this.cfg.virtualBatchSize;
    this.chunks = vbs && n >= 2 * vbs ? Math.floor(n / vbs) : 1;
    if (this.chunks === 1) {
      this.normalize(x, this.y, n, this.saveMean, this.saveRstd, this.saveR, this.saveD, true, momentum);
      this.accumulateEpochStatistics(n);
      return this.y;
    }
    // Ghost batch norm: virtual batches of vbs rows, the last one taking any remainder.
    const per = c * s;
    for (let i = 0; i < this.chunks; i++) {
      const first = i * vbs!;
      const rows = this.chunkRows(i, n);
      const stats = (a: Float32Array) => a.subarray(i * c, (i + 1) * c);
      this.normalize(x.subarray(first * per, (first + rows) * per), this.y.subarray(first * per, (first + rows) * per), rows,
        stats(this.saveMean), stats(this.saveRstd), stats(this.saveR), stats(this.saveD), false, momentum);
    }
    this.updateRunningFromChunks(momentum, n);
    this.accumulateEpochStatistics(n);
    return this.y;
  }

  /**
   * Training-mode output with batch statistics (virtual batches as in
   * training), without touching the running statistics or the training
   * caches: how the layer behaves on these rows in training, for the
   * train/inference gap. Renormalization's correction is left out (it pulls
   * towards the running statistics); a frozen layer uses batch statistics here too.
   */
  forwardBatchStatistics(x: Float32Array, n: number): Float32Array {
    const { channels: c, spatial: s } = this.info;
    const vbs = this.cfg.virtualBatchSize;
    const chunks = vbs && n >= 2 * vbs ? Math.floor(n / vbs) : 1;
    const per = c * s;
    for (let i = 0; i < chunks; i++) {
      const first = chunks === 1 ? 0 : i * vbs!;
      const rows = chunks === 1 ? n : i === chunks - 1 ? n - i * vbs! : vbs!;
      this.k.batchNormForwardTrain(x.subarray(first * per, (first + rows) * per), this.y.subarray(first * per, (first + rows) * per),
        rows, c, s, this.gamma?.value ?? null, this.beta?.value ?? null, this.runningMean, this.runningVar, 0, this.cfg.epsilon,
        false, this.probeMean, this.probeRstd, this.act.code, this.act.alpha);
    }
    return this.y;
  }

  /** Start a new epoch of batch-statistics sums. */
  resetEpochStatistics(): void {
    this.epochMeanSum.fill(0);
    this.epochVarSum.fill(0);
    this.epochBatches = 0;
  }

  /**
   * Per channel, the batch mean and unbiased batch variance averaged over the
   * training batches since resetEpochStatistics (virtual batches averaged
   * within their batch, as the running update does); null when no batch
   * used batch statistics (the layer was frozen).
   */
  epochStatistics(): { mean: Float64Array; variance: Float64Array } | null {
    if (this.epochBatches === 0) return null;
    const mean = this.epochMeanSum.map((v) => v / this.epochBatches);
    const variance = this.epochVarSum.map((v) => v / this.epochBatches);
    return { mean, variance };
  }

  private accumulateEpochStatistics(n: number): void {
    const c = this.info.channels;
    for (let i = 0; i < this.chunks; i++) {
      const count = (this.chunks === 1 ? n : this.chunkRows(i, n)) * this.info.spatial;
      const unbiased = count / Math.max(1, count - 1);
      for (let j = 0; j < c; j++) {
        const rstd = this.saveRstd[i * c + j]!;
        this.epochMeanSum[j] += this.saveMean[i * c + j]! / this.chunks;
        this.epochVarSum[j] += ((1 / (rstd * rstd) - this.cfg.epsilon) * unbiased) / this.chunks;
      }
    }
    this.epochBatches++;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    if (this.trainedFrozen) {
      this.frozenBackward(dy, n);
      return this.dx;
    }
    const dgamma = this.gamma?.grad ?? null;
    const dbeta = this.beta?.grad ?? null;
    if (this.chunks === 1) {
      this.normalizeBackward(this.x!, dy, this.dx, this.y, n, this.saveMean, this.saveRstd, this.saveR, this.saveD, dgamma, dbeta);
      return this.dx;
    }
    const { channels: c, spatial: s } = this.info;
    const renorm = this.cfg.renorm !== null;
    this.k.batchNormBackwardGhost(this.x!, dy, this.dx, n, c, s, this.cfg.virtualBatchSize!, this.gamma?.value ?? null, this.saveMean,
      this.saveRstd, renorm ? this.saveR : null, renorm ? this.saveD : null, dgamma, dbeta, this.chunkGrads,
      this.act.code, this.act.alpha, this.y);
    return this.dx;
  }

  /** Batch norm or renormalization (with the fused activation, if any) over one batch or virtual batch. */
  private normalize(x: Float32Array, y: Float32Array, rows: number, mean: Float32Array, rstd: Float32Array,
    r: Float32Array, d: Float32Array, updateRunning: boolean, momentum: number): void {
    const { channels: c, spatial: s } = this.info;
    const gamma = this.gamma?.value ?? null;
    const beta = this.beta?.value ?? null;
    if (this.cfg.renorm) {
      // Clip limits relax linearly from plain BN (1, 0) to (rMax, dMax) over the warm-up.
      const { rMax, dMax, warmupSteps } = this.cfg.renorm;
      const ramp = warmupSteps > 0 ? Math.min(1, (this.clock.updates - 1) / warmupSteps) : 1;
      this.k.batchRenormForwardTrain(x, y, rows, c, s, gamma, beta, this.runningMean, this.runningVar, momentum,
        this.cfg.epsilon, 1 + (rMax - 1) * ramp, dMax * ramp, updateRunning, mean, rstd, r, d, this.act.code, this.act.alpha);
    } else {
      this.k.batchNormForwardTrain(x, y, rows, c, s, gamma, beta, this.runningMean, this.runningVar, momentum,
        this.cfg.epsilon, updateRunning, mean, rstd, this.act.code, this.act.alpha);
    }
  }

  private normalizeBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, y: Float32Array, rows: number,
    mean: Float32Array, rstd: Float32Array, r: Float32Array, d: Float32Array,
    dgamma: Float32Array | null, dbeta: Float32Array | null): void {
    const { channels: c, spatial: s } = this.info;
    const renorm = this.cfg.renorm !== null;
    this.k.batchNormBackward(x, dy, dx, rows, c, s, this.gamma?.value ?? null, mean, rstd, renorm ? r : null, renorm ? d : null,
      dgamma, dbeta, this.act.code, this.act.alpha, y);
  }

  /** Rows of virtual batch i of a batch of n. */
  private chunkRows(i: number, n: number): number {
    const vbs = this.cfg.virtualBatchSize!;
    return i === this.chunks - 1 ? n - i * vbs : vbs;
  }

  /** Ghost batch norm: one running-statistics update per batch, from the virtual batches' mean statistics. */
  private updateRunningFromChunks(momentum: number, n: number): void {
    const c = this.info.channels;
    const mean = this.chunkMean;
    const variance = this.chunkVar;
    for (let j = 0; j < c; j++) {
      let m = 0;
      let v = 0;
      for (let i = 0; i < this.chunks; i++) {
        const count = this.chunkRows(i, n) * this.info.spatial;
        const rstd = this.saveRstd[i * c + j]!;
        m += this.saveMean[i * c + j]!;
        v += ((1 / (rstd * rstd) - this.cfg.epsilon) * count) / (count - 1); // unbiased
      }
      mean[j] = m / this.chunks;
      variance[j] = v / this.chunks;
    }
    this.k.batchNormUpdateRunning(this.runningMean, this.runningVar, mean, variance, c, momentum, 0);
  }

  /** Frozen statistics: y = γ·(x − μ)/σ + β with μ, σ constants, so dx = dy·γ/σ. */
  private frozenBackward(dy: Float32Array, n: number): void {
    const { channels: c, spatial: s } = this.info;
    this.k.batchNormBackwardFrozen(this.x!, dy, this.dx, n, c, s, this.gamma?.value ?? null, this.runningMean, this.runningVar,
      this.cfg.epsilon, this.gamma?.grad ?? null, this.beta?.grad ?? null, this.act.code, this.act.alpha, this.y);
  }
}


/** Frozen batch norm y = γ·(x − mean)/√(variance + ε) + β per channel, in place. */
class BatchNormOp implements InferenceOp {
  readonly kind = 'batchnorm';
  constructor(readonly channels: number, readonly spatial: number, readonly gamma: Float32Array, readonly beta: Float32Array,
    readonly mean: Float32Array, readonly variance: Float32Array) {}

  run(k: Kernels, x: Float32Array, _y: Float32Array, n: number, scratch: { epsilon: number }): boolean {
    k.batchNormForwardInfer(x, x, n, this.channels, this.spatial, this.gamma, this.beta, this.mean, this.variance, scratch.epsilon);
    return false;
  }

  /**
   * y = s·x + t with s = γ/√(var+ε), t = β − mean·s. Folded into the output
   * rows of a dense or conv layer before it, or the input columns of a dense
   * layer after it; both exact in real arithmetic. A following conv does not
   * take it (zero padding would be shifted too).
   */
  affine(eps: number): { s: Float64Array; t: Float64Array; spatial: number } {
    const s = new Float64Array(this.channels);
    const t = new Float64Array(this.channels);
    for (let c = 0; c < this.channels; c++) {
      s[c] = this.gamma[c]! / Math.sqrt(this.variance[c]! + eps);
      t[c] = this.beta[c]! - this.mean[c]! * s[c]!;
    }
    return { s, t, spatial: this.spatial };
  }

  describe(put: PutTensor, epsilon: number): Record<string, unknown> {
    for (const name of ['gamma', 'beta', 'mean', 'variance'] as const) put(name, [this.channels], this[name]);
    return { kind: this.kind, channels: this.channels, spatial: this.spatial, epsilon };
  }

  onnx(g: OnnxGraph, i: number, x: string, rank: number, epsilon: number): { x: string; rank: number } {
    // Per channel over dimension 1: [N, C] (spatial 1) or [N, C, H, W].
    if ((rank === 2) !== (this.spatial === 1)) throw new Error(`ONNX export: batch norm over ${this.channels}x${this.spatial} on a rank-${rank} tensor`);
    const c = [this.channels];
    const inputs = [x, g.constant(`op${i}.gamma`, c, this.gamma), g.constant(`op${i}.beta`, c, this.beta),
      g.constant(`op${i}.mean`, c, this.mean), g.constant(`op${i}.variance`, c, this.variance)];
    return { x: g.node('BatchNormalization', inputs, [{ name: 'epsilon', float: epsilon }]), rank };
  }
}

export const batchnorm: LayerModule<Static<typeof BatchNormLayerSpec>, BatchNormInfo> = {
  types: ['batchnorm'],
  expand(_d, { index, shape }) {
    // An image [C, H, W] is normalized per channel over N·H·W values (BatchNorm2d); any other
    // shape ([features], or a sequence's [steps, features]) per value over N (BatchNorm1d on the flat row).
    const size = shape.reduce((a, b) => a * b, 1);
    const channels = shape.length === 3 ? shape[0]! : size;
    return { info: { index, type: 'batchnorm', channels, spatial: size / channels }, shape };
  },
  outputSize: (_l, inputSize) => inputSize,
  params: (l, bn) => [...(bn.scale ? [{ name: 'gamma', shape: [l.channels], fill: 1 }] : []), ...(bn.center ? [{ name: 'beta', shape: [l.channels] }] : [])],
  state: (l) => [{ name: 'running_mean', shape: [l.channels] }, { name: 'running_var', shape: [l.channels], fill: 1 }],
  fusesActivation: () => true,
  build: (info, ctx) => new BatchNorm(info, ctx),
  inference(l, ctx) {
    const c = l.channels;
    const op = new BatchNormOp(c, l.spatial, ctx.tensor('gamma') ?? new Float32Array(c).fill(1), ctx.tensor('beta') ?? new Float32Array(c),
      ctx.tensor('running_mean')!, ctx.tensor('running_var')!);
    return {
      ops: [op],
      stats: [{
        layer: l.index, channels: c, mean: [...op.mean], variance: [...op.variance], gamma: [...op.gamma],
        beta: [...op.beta], epsilon: ctx.epsilon, source: ctx.inferenceStats,
      }],
    };
  },
};
