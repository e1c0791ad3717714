/**
 * The trainable sequential model. Every buffer (activations, gradients,
 * batch-norm caches, im2col scratch) is allocated once for the largest batch
 * the job uses; forward and backward then run without allocating (ghost batch
 * norm aside, which takes sub-array views per virtual batch).
 */
import { activationCode, conv2dColSize, NO_ACTIVATION, type Kernels } from './kernels/types.js';
import { outputSize, type LayerInfo } from './layers.js';
import { nextFloat, nextNormal, type RngState } from './rng.js';
import type { BatchNormSpec, InitSpec } from './spec.js';

/** A trainable tensor, its gradient, and its safetensors name suffix. */
export interface Param {
  name: string;
  value: Float32Array;
  grad: Float32Array;
  shape: number[];
}

export interface RuntimeLayer {
  readonly info: LayerInfo;
  readonly outputSize: number;
  readonly params: Param[];
  /** Forward over n rows of x; returns this layer's output buffer. */
  forward(x: Float32Array, n: number, training: boolean): Float32Array;
  /** Backward from dy (gradient of this layer's output); returns dx, or null when not needed. */
  backward(dy: Float32Array, n: number): Float32Array | null;
}

/** An activation fused into the layer before it (kernel code and alpha). */
interface Fused { code: number; alpha: number }
const NONE: Fused = { code: NO_ACTIVATION, alpha: 0 };

function param(name: string, shape: number[], fill = 0): Param {
  const size = shape.reduce((a, b) => a * b, 1);
  return { name, shape, value: new Float32Array(size).fill(fill), grad: new Float32Array(size) };
}

class Dense implements RuntimeLayer {
  readonly outputSize: number;
  readonly params: Param[];
  readonly weight: Param;
  readonly bias: Param | null;
  private readonly y: Float32Array;
  private readonly dx: Float32Array | null;
  private x: Float32Array | null = null;

  constructor(readonly info: Extract<LayerInfo, { type: 'dense' }>, private readonly k: Kernels, maxBatch: number,
    needsInputGrad: boolean, private readonly act: Fused) {
    this.outputSize = info.out;
    this.weight = param('weight', [info.out, info.in]);
    this.bias = info.bias ? param('bias', [info.out]) : null;
    this.params = this.bias ? [this.weight, this.bias] : [this.weight];
    this.y = new Float32Array(maxBatch * info.out);
    this.dx = needsInputGrad ? new Float32Array(maxBatch * info.in) : null;
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.x = x;
    const { in: fanIn, out } = this.info;
    this.k.gemm(false, true, n, out, fanIn, 1, x, this.weight.value, 0, this.y); // y = x·Wᵀ
    if (this.bias) this.k.addBias(this.y, this.bias.value, n, out, 1, this.act.code, this.act.alpha); // y = f(y + b)
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array | null {
    const { in: fanIn, out } = this.info;
    // With a fused activation this first turns dy into the gradient at the pre-activation, in place.
    if (this.bias) this.k.biasGrad(dy, this.bias.grad, n, out, 1, this.act.code, this.act.alpha, this.y);
    this.k.gemm(true, false, out, fanIn, n, 1, dy, this.x!, 0, this.weight.grad); // dW = dyᵀ·x
    if (!this.dx) return null;
    this.k.gemm(false, false, n, fanIn, out, 1, dy, this.weight.value, 0, this.dx); // dx = dy·W
    return this.dx;
  }
}

class Conv2d implements RuntimeLayer {
  readonly outputSize: number;
  readonly params: Param[];
  readonly weight: Param;
  readonly bias: Param | null;
  private readonly y: Float32Array;
  private readonly dx: Float32Array | null;
  private x: Float32Array | null = null;

  constructor(readonly info: Extract<LayerInfo, { type: 'conv2d' }>, private readonly k: Kernels, maxBatch: number,
    needsInputGrad: boolean, private readonly col: Float32Array) {
    const { filters, inChannels, kernelSize, inHeight, inWidth } = info;
    this.outputSize = outputSize(info, 0);
    this.weight = param('weight', [filters, inChannels, kernelSize, kernelSize]);
    this.bias = info.bias ? param('bias', [filters]) : null;
    this.params = this.bias ? [this.weight, this.bias] : [this.weight];
    this.y = new Float32Array(maxBatch * this.outputSize);
    this.dx = needsInputGrad ? new Float32Array(maxBatch * inChannels * inHeight * inWidth) : null;
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.x = x;
    const l = this.info;
    this.k.conv2dForward(x, this.weight.value, this.bias?.value ?? null, this.y, n, l.inChannels, l.inHeight, l.inWidth,
      l.filters, l.kernelSize, l.kernelSize, l.stride, l.stride, l.padding, l.padding, this.col);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array | null {
    const l = this.info;
    this.k.conv2dBackward(this.x!, this.weight.value, dy, this.dx, this.weight.grad, this.bias?.grad ?? null, n,
      l.inChannels, l.inHeight, l.inWidth, l.filters, l.kernelSize, l.kernelSize, l.stride, l.stride, l.padding, l.padding, this.col);
    return this.dx;
  }
}

/** Counts the training steps that updated batch-norm statistics (cumulative momentum, renorm warm-up). */
export interface BatchNormClock { updates: number }

/**
 * Batch norm over `channels` with `spatial` values per channel and row, in
 * every variant the spec offers: plain, batch renormalization, ghost batch
 * norm (statistics per virtual batch), cumulative-average running statistics
 * (momentum null), and frozen statistics in training (after
 * freezeBatchNormAfterEpoch).
 */
export class BatchNorm implements RuntimeLayer {
  readonly outputSize: number;
  readonly params: Param[];
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

  constructor(readonly info: Extract<LayerInfo, { type: 'batchnorm' }>, private readonly k: Kernels, maxBatch: number,
    readonly cfg: BatchNormSpec, private readonly act: Fused, private readonly clock: BatchNormClock) {
    const c = info.channels;
    this.outputSize = c * info.spatial;
    this.gamma = cfg.scale ? param('gamma', [c], 1) : null;
    this.beta = cfg.center ? param('beta', [c]) : null;
    this.params = [this.gamma, this.beta].filter((p): p is Param => p !== null);
    this.runningMean = new Float32Array(c);
    this.runningVar = new Float32Array(c).fill(1);
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
    this.y = new Float32Array(maxBatch * this.outputSize);
    this.dx = new Float32Array(maxBatch * this.outputSize);
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
    const per = c * s;
    const vbs = this.cfg.virtualBatchSize!;
    // Each virtual batch's γ/β gradients go to scratch first, then into the sums.
    const dg = dgamma && this.chunkGrads.subarray(0, c);
    const db = dbeta && this.chunkGrads.subarray(c, 2 * c);
    dgamma?.fill(0);
    dbeta?.fill(0);
    for (let i = 0; i < this.chunks; i++) {
      const first = i * vbs;
      const rows = this.chunkRows(i, n);
      const view = (a: Float32Array) => a.subarray(first * per, (first + rows) * per);
      const stats = (a: Float32Array) => a.subarray(i * c, (i + 1) * c);
      this.normalizeBackward(view(this.x!), view(dy), view(this.dx), view(this.y), rows, stats(this.saveMean),
        stats(this.saveRstd), stats(this.saveR), stats(this.saveD), dg, db);
      for (let j = 0; j < c; j++) {
        if (dgamma) dgamma[j] = dgamma[j]! + dg![j]!;
        if (dbeta) dbeta[j] = dbeta[j]! + db![j]!;
      }
    }
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
        this.cfg.epsilon, 1 + (rMax - 1) * ramp, dMax * ramp, updateRunning, mean, rstd, r, d);
    } else {
      this.k.batchNormForwardTrain(x, y, rows, c, s, gamma, beta, this.runningMean, this.runningVar, momentum,
        this.cfg.epsilon, updateRunning, mean, rstd, this.act.code, this.act.alpha);
    }
  }

  private normalizeBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, y: Float32Array, rows: number,
    mean: Float32Array, rstd: Float32Array, r: Float32Array, d: Float32Array,
    dgamma: Float32Array | null, dbeta: Float32Array | null): void {
    const { channels: c, spatial: s } = this.info;
    const gamma = this.gamma?.value ?? null;
    if (this.cfg.renorm) {
      this.k.batchRenormBackward(x, dy, dx, rows, c, s, gamma, mean, rstd, r, d, dgamma, dbeta);
    } else {
      this.k.batchNormBackward(x, dy, dx, rows, c, s, gamma, mean, rstd, dgamma, dbeta, this.act.code, this.act.alpha, y);
    }
  }

  /** Rows of virtual batch i of a batch of n. */
  private chunkRows(i: number, n: number): number {
    const vbs = this.cfg.virtualBatchSize!;
    return i === this.chunks - 1 ? n - i * vbs : vbs;
  }

  /** Ghost batch norm: one running-statistics update per batch, from the virtual batches' mean statistics. */
  private updateRunningFromChunks(momentum: number, n: number): void {
    const c = this.info.channels;
    for (let j = 0; j < c; j++) {
      let mean = 0;
      let variance = 0;
      for (let i = 0; i < this.chunks; i++) {
        const count = this.chunkRows(i, n) * this.info.spatial;
        const rstd = this.saveRstd[i * c + j]!;
        mean += this.saveMean[i * c + j]!;
        variance += ((1 / (rstd * rstd) - this.cfg.epsilon) * count) / (count - 1); // unbiased
      }
      this.runningMean[j] = momentum * this.runningMean[j]! + (1 - momentum) * (mean / this.chunks);
      this.runningVar[j] = momentum * this.runningVar[j]! + (1 - momentum) * (variance / this.chunks);
    }
  }

  /** Frozen statistics: y = γ·(x − μ)/σ + β with μ, σ constants, so dx = dy·γ/σ. */
  private frozenBackward(dy: Float32Array, n: number): void {
    const { channels: c, spatial: s } = this.info;
    const size = n * c * s;
    let g = dy;
    if (this.act !== NONE) {
      // f' read off the output, whose sign matches the input for every activation here.
      this.k.activationBackward(this.act.code, this.y, this.y, dy, this.dx, size, this.act.alpha);
      g = this.dx;
    }
    const eps = this.cfg.epsilon;
    for (let j = 0; j < c; j++) {
      const rstd = 1 / Math.sqrt(this.runningVar[j]! + eps);
      const mean = this.runningMean[j]!;
      const scale = (this.gamma ? this.gamma.value[j]! : 1) * rstd;
      let sum = 0;
      let sumXhat = 0;
      for (let r = 0; r < n; r++) {
        const off = (r * c + j) * s;
        for (let q = off; q < off + s; q++) {
          sum += g[q]!;
          sumXhat += g[q]! * (this.x![q]! - mean) * rstd;
          this.dx[q] = g[q]! * scale;
        }
      }
      if (this.gamma) this.gamma.grad[j] = sumXhat;
      if (this.beta) this.beta.grad[j] = sum;
    }
  }
}

class Activation implements RuntimeLayer {
  readonly params: Param[] = [];
  private readonly code: number;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private x: Float32Array | null = null;

  constructor(readonly info: Extract<LayerInfo, { alpha: number }>, private readonly k: Kernels, maxBatch: number, readonly outputSize: number) {
    this.code = activationCode(info.type);
    this.y = new Float32Array(maxBatch * outputSize);
    this.dx = new Float32Array(maxBatch * outputSize);
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.x = x;
    this.k.activationForward(this.code, x, this.y, n * this.outputSize, this.info.alpha);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    this.k.activationBackward(this.code, this.x!, this.y, dy, this.dx, n * this.outputSize, this.info.alpha);
    return this.dx;
  }
}

/**
 * Values and gradients pass through unchanged: `flatten` (NCHW rows are
 * already flat) and an activation computed inside the layer before it.
 */
class PassThrough implements RuntimeLayer {
  readonly params: Param[] = [];
  constructor(readonly info: LayerInfo, readonly outputSize: number) {}
  forward(x: Float32Array): Float32Array {
    return x;
  }
  backward(dy: Float32Array): Float32Array {
    return dy;
  }
}

class Pool implements RuntimeLayer {
  readonly params: Param[] = [];
  readonly outputSize: number;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private readonly argmax: Int32Array;

  constructor(readonly info: Extract<LayerInfo, { type: 'maxpool2d' | 'avgpool2d' }>, private readonly k: Kernels, maxBatch: number) {
    this.outputSize = outputSize(info, 0);
    this.y = new Float32Array(maxBatch * this.outputSize);
    this.dx = new Float32Array(maxBatch * info.channels * info.inHeight * info.inWidth);
    this.argmax = new Int32Array(info.type === 'maxpool2d' ? maxBatch * this.outputSize : 0);
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
  readonly outputSize: number;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;

  constructor(readonly info: Extract<LayerInfo, { type: 'globalavgpool' }>, private readonly k: Kernels, maxBatch: number) {
    this.outputSize = info.channels;
    this.y = new Float32Array(maxBatch * info.channels);
    this.dx = new Float32Array(maxBatch * info.channels * info.spatial);
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

class Dropout implements RuntimeLayer {
  readonly params: Param[] = [];
  private readonly y: Float32Array;
  private readonly mask: Float32Array;
  private readonly dx: Float32Array;

  constructor(readonly info: Extract<LayerInfo, { type: 'dropout' }>, private readonly k: Kernels, maxBatch: number,
    readonly outputSize: number, private readonly rng: RngState) {
    this.y = new Float32Array(maxBatch * outputSize);
    this.mask = new Float32Array(maxBatch * outputSize);
    this.dx = new Float32Array(maxBatch * outputSize);
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

export class Sequential {
  readonly layers: RuntimeLayer[];
  readonly params: Param[];
  /** Shared by the batch-norm layers; part of a checkpoint. */
  readonly batchNormClock: BatchNormClock = { updates: 0 };
  private readonly bns: BatchNorm[];

  /** fuse: false keeps every activation a layer of its own (tests compare the two forms). */
  constructor(readonly infos: LayerInfo[], readonly kernels: Kernels, readonly maxBatch: number,
    readonly inputSize: number, bn: BatchNormSpec, rng: RngState, { fuse = true } = {}) {
    let width = inputSize;
    // The first layer with parameters needs no input gradient; nor does anything before it.
    const firstTrainable = infos.findIndex((l) => l.type === 'dense' || l.type === 'conv2d' || l.type === 'batchnorm');
    // An activation right after batch norm (renormalization aside), or after a
    // dense layer with a bias, runs inside that layer's kernels.
    const fusedInto = (i: number): Fused => {
      const next = infos[i + 1];
      return fuse && next && 'alpha' in next ? { code: activationCode(next.type), alpha: next.alpha } : NONE;
    };
    // One im2col scratch serves every conv layer (its contents never outlive a call).
    const colSize = Math.max(0, ...infos.map((l) => (l.type === 'conv2d'
      ? conv2dColSize(l.inChannels, l.kernelSize, l.kernelSize, l.outHeight, l.outWidth) : 0)));
    const col = new Float32Array(colSize);
    this.layers = [];
    infos.forEach((info, i) => {
      let layer: RuntimeLayer;
      const prev = this.layers[i - 1];
      const needsInputGrad = i > firstTrainable;
      switch (info.type) {
        case 'dense': layer = new Dense(info, kernels, maxBatch, needsInputGrad, info.bias ? fusedInto(i) : NONE); break;
        case 'conv2d': layer = new Conv2d(info, kernels, maxBatch, needsInputGrad, col); break;
        case 'batchnorm': layer = new BatchNorm(info, kernels, maxBatch, bn, bn.renorm ? NONE : fusedInto(i), this.batchNormClock); break;
        case 'dropout': layer = new Dropout(info, kernels, maxBatch, width, rng); break;
        case 'maxpool2d': case 'avgpool2d': layer = new Pool(info, kernels, maxBatch); break;
        case 'globalavgpool': layer = new GlobalAvgPool(info, kernels, maxBatch); break;
        case 'flatten': layer = new PassThrough(info, width); break;
        default: {
          const fused = fuse && ((prev instanceof BatchNorm && !bn.renorm) || (prev instanceof Dense && prev.bias));
          layer = fused ? new PassThrough(info, width) : new Activation(info, kernels, maxBatch, width);
        }
      }
      width = layer.outputSize;
      this.layers.push(layer);
    });
    this.params = this.layers.flatMap((l) => l.params);
    this.bns = this.layers.filter((l): l is BatchNorm => l instanceof BatchNorm);
  }

  get outputSize(): number {
    return this.layers[this.layers.length - 1]!.outputSize;
  }

  batchNorms(): BatchNorm[] {
    return this.bns;
  }

  /** Forward through layers [0, end); returns the last output. */
  forward(x: Float32Array, n: number, training: boolean, end = this.layers.length): Float32Array {
    if (training && this.bns.length > 0 && !this.bns[0]!.frozen) this.batchNormClock.updates++; // all freeze together
    let h = x;
    for (let i = 0; i < end; i++) h = this.layers[i]!.forward(h, n, training);
    return h;
  }

  backward(dlogits: Float32Array, n: number): void {
    let g: Float32Array | null = dlogits;
    for (let i = this.layers.length - 1; i >= 0 && g; i--) g = this.layers[i]!.backward(g, n);
  }

  /** Initialize dense and conv weights from the seeded PRNG (biases 0, γ 1, β 0 already). */
  initialize(init: InitSpec, rng: RngState): void {
    for (const layer of this.layers) {
      if (!(layer instanceof Dense || layer instanceof Conv2d)) continue;
      const [out, inputs, ...kernel] = layer.weight.shape as [number, number, ...number[]];
      const area = kernel.reduce((a, b) => a * b, 1);
      const fanIn = inputs * area;
      const fanOut = out * area;
      const w = layer.weight.value;
      if (init === 'glorot') {
        const limit = Math.sqrt(6 / (fanIn + fanOut));
        for (let i = 0; i < w.length; i++) w[i] = (2 * nextFloat(rng) - 1) * limit;
      } else {
        const std = init === 'he' ? Math.sqrt(2 / fanIn) : init === 'lecun' ? Math.sqrt(1 / fanIn) : init.normal.std;
        for (let i = 0; i < w.length; i++) w[i] = nextNormal(rng) * std;
      }
    }
  }

  /**
   * Forward in training mode for batch norm (batch statistics, running
   * statistics untouched) and inference mode for everything else (no
   * dropout): the "batch" side of the train/inference gap.
   */
  forwardBatchStatistics(x: Float32Array, n: number): Float32Array {
    let h = x;
    for (const layer of this.layers) h = layer instanceof BatchNorm ? layer.forwardBatchStatistics(h, n) : layer.forward(h, n, false);
    return h;
  }

  /** Switch every batch-norm layer to its frozen running statistics, in training too. */
  freezeBatchNorm(): void {
    for (const bn of this.batchNorms()) bn.frozen = true;
  }

  /** Tensors by safetensors name: parameters plus batch-norm running statistics. */
  namedTensors(): Array<{ name: string; value: Float32Array; shape: number[] }> {
    const out: Array<{ name: string; value: Float32Array; shape: number[] }> = [];
    this.layers.forEach((layer, i) => {
      for (const p of layer.params) out.push({ name: `layers.${i}.${p.name}`, value: p.value, shape: p.shape });
      if (layer instanceof BatchNorm) {
        const c = layer.info.channels;
        out.push({ name: `layers.${i}.running_mean`, value: layer.runningMean, shape: [c] });
        out.push({ name: `layers.${i}.running_var`, value: layer.runningVar, shape: [c] });
      }
    });
    return out;
  }
}
