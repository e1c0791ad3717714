/**
 * The portable twin of the native kernels: the same contract (./types.ts) in
 * plain TypeScript loops. Arithmetic runs in doubles and rounds when stored
 * into the Float32Arrays; scalar parameters that the addon converts to float
 * are rounded the same way here. The two agree to float32 rounding, and bit
 * for bit on dropout masks. Argument checks mirror native/addon.cc so a
 * mistake fails the same way whichever kernels are loaded.
 */
import { nextUint32 } from '../rng.js';
import { ACTIVATIONS, activationCode, convOutputSize, DENSE_PANEL, NO_ACTIVATION, packedDenseSize, type Kernels } from './types.js';

const RELU = activationCode('relu');
const LEAKY_RELU = activationCode('leaky_relu');
const ELU = activationCode('elu');
const TANH = activationCode('tanh');
const SIGMOID = activationCode('sigmoid');

const f32 = Math.fround;

/**
 * Adds Σ(x − shift) and Σ(x − shift)² over the N*S values of channel c to
 * sums[at] and sums[at + 1], value by value in order (double precision). The
 * one shifted-moments pass of the portable kernels: channelMoments here, and
 * the channelShiftedSums kernel (population statistics).
 */
function addShiftedSums(x: Float32Array, N: number, C: number, S: number, c: number, shift: number,
  sums: Float64Array, at: number): void {
  let sum = sums[at]!;
  let sumsq = sums[at + 1]!;
  for (let n = 0; n < N; n++) {
    const off = (n * C + c) * S;
    for (let s = 0; s < S; s++) {
      const d = x[off + s]! - shift;
      sum += d;
      sumsq += d * d;
    }
  }
  sums[at] = sum;
  sums[at + 1] = sumsq;
}

const momentSums = new Float64Array(2);

/**
 * Mean and biased variance of channel c over its N*S values. Sums are taken
 * around the channel's first value, as in the addon, so they do not cancel
 * when |mean| >> std.
 */
function channelMoments(x: Float32Array, N: number, C: number, S: number, c: number): [number, number] {
  const M = N * S;
  const shift = x[c * S]!;
  momentSums.fill(0);
  addShiftedSums(x, N, C, S, c, shift, momentSums, 0);
  const sum = momentSums[0]!;
  const sumsq = momentSums[1]!;
  return [shift + sum / M, Math.max(0, (sumsq - (sum * sum) / M) / M)];
}

/**
 * The running-statistics update (Keras momentum; variance unbiased over M
 * values, or taken as it is when M = 0), as native/kernels.h's
 * update_running_stats: the one copy the portable kernels use.
 */
function updateRunningStats(runningMean: Float32Array, runningVar: Float32Array, c: number, mean: number, variance: number,
  M: number, momentum: number): void {
  runningMean[c] = momentum * runningMean[c]! + (1 - momentum) * mean;
  runningVar[c] = M > 0
    ? momentum * runningVar[c]! + ((1 - momentum) * variance * M) / (M - 1)
    : momentum * runningVar[c]! + (1 - momentum) * variance;
}

/** Renormalization's clip limits and where its r and d go (batchRenormForwardTrain). */
interface RenormClip { rMax: number; dMax: number; saveR: Float32Array; saveD: Float32Array }

/** The training forward of batch norm, and of renormalization when renorm is given. */
function normForwardTrain(fn: string, x: Float32Array, y: Float32Array, N: number, C: number, S: number,
  gamma: Float32Array | null, beta: Float32Array | null, runningMean: Float32Array, runningVar: Float32Array,
  momentum: number, eps: number, updateRunning: boolean, saveMean: Float32Array, saveRstd: Float32Array,
  renorm: RenormClip | null, activation: number, alpha: number): void {
  size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
  const M = N * S;
  need(fn, 'x', x, M * C); need(fn, 'y', y, M * C); need(fn, 'gamma', gamma, C); need(fn, 'beta', beta, C);
  need(fn, 'runningMean', runningMean, C); need(fn, 'runningVar', runningVar, C);
  need(fn, 'saveMean', saveMean, C); need(fn, 'saveRstd', saveRstd, C);
  if (C > 0 && M < (updateRunning ? 2 : 1)) {
    throw new RangeError(`${fn}: needs ${updateRunning ? 'two values' : 'a value'} per channel (N*S = ${M})`);
  }
  const a = f32(alpha);
  for (let c = 0; c < C; c++) {
    const [mean, variance] = channelMoments(x, N, C, S, c);
    const rstd = 1 / Math.sqrt(variance + eps);
    saveMean[c] = mean;
    saveRstd[c] = rstd;
    const g = gamma ? gamma[c]! : 1;
    let scale = g * rstd;
    let b = beta ? beta[c]! : 0;
    if (renorm) {
      // r and d from the running statistics as they were before this batch; NaN stays NaN.
      const sigma = Math.sqrt(runningVar[c]! + eps);
      const r = Math.min(Math.max(Math.sqrt(variance + eps) / sigma, 1 / renorm.rMax), renorm.rMax);
      const d = Math.min(Math.max((mean - runningMean[c]!) / sigma, -renorm.dMax), renorm.dMax);
      renorm.saveR[c] = r;
      renorm.saveD[c] = d;
      scale = g * rstd * r;
      b = g * d + b;
    }
    if (updateRunning) updateRunningStats(runningMean, runningVar, c, mean, variance, M, momentum);
    for (let n = 0; n < N; n++) {
      const off = (n * C + c) * S;
      for (let s = 0; s < S; s++) y[off + s] = act(activation, f32((x[off + s]! - mean) * scale + b), a);
    }
  }
}

/** The activation fused into bias and batch-norm kernels (NO_ACTIVATION: identity). */
function act(kind: number, z: number, alpha: number): number {
  switch (kind) {
    case RELU: return z < 0 ? 0 : z;
    case LEAKY_RELU: return z < 0 ? alpha * z : z;
    case ELU: return z > 0 ? z : alpha * Math.expm1(z);
    case TANH: return Math.tanh(z);
    case SIGMOID: return 1 / (1 + Math.exp(-z));
    default: return z;
  }
}

/** f'(z) read off y = f(z); at z = 0 the z < 0 side, as in PyTorch. */
function actGrad(kind: number, y: number, alpha: number): number {
  switch (kind) {
    case RELU: return y > 0 ? 1 : 0;
    case LEAKY_RELU: return y > 0 ? 1 : alpha;
    case ELU: return y > 0 ? 1 : y + alpha;
    case TANH: return 1 - y * y;
    case SIGMOID: return y * (1 - y);
    default: return 1;
  }
}

function size(fn: string, name: string, v: number): number {
  if (!(Number.isInteger(v) && v >= 0 && v <= 0x7fffffff)) {
    throw new RangeError(`${fn}: ${name} must be an integer in [0, 2^31), got ${v}`);
  }
  return v;
}

function need(fn: string, name: string, a: ArrayLike<number> | null, n: number): void {
  if (a !== null && a.length < n) {
    throw new TypeError(`${fn}: ${name} is too short: ${a.length} elements, the sizes need ${n}`);
  }
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** Sizes of a recurrent cell call: state = N*H values, gate = N*gates*H. */
function cellSizes(fn: string, N: number, H: number, gates: number): { state: number; gate: number } {
  size(fn, 'N', N); size(fn, 'H', H);
  return { state: N * H, gate: N * gates * H };
}

/** need() for named arrays of two sizes. */
function need2(fn: string, gateArrays: Record<string, Float32Array | null>, gate: number,
  stateArrays: Record<string, Float32Array | null>, state: number): void {
  for (const [name, a] of Object.entries(gateArrays)) need(fn, name, a, gate);
  for (const [name, a] of Object.entries(stateArrays)) need(fn, name, a, state);
}

function cellActivation(fn: string, kind: number): number {
  if (kind !== TANH && kind !== RELU) throw new RangeError(`${fn}: activation must be tanh or relu`);
  return kind;
}

function checkLabels(fn: string, labels: Int32Array, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    if (labels[n]! < 0 || labels[n]! >= C) {
      throw new RangeError(`${fn}: labels[${n}] = ${labels[n]} is outside [0, ${C})`);
    }
  }
}

// One row of doubles for gemm, grown on demand and kept: no allocation per call.
let scratch = new Float64Array(64);
function row(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(n);
  return scratch;
}

/** The geometry of one conv2d call, checked as native/addon.cc checks it. */
interface ConvShape {
  N: number; C: number; H: number; W: number; F: number; KH: number; KW: number;
  sh: number; sw: number; ph: number; pw: number; OH: number; OW: number;
}

function convShape(fn: string, N: number, C: number, H: number, W: number, F: number, KH: number, KW: number,
  strideH: number, strideW: number, padH: number, padW: number): ConvShape {
  size(fn, 'N', N); size(fn, 'C', C); size(fn, 'H', H); size(fn, 'W', W); size(fn, 'F', F);
  size(fn, 'KH', KH); size(fn, 'KW', KW); size(fn, 'strideH', strideH); size(fn, 'strideW', strideW);
  size(fn, 'padH', padH); size(fn, 'padW', padW);
  if (KH < 1 || KW < 1) throw new RangeError(`${fn}: the kernel must be at least 1x1`);
  if (strideH < 1 || strideW < 1) throw new RangeError(`${fn}: the strides must be at least 1`);
  const OH = convOutputSize(H, KH, strideH, padH);
  const OW = convOutputSize(W, KW, strideW, padW);
  if (OH < 1 || OW < 1) {
    throw new RangeError(`${fn}: the ${KH}x${KW} kernel does not fit the padded ${H + 2 * padH}x${W + 2 * padW} input`);
  }
  if (C * KH * KW > 0x7fffffff || OH * OW > 0x7fffffff) throw new RangeError(`${fn}: sizes overflow`);
  return { N, C, H, W, F, KH, KW, sh: strideH, sw: strideW, ph: padH, pw: padW, OH, OW };
}

/** The output columns ow whose input column ow*stride - pad + k lies in [0, W): [lo, hi). */
function validSpan(W: number, OW: number, k: number, stride: number, pad: number): [number, number] {
  const first = pad - k;
  const end = W + pad - k;
  const hi = Math.min(OW, end <= 0 ? 0 : Math.ceil(end / stride));
  const lo = Math.min(hi, first <= 0 ? 0 : Math.ceil(first / stride));
  return [lo, hi];
}

/** col[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][oh*sh - ph + kh][ow*sw - pw + kw] of sample x[xOff ..], 0 outside. */
function im2col(s: ConvShape, x: Float32Array, xOff: number, col: Float32Array): void {
  const P = s.OH * s.OW;
  for (let c = 0; c < s.C; c++) {
    for (let kh = 0; kh < s.KH; kh++) {
      for (let kw = 0; kw < s.KW; kw++) {
        const row = ((c * s.KH + kh) * s.KW + kw) * P;
        const [lo, hi] = validSpan(s.W, s.OW, kw, s.sw, s.pw);
        for (let oh = 0; oh < s.OH; oh++) {
          const r = row + oh * s.OW;
          const ih = oh * s.sh - s.ph + kh;
          if (ih < 0 || ih >= s.H) {
            col.fill(0, r, r + s.OW);
            continue;
          }
          const xr = xOff + (c * s.H + ih) * s.W + kw - s.pw;
          for (let ow = 0; ow < lo; ow++) col[r + ow] = 0;
          for (let ow = lo; ow < hi; ow++) col[r + ow] = x[xr + ow * s.sw]!;
          for (let ow = hi; ow < s.OW; ow++) col[r + ow] = 0;
        }
      }
    }
  }
}

/** The adjoint of im2col into sample dx[dxOff ..]: zero it, then add every col entry where it came from. */
function col2im(s: ConvShape, col: Float32Array, dx: Float32Array, dxOff: number): void {
  const P = s.OH * s.OW;
  dx.fill(0, dxOff, dxOff + s.C * s.H * s.W);
  for (let c = 0; c < s.C; c++) {
    for (let kh = 0; kh < s.KH; kh++) {
      for (let kw = 0; kw < s.KW; kw++) {
        const row = ((c * s.KH + kh) * s.KW + kw) * P;
        const [lo, hi] = validSpan(s.W, s.OW, kw, s.sw, s.pw);
        for (let oh = 0; oh < s.OH; oh++) {
          const ih = oh * s.sh - s.ph + kh;
          if (ih < 0 || ih >= s.H) continue;
          const r = row + oh * s.OW;
          const xr = dxOff + (c * s.H + ih) * s.W + kw - s.pw;
          for (let ow = lo; ow < hi; ow++) dx[xr + ow * s.sw]! += col[r + ow]!;
        }
      }
    }
  }
}

// Panel sums of denseRows, grown on demand and kept.
let panelAcc = new Float64Array(DENSE_PANEL);

/** denseInfer: per output one double sum over k in order, rounded once, then + bias and f in float. */
function denseRows(x: Float32Array, packed: Float32Array, bias: Float32Array | null, y: Float32Array,
  n: number, K: number, N: number, activation: number, alpha: number): void {
  const acc = panelAcc;
  const panels = Math.ceil(N / DENSE_PANEL);
  for (let r = 0; r < n; r++) {
    const xr = r * K;
    for (let p = 0; p < panels; p++) {
      acc.fill(0);
      const base = p * K * DENSE_PANEL;
      for (let k = 0; k < K; k++) {
        const a = x[xr + k]!;
        const w = base + k * DENSE_PANEL;
        for (let j = 0; j < DENSE_PANEL; j++) acc[j]! += a * packed[w + j]!;
      }
      const o1 = Math.min(N, (p + 1) * DENSE_PANEL);
      for (let o = p * DENSE_PANEL; o < o1; o++) {
        const v = act(activation, f32(f32(acc[o - p * DENSE_PANEL]!) + (bias ? bias[o]! : 0)), alpha);
        y[r * N + o] = v;
      }
    }
  }
}

function isPointwise(s: ConvShape): boolean {
  return s.KH === 1 && s.KW === 1 && s.sh === 1 && s.sw === 1 && s.ph === 0 && s.pw === 0;
}

/** The geometry of one pooling call, checked as native/addon.cc checks it. */
function poolShape(fn: string, N: number, C: number, H: number, W: number, window: number, stride: number) {
  size(fn, 'N', N); size(fn, 'C', C); size(fn, 'H', H); size(fn, 'W', W); size(fn, 'size', window); size(fn, 'stride', stride);
  if (window < 1 || stride < 1) throw new RangeError(`${fn}: size and stride must be at least 1`);
  if (window > H || window > W) throw new RangeError(`${fn}: the ${window}x${window} window does not fit the ${H}x${W} input`);
  const OH = convOutputSize(H, window, stride, 0);
  const OW = convOutputSize(W, window, stride, 0);
  return { OH, OW, inSize: N * C * H * W, outSize: N * C * OH * OW };
}

/** softmaxRows' scratch of one row's exponentials, grown to the widest row seen. */
let softmaxExps = new Float64Array(16);

const kernels: Kernels = {
  name: 'portable',
  gemmBackend: 'portable',
  inferThreads: 1,
  cpu: 'portable',

  gemm(transA, transB, M, N, K, alpha, A, B, beta, C) {
    size('gemm', 'M', M); size('gemm', 'N', N); size('gemm', 'K', K);
    need('gemm', 'A', A, M * K); need('gemm', 'B', B, K * N); need('gemm', 'C', C, M * N);
    const acc = row(Math.max(N, K));
    for (let i = 0; i < M; i++) {
      const ci = i * N;
      if (!transB) {
        // i-k-j: row i of C is a sum of rows of B, so the inner loop is contiguous.
        acc.fill(0, 0, N);
        for (let p = 0; p < K; p++) {
          const a = transA ? A[p * M + i]! : A[i * K + p]!;
          const bp = p * N;
          for (let j = 0; j < N; j++) acc[j]! += a * B[bp + j]!;
        }
        for (let j = 0; j < N; j++) C[ci + j] = beta === 0 ? alpha * acc[j]! : alpha * acc[j]! + beta * C[ci + j]!;
      } else {
        // B stored [N, K]: C[i][j] is row i of op(A) dotted with row j of B,
        // which keeps the inner loop contiguous instead of striding through B.
        for (let p = 0; p < K; p++) acc[p] = transA ? A[p * M + i]! : A[i * K + p]!;
        for (let j = 0; j < N; j++) {
          const bj = j * K;
          let s = 0;
          for (let p = 0; p < K; p++) s += acc[p]! * B[bj + p]!;
          C[ci + j] = beta === 0 ? alpha * s : alpha * s + beta * C[ci + j]!;
        }
      }
    }
  },

  addBias(x, bias, N, C, S, activation = NO_ACTIVATION, alpha = 0) {
    size('addBias', 'N', N); size('addBias', 'C', C); size('addBias', 'S', S);
    need('addBias', 'x', x, N * C * S); need('addBias', 'bias', bias, C);
    const a = f32(alpha);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const off = (n * C + c) * S;
        const b = bias[c]!;
        for (let s = 0; s < S; s++) x[off + s] = act(activation, f32(x[off + s]! + b), a);
      }
    }
  },

  biasGrad(dy, dbias, N, C, S, activation = NO_ACTIVATION, alpha = 0, y = null) {
    size('biasGrad', 'N', N); size('biasGrad', 'C', C); size('biasGrad', 'S', S);
    need('biasGrad', 'dy', dy, N * C * S); need('biasGrad', 'dbias', dbias, C);
    if (activation !== NO_ACTIVATION) {
      need('biasGrad', 'y', y, N * C * S);
      const a = f32(alpha);
      for (let i = 0; i < N * C * S; i++) dy[i] = dy[i]! * actGrad(activation, y![i]!, a);
    }
    for (let c = 0; c < C; c++) {
      let sum = 0;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) sum += dy[off + s]!;
      }
      dbias[c] = sum;
    }
  },

  batchNormForwardTrain(x, y, N, C, S, gamma, beta, runningMean, runningVar, momentum, eps, updateRunning,
    saveMean, saveRstd, activation = NO_ACTIVATION, alpha = 0) {
    normForwardTrain('batchNormForwardTrain', x, y, N, C, S, gamma, beta, runningMean, runningVar, momentum, eps,
      updateRunning, saveMean, saveRstd, null, activation, alpha);
  },

  batchRenormForwardTrain(x, y, N, C, S, gamma, beta, runningMean, runningVar, momentum, eps, rMax, dMax,
    updateRunning, saveMean, saveRstd, saveR, saveD, activation = NO_ACTIVATION, alpha = 0) {
    const fn = 'batchRenormForwardTrain';
    need(fn, 'saveR', saveR, C); need(fn, 'saveD', saveD, C);
    if (!(rMax >= 1)) throw new RangeError(`${fn}: rMax must be at least 1`);
    if (!(dMax >= 0)) throw new RangeError(`${fn}: dMax must be at least 0`);
    normForwardTrain(fn, x, y, N, C, S, gamma, beta, runningMean, runningVar, momentum, eps, updateRunning,
      saveMean, saveRstd, { rMax, dMax, saveR, saveD }, activation, alpha);
  },

  batchNormForwardInfer(x, y, N, C, S, gamma, beta, runningMean, runningVar, eps) {
    const fn = 'batchNormForwardInfer';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    need(fn, 'x', x, N * C * S); need(fn, 'y', y, N * C * S); need(fn, 'gamma', gamma, C); need(fn, 'beta', beta, C);
    need(fn, 'runningMean', runningMean, C); need(fn, 'runningVar', runningVar, C);
    for (let c = 0; c < C; c++) {
      const m = runningMean[c]!;
      const scale = (gamma ? gamma[c]! : 1) / Math.sqrt(runningVar[c]! + eps);
      const b = beta ? beta[c]! : 0;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) y[off + s] = (x[off + s]! - m) * scale + b;
      }
    }
  },

  batchNormBackward(x, dy, dx, N, C, S, gamma, saveMean, saveRstd, saveR, saveD, dgamma, dbeta,
    activation = NO_ACTIVATION, alpha = 0, y = null) {
    const fn = 'batchNormBackward';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    const M = N * S;
    need(fn, 'x', x, M * C); need(fn, 'dy', dy, M * C); need(fn, 'dx', dx, M * C); need(fn, 'gamma', gamma, C);
    need(fn, 'saveMean', saveMean, C); need(fn, 'saveRstd', saveRstd, C);
    if ((saveR === null) !== (saveD === null)) throw new TypeError(`${fn}: saveR and saveD go together`);
    need(fn, 'saveR', saveR, C); need(fn, 'saveD', saveD, C);
    need(fn, 'dgamma', dgamma, C); need(fn, 'dbeta', dbeta, C);
    if (C > 0 && M === 0) throw new RangeError(`${fn}: needs a value per channel (N*S = 0)`);
    if (activation !== NO_ACTIVATION) {
      if (!y) throw new TypeError(`${fn}: y must be a Float32Array`);
      need(fn, 'y', y, M * C);
    }
    // g = dy·f'(y), the gradient at the batch-norm output.
    const a = f32(alpha);
    const g = (i: number) => (activation === NO_ACTIVATION ? dy[i]! : f32(dy[i]! * actGrad(activation, y![i]!, a)));
    for (let c = 0; c < C; c++) {
      const mean = saveMean[c]!;
      const rstd = saveRstd[c]!;
      let dsum = 0;
      let dxhatSum = 0;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) {
          dsum += g(off + s);
          dxhatSum += g(off + s) * ((x[off + s]! - mean) * rstd);
        }
      }
      // Renormalization: x̂ = r·x̂_B + d with r, d constants, so Σg·x̂ = r·Σg·x̂_B + d·Σg and γ·r scales dx.
      const r = saveR ? saveR[c]! : 1;
      if (dgamma) dgamma[c] = saveR ? r * dxhatSum + saveD![c]! * dsum : dxhatSum;
      if (dbeta) dbeta[c] = dsum;
      // Reads dy[i] before writing dx[i], so dx may alias dy.
      const scale = saveR ? (gamma ? gamma[c]! : 1) * r * rstd : (gamma ? gamma[c]! : 1) * rstd;
      const dmean = dsum / M;
      const dxhatMean = dxhatSum / M;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) {
          const xhat = (x[off + s]! - mean) * rstd;
          dx[off + s] = scale * (g(off + s) - dmean - xhat * dxhatMean);
        }
      }
    }
  },

  batchNormUpdateRunning(runningMean, runningVar, mean, variance, C, momentum, count) {
    const fn = 'batchNormUpdateRunning';
    size(fn, 'C', C); size(fn, 'count', count);
    need(fn, 'runningMean', runningMean, C); need(fn, 'runningVar', runningVar, C);
    need(fn, 'mean', mean, C); need(fn, 'variance', variance, C);
    if (count === 1) throw new RangeError(`${fn}: count must be 0 (unbiased variance) or at least 2`);
    for (let c = 0; c < C; c++) updateRunningStats(runningMean, runningVar, c, mean[c]!, variance[c]!, count, momentum);
  },

  channelShiftedSums(x, N, C, S, shift, sums) {
    const fn = 'channelShiftedSums';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    need(fn, 'x', x, N * C * S); need(fn, 'shift', shift, C); need(fn, 'sums', sums, 2 * C);
    for (let c = 0; c < C; c++) addShiftedSums(x, N, C, S, c, shift[c]!, sums, 2 * c);
  },

  batchNormBackwardFrozen(x, dy, dx, N, C, S, gamma, runningMean, runningVar, eps, dgamma, dbeta,
    activation = NO_ACTIVATION, alpha = 0, y = null) {
    const fn = 'batchNormBackwardFrozen';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    const total = N * C * S;
    need(fn, 'x', x, total); need(fn, 'dy', dy, total); need(fn, 'dx', dx, total); need(fn, 'gamma', gamma, C);
    need(fn, 'runningMean', runningMean, C); need(fn, 'runningVar', runningVar, C);
    need(fn, 'dgamma', dgamma, C); need(fn, 'dbeta', dbeta, C);
    let g = dy;
    if (activation !== NO_ACTIVATION) {
      if (!y) throw new TypeError(`${fn}: y must be a Float32Array`);
      need(fn, 'y', y, total);
      // f' read off the output, whose sign matches the input for every activation here.
      kernels.activationBackward(activation, y!, y!, dy, dx, total, alpha);
      g = dx;
    }
    for (let c = 0; c < C; c++) {
      const rstd = 1 / Math.sqrt(runningVar[c]! + eps);
      const mean = runningMean[c]!;
      const scale = (gamma ? gamma[c]! : 1) * rstd;
      let sum = 0;
      let sumXhat = 0;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let q = off; q < off + S; q++) {
          sum += g[q]!;
          sumXhat += g[q]! * (x[q]! - mean) * rstd;
          dx[q] = g[q]! * scale;
        }
      }
      if (dgamma) dgamma[c] = sumXhat;
      if (dbeta) dbeta[c] = sum;
    }
  },

  batchNormBackwardGhost(x, dy, dx, N, C, S, virtualBatch, gamma, saveMean, saveRstd, saveR, saveD, dgamma, dbeta, scratch,
    activation = NO_ACTIVATION, alpha = 0, y = null) {
    const fn = 'batchNormBackwardGhost';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S); size(fn, 'virtualBatch', virtualBatch);
    if (virtualBatch < 1 || N < virtualBatch) throw new RangeError(`${fn}: needs 1 <= virtualBatch <= N (virtualBatch = ${virtualBatch}, N = ${N})`);
    const chunks = Math.floor(N / virtualBatch);
    const per = C * S;
    need(fn, 'x', x, N * per); need(fn, 'dy', dy, N * per); need(fn, 'dx', dx, N * per); need(fn, 'gamma', gamma, C);
    need(fn, 'saveMean', saveMean, chunks * C); need(fn, 'saveRstd', saveRstd, chunks * C);
    if ((saveR === null) !== (saveD === null)) throw new TypeError(`${fn}: saveR and saveD go together`);
    need(fn, 'saveR', saveR, chunks * C); need(fn, 'saveD', saveD, chunks * C);
    need(fn, 'dgamma', dgamma, C); need(fn, 'dbeta', dbeta, C); need(fn, 'scratch', scratch, 2 * C);
    if (activation !== NO_ACTIVATION) {
      if (!y) throw new TypeError(`${fn}: y must be a Float32Array`);
      need(fn, 'y', y, N * per);
    }
    // Each virtual batch's γ/β gradients go to scratch first, then into the sums.
    const dg = dgamma && scratch.subarray(0, C);
    const db = dbeta && scratch.subarray(C, 2 * C);
    dgamma?.fill(0);
    dbeta?.fill(0);
    for (let i = 0; i < chunks; i++) {
      const first = i * virtualBatch;
      const rows = i === chunks - 1 ? N - first : virtualBatch;
      const view = (a: Float32Array) => a.subarray(first * per, (first + rows) * per);
      const stats = (a: Float32Array) => a.subarray(i * C, (i + 1) * C);
      kernels.batchNormBackward(view(x), view(dy), view(dx), rows, C, S, gamma, stats(saveMean), stats(saveRstd),
        saveR && stats(saveR), saveD && stats(saveD), dg, db, activation, alpha, activation === NO_ACTIVATION ? null : view(y!));
      for (let c = 0; c < C; c++) {
        if (dgamma) dgamma[c] = dgamma[c]! + dg![c]!;
        if (dbeta) dbeta[c] = dbeta[c]! + db![c]!;
      }
    }
  },

  activationForward(kind, x, y, n, alpha) {
    size('activationForward', 'n', n);
    need('activationForward', 'x', x, n); need('activationForward', 'y', y, n);
    const a = f32(alpha);
    switch (kind) {
      case RELU: // x < 0 rather than x > 0 so that NaN passes through
        for (let i = 0; i < n; i++) y[i] = x[i]! < 0 ? 0 : x[i]!;
        break;
      case LEAKY_RELU:
        for (let i = 0; i < n; i++) y[i] = x[i]! < 0 ? a * x[i]! : x[i]!;
        break;
      case ELU:
        for (let i = 0; i < n; i++) y[i] = x[i]! > 0 ? x[i]! : a * Math.expm1(x[i]!);
        break;
      case TANH:
        for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]!);
        break;
      case SIGMOID:
        for (let i = 0; i < n; i++) y[i] = 1 / (1 + Math.exp(-x[i]!));
        break;
      default:
        throw new RangeError(`activationForward: unknown activation kind ${kind}`);
    }
  },

  activationBackward(kind, x, y, dy, dx, n, alpha) {
    const fn = 'activationBackward';
    size(fn, 'n', n);
    need(fn, 'x', x, n); need(fn, 'y', y, n); need(fn, 'dy', dy, n); need(fn, 'dx', dx, n);
    const a = f32(alpha);
    switch (kind) {
      case RELU: // x = 0 takes the x < 0 side, as PyTorch does
        for (let i = 0; i < n; i++) dx[i] = x[i]! > 0 ? dy[i]! : 0;
        break;
      case LEAKY_RELU:
        for (let i = 0; i < n; i++) dx[i] = x[i]! > 0 ? dy[i]! : a * dy[i]!;
        break;
      case ELU: // alpha * exp(x) = y + alpha on the negative side
        for (let i = 0; i < n; i++) dx[i] = x[i]! > 0 ? dy[i]! : dy[i]! * (y[i]! + a);
        break;
      case TANH:
        for (let i = 0; i < n; i++) dx[i] = dy[i]! * (1 - y[i]! * y[i]!);
        break;
      case SIGMOID:
        for (let i = 0; i < n; i++) dx[i] = dy[i]! * y[i]! * (1 - y[i]!);
        break;
      default:
        throw new RangeError(`activationBackward: unknown activation kind ${kind}`);
    }
  },

  dropoutForward(x, y, mask, n, rate, rngState) {
    const fn = 'dropoutForward';
    size(fn, 'n', n);
    need(fn, 'x', x, n); need(fn, 'y', y, n); need(fn, 'mask', mask, n); need(fn, 'rngState', rngState, 4);
    if (!(rate >= 0 && rate < 1)) throw new RangeError(`${fn}: rate must be in [0, 1)`);
    const keep = f32(1 / (1 - rate));
    for (let i = 0; i < n; i++) {
      const u = (nextUint32(rngState) >>> 8) * (1 / 16777216);
      mask[i] = u < rate ? 0 : keep;
      y[i] = x[i]! * mask[i]!;
    }
  },

  gatherRows(src, srcLabels, rows, start, n, features, dst, dstLabels) {
    const fn = 'gatherRows';
    size(fn, 'start', start); size(fn, 'n', n); size(fn, 'features', features);
    need(fn, 'rows', rows, start + n); need(fn, 'dst', dst, n * features); need(fn, 'dstLabels', dstLabels, n);
    const srcRows = features === 0 ? 0 : Math.floor(src.length / features);
    need(fn, 'srcLabels', srcLabels, srcRows);
    for (let i = 0; i < n; i++) {
      const r = rows[start + i]!;
      if (r < 0 || r >= srcRows) throw new RangeError(`${fn}: row ${r} is outside the ${srcRows} source rows`);
      dst.set(src.subarray(r * features, (r + 1) * features), i * features);
      dstLabels[i] = srcLabels[r]!;
    }
  },

  multiply(a, b, out, n) {
    size('multiply', 'n', n);
    need('multiply', 'a', a, n); need('multiply', 'b', b, n); need('multiply', 'out', out, n);
    for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
  },

  softmaxRows(logits, out, N, C) {
    const fn = 'softmaxRows';
    size(fn, 'N', N); size(fn, 'C', C);
    need(fn, 'logits', logits, N * C); need(fn, 'out', out, N * C);
    if (softmaxExps.length < C) softmaxExps = new Float64Array(C);
    const exps = softmaxExps;
    for (let n = 0; n < N; n++) {
      const base = n * C;
      let max = -Infinity;
      for (let c = 0; c < C; c++) max = Math.max(max, logits[base + c]!);
      let sum = 0;
      for (let c = 0; c < C; c++) sum += (exps[c] = Math.exp(logits[base + c]! - max));
      for (let c = 0; c < C; c++) out[base + c] = exps[c]! / sum;
    }
  },

  softmaxCrossEntropy(logits, labels, probs, N, C, correct) {
    const fn = 'softmaxCrossEntropy';
    size(fn, 'N', N); size(fn, 'C', C);
    need(fn, 'logits', logits, N * C); need(fn, 'labels', labels, N); need(fn, 'probs', probs, N * C);
    need(fn, 'correct', correct, 1);
    checkLabels(fn, labels, N, C);
    let loss = 0;
    let hits = 0;
    for (let n = 0; n < N; n++) {
      const off = n * C;
      let argmax = 0;
      for (let c = 1; c < C; c++) if (logits[off + c]! > logits[off + argmax]!) argmax = c;
      const max = logits[off + argmax]!;
      let sum = 0;
      for (let c = 0; c < C; c++) {
        const e = Math.exp(logits[off + c]! - max);
        probs[off + c] = e;
        sum += e;
      }
      const norm = 1 / sum;
      for (let c = 0; c < C; c++) probs[off + c]! *= norm;
      // -log softmax[label], exact even when that probability underflows.
      const label = labels[n]!;
      loss += Math.log(sum) - (logits[off + label]! - max);
      if (argmax === label) hits++;
    }
    if (correct) correct[0] = hits;
    return loss / N;
  },

  softmaxCrossEntropyBackward(probs, labels, dlogits, N, C) {
    const fn = 'softmaxCrossEntropyBackward';
    size(fn, 'N', N); size(fn, 'C', C);
    need(fn, 'probs', probs, N * C); need(fn, 'labels', labels, N); need(fn, 'dlogits', dlogits, N * C);
    checkLabels(fn, labels, N, C);
    const invN = f32(1 / N);
    for (let n = 0; n < N; n++) {
      const off = n * C;
      const label = labels[n]!;
      for (let c = 0; c < C; c++) dlogits[off + c] = (probs[off + c]! - (c === label ? 1 : 0)) * invN;
    }
  },

  sgdStep(param, grad, velocity, n, lr, momentum, nesterov, weightDecay) {
    const fn = 'sgdStep';
    size(fn, 'n', n);
    need(fn, 'param', param, n); need(fn, 'grad', grad, n); need(fn, 'velocity', velocity, momentum > 0 ? n : 0);
    const rate = f32(lr);
    const mu = f32(momentum);
    const wd = f32(weightDecay);
    for (let i = 0; i < n; i++) {
      let g = f32(grad[i]! + wd * param[i]!);
      if (mu > 0) {
        velocity[i] = mu * velocity[i]! + g;
        g = nesterov ? g + mu * velocity[i]! : velocity[i]!;
      }
      param[i] = param[i]! - rate * g;
    }
  },

  adamStep(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) {
    const fn = 'adamStep';
    size(fn, 'n', n); size(fn, 'step', step);
    need(fn, 'param', param, n); need(fn, 'grad', grad, n); need(fn, 'm', m, n); need(fn, 'v', v, n);
    if (step < 1) throw new RangeError(`${fn}: step counts from 1`);
    const stepSize = f32(lr / (1 - beta1 ** step));
    const bc2Sqrt = f32(Math.sqrt(1 - beta2 ** step));
    const b1 = f32(beta1);
    const b2 = f32(beta2);
    const e = f32(eps);
    const wd = f32(weightDecay);
    for (let i = 0; i < n; i++) {
      const g = f32(grad[i]! + wd * param[i]!);
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      param[i] = param[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / bc2Sqrt + e);
    }
  },

  conv2dForward(x, weight, bias, y, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW, col) {
    const fn = 'conv2dForward';
    const s = convShape(fn, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW);
    const P = s.OH * s.OW;
    const K = C * KH * KW;
    const inPlane = C * H * W;
    need(fn, 'x', x, N * inPlane); need(fn, 'weight', weight, F * K); need(fn, 'bias', bias, F);
    need(fn, 'y', y, N * F * P); need(fn, 'col', col, K * P);
    const pointwise = isPointwise(s);
    for (let n = 0; n < N; n++) {
      const yn = y.subarray(n * F * P, (n + 1) * F * P);
      if (!pointwise) im2col(s, x, n * inPlane, col);
      kernels.gemm(false, false, F, P, K, 1, weight, pointwise ? x.subarray(n * inPlane, (n + 1) * inPlane) : col, 0, yn);
      if (bias) {
        for (let f = 0; f < F; f++) {
          const b = bias[f]!;
          for (let p = f * P; p < (f + 1) * P; p++) yn[p]! += b;
        }
      }
    }
  },

  packDense(weight, out, inputs, packed) {
    size('packDense', 'out', out); size('packDense', 'in', inputs);
    need('packDense', 'weight', weight, out * inputs); need('packDense', 'packed', packed, packedDenseSize(out, inputs));
    const panels = Math.ceil(out / DENSE_PANEL);
    for (let p = 0; p < panels; p++) {
      for (let k = 0; k < inputs; k++) {
        const dst = (p * inputs + k) * DENSE_PANEL;
        for (let j = 0; j < DENSE_PANEL; j++) {
          const o = p * DENSE_PANEL + j;
          packed[dst + j] = o < out ? weight[o * inputs + k]! : 0;
        }
      }
    }
  },

  alignedFloat32Array(n) {
    size('alignedFloat32Array', 'n', n);
    return new Float32Array(n);
  },

  denseInfer(x, packed, bias, y, N, inputs, out, activation = NO_ACTIVATION, alpha = 0) {
    const fn = 'denseInfer';
    size(fn, 'N', N); size(fn, 'in', inputs); size(fn, 'out', out);
    need(fn, 'x', x, N * inputs); need(fn, 'packed', packed, packedDenseSize(out, inputs)); need(fn, 'bias', bias, out);
    need(fn, 'y', y, N * out);
    if (activation !== NO_ACTIVATION && !(Number.isInteger(activation) && activation >= 0 && activation < ACTIVATIONS.length)) {
      throw new RangeError(`${fn}: unknown activation kind ${activation}`);
    }
    denseRows(x, packed, bias, y, N, inputs, out, activation, f32(alpha));
  },

  denseChain(layers) {
    if (layers.length === 0) throw new RangeError('denseChain: needs at least one layer');
    const chain = layers.map((l) => ({ ...l }));
    const width = Math.max(0, ...chain.slice(0, -1).map((l) => l.out));
    let a = new Float32Array(0);
    let b = new Float32Array(0);
    return {
      run(x, N, y) {
        size('denseChainRun', 'N', N);
        if (a.length < N * width) {
          a = new Float32Array(N * width);
          b = new Float32Array(N * width);
        }
        let input = x;
        chain.forEach((l, i) => {
          const output = i === chain.length - 1 ? y : i % 2 === 0 ? a : b;
          kernels.denseInfer(input, l.packed, l.bias, output, N, l.in, l.out, l.activation, l.alpha);
          input = output;
        });
      },
    };
  },

  packConv(weight, F, C, KH, KW, strideH, strideW) {
    for (const [name, v] of [['F', F], ['C', C], ['KH', KH], ['KW', KW], ['strideH', strideH], ['strideW', strideW]] as const) {
      size('packConv', name, v);
    }
    if (KH < 1 || KW < 1) throw new RangeError('packConv: the kernel must be at least 1x1');
    if (strideH < 1 || strideW < 1) throw new RangeError('packConv: the strides must be at least 1');
    need('packConv', 'weight', weight, F * C * KH * KW);
    return weight.slice(0, F * C * KH * KW);
  },

  conv2dInfer(x, weight, bias, y, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW, col, activation = NO_ACTIVATION, alpha = 0) {
    // One gemm per sample of the same shape, as conv2dForward does.
    kernels.conv2dForward(x, weight, bias, y, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW, col);
    if (activation !== NO_ACTIVATION) {
      const size = N * F * convOutputSize(H, KH, strideH, padH) * convOutputSize(W, KW, strideW, padW);
      kernels.activationForward(activation, y, y, size, alpha);
    }
  },

  conv2dBackward(x, weight, dy, dx, dweight, dbias, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW, col) {
    const fn = 'conv2dBackward';
    const s = convShape(fn, N, C, H, W, F, KH, KW, strideH, strideW, padH, padW);
    const P = s.OH * s.OW;
    const K = C * KH * KW;
    const inPlane = C * H * W;
    need(fn, 'x', x, N * inPlane); need(fn, 'weight', weight, F * K); need(fn, 'dy', dy, N * F * P);
    need(fn, 'dx', dx, N * inPlane); need(fn, 'dweight', dweight, F * K); need(fn, 'dbias', dbias, F);
    need(fn, 'col', col, K * P);
    if (dbias) {
      for (let f = 0; f < F; f++) {
        let sum = 0;
        for (let n = 0; n < N; n++) {
          const off = (n * F + f) * P;
          for (let p = 0; p < P; p++) sum += dy[off + p]!;
        }
        dbias[f] = sum;
      }
    }
    if (N === 0) dweight.fill(0, 0, F * K);
    const pointwise = isPointwise(s);
    for (let n = 0; n < N; n++) {
      const dyn = dy.subarray(n * F * P, (n + 1) * F * P);
      if (!pointwise) im2col(s, x, n * inPlane, col);
      // dweight[F, K] (+)= dy[n][F, P] · col[K, P]ᵀ; the first sample overwrites.
      kernels.gemm(false, true, F, K, P, 1, dyn, pointwise ? x.subarray(n * inPlane, (n + 1) * inPlane) : col,
        n === 0 ? 0 : 1, dweight);
      if (dx) {
        // dcol[K, P] = weight[F, K]ᵀ · dy[n][F, P], then folded back onto dx[n].
        if (pointwise) {
          kernels.gemm(true, false, K, P, F, 1, weight, dyn, 0, dx.subarray(n * inPlane, (n + 1) * inPlane));
        } else {
          kernels.gemm(true, false, K, P, F, 1, weight, dyn, 0, col);
          col2im(s, col, dx, n * inPlane);
        }
      }
    }
  },

  maxPool2dForward(x, y, argmax, N, C, H, W, window, stride) {
    const fn = 'maxPool2dForward';
    const { OH, OW, inSize, outSize } = poolShape(fn, N, C, H, W, window, stride);
    need(fn, 'x', x, inSize); need(fn, 'y', y, outSize); need(fn, 'argmax', argmax, outSize);
    for (let pl = 0; pl < N * C; pl++) {
      const xp = pl * H * W;
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const h0 = oh * stride;
          const w0 = ow * stride;
          // As PyTorch: the first maximum wins a tie, a NaN beats everything (the last NaN).
          let best = h0 * W + w0;
          let max = -Infinity;
          for (let i = 0; i < window; i++) {
            for (let j = 0; j < window; j++) {
              const idx = (h0 + i) * W + w0 + j;
              const v = x[xp + idx]!;
              if (v > max || Number.isNaN(v)) {
                max = v;
                best = idx;
              }
            }
          }
          const o = (pl * OH + oh) * OW + ow;
          y[o] = max;
          argmax[o] = best;
        }
      }
    }
  },

  maxPool2dBackward(dy, argmax, dx, N, C, H, W, window, stride) {
    const fn = 'maxPool2dBackward';
    const { OH, OW, inSize, outSize } = poolShape(fn, N, C, H, W, window, stride);
    need(fn, 'dy', dy, outSize); need(fn, 'argmax', argmax, outSize); need(fn, 'dx', dx, inSize);
    const HW = H * W;
    const OHW = OH * OW;
    for (let pl = 0; pl < N * C; pl++) {
      dx.fill(0, pl * HW, (pl + 1) * HW);
      for (let o = pl * OHW; o < (pl + 1) * OHW; o++) {
        const idx = argmax[o]!;
        if (idx < 0 || idx >= HW) throw new RangeError(`${fn}: argmax[${o}] = ${idx} is outside [0, ${HW})`);
        dx[pl * HW + idx]! += dy[o]!;
      }
    }
  },

  avgPool2dForward(x, y, N, C, H, W, window, stride) {
    const fn = 'avgPool2dForward';
    const { OH, OW, inSize, outSize } = poolShape(fn, N, C, H, W, window, stride);
    need(fn, 'x', x, inSize); need(fn, 'y', y, outSize);
    const count = window * window;
    for (let pl = 0; pl < N * C; pl++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const xw = (pl * H + oh * stride) * W + ow * stride;
          let sum = 0;
          for (let i = 0; i < window; i++) {
            for (let j = 0; j < window; j++) sum += x[xw + i * W + j]!;
          }
          y[(pl * OH + oh) * OW + ow] = sum / count;
        }
      }
    }
  },

  avgPool2dBackward(dy, dx, N, C, H, W, window, stride) {
    const fn = 'avgPool2dBackward';
    const { OH, OW, inSize, outSize } = poolShape(fn, N, C, H, W, window, stride);
    need(fn, 'dy', dy, outSize); need(fn, 'dx', dx, inSize);
    const count = window * window;
    dx.fill(0, 0, inSize);
    for (let pl = 0; pl < N * C; pl++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const g = f32(dy[(pl * OH + oh) * OW + ow]! / count);
          const xw = (pl * H + oh * stride) * W + ow * stride;
          for (let i = 0; i < window; i++) {
            for (let j = 0; j < window; j++) dx[xw + i * W + j]! += g;
          }
        }
      }
    }
  },

  globalAvgPoolForward(x, y, N, C, S) {
    const fn = 'globalAvgPoolForward';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    need(fn, 'x', x, N * C * S); need(fn, 'y', y, N * C);
    if (N * C > 0 && S === 0) throw new RangeError(`${fn}: needs a value per plane (S = 0)`);
    for (let pl = 0; pl < N * C; pl++) {
      let sum = 0;
      for (let s = pl * S; s < (pl + 1) * S; s++) sum += x[s]!;
      y[pl] = sum / S;
    }
  },

  globalAvgPoolBackward(dy, dx, N, C, S) {
    const fn = 'globalAvgPoolBackward';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    need(fn, 'dy', dy, N * C); need(fn, 'dx', dx, N * C * S);
    for (let pl = 0; pl < N * C; pl++) dx.fill(dy[pl]! / S, pl * S, (pl + 1) * S);
  },

  lstmCellForward(xg, hg, cPrev, gates, c, N, H) {
    const s = cellSizes('lstmCellForward', N, H, 4);
    need2('lstmCellForward', { xg, hg, gates }, s.gate, { cPrev, c }, s.state);
    for (let n = 0; n < N; n++) {
      const g = n * 4 * H;
      for (let j = 0; j < H; j++) {
        const i = sigmoid(xg[g + j]! + hg[g + j]!);
        const f = sigmoid(xg[g + H + j]! + hg[g + H + j]!);
        const gg = Math.tanh(xg[g + 2 * H + j]! + hg[g + 2 * H + j]!);
        const o = sigmoid(xg[g + 3 * H + j]! + hg[g + 3 * H + j]!);
        gates[g + j] = i; gates[g + H + j] = f; gates[g + 2 * H + j] = gg; gates[g + 3 * H + j] = o;
        c[n * H + j] = f32(gates[g + H + j]! * cPrev[n * H + j]!) + f32(gates[g + j]! * gates[g + 2 * H + j]!);
      }
    }
  },

  lstmOutputForward(gates, z, h, N, H) {
    const s = cellSizes('lstmOutputForward', N, H, 4);
    need2('lstmOutputForward', { gates }, s.gate, { z, h }, s.state);
    for (let n = 0; n < N; n++) {
      for (let j = 0; j < H; j++) h[n * H + j] = gates[n * 4 * H + 3 * H + j]! * Math.tanh(z[n * H + j]!);
    }
  },

  lstmOutputBackward(gates, z, dh, dhNext, dz, dgates, N, H) {
    const s = cellSizes('lstmOutputBackward', N, H, 4);
    need2('lstmOutputBackward', { gates, dgates }, s.gate, { z, dh, dhNext, dz }, s.state);
    for (let n = 0; n < N; n++) {
      const o = n * 4 * H + 3 * H;
      for (let j = 0; j < H; j++) {
        const q = n * H + j;
        const d = (dh ? dh[q]! : 0) + (dhNext ? dhNext[q]! : 0);
        const og = gates[o + j]!;
        const t = Math.tanh(z[q]!);
        dgates[o + j] = d * t * og * (1 - og);
        dz[q] = d * og * (1 - t * t);
      }
    }
  },

  lstmCellBackward(gates, cPrev, dz, dcNext, dgates, dcPrev, N, H) {
    const s = cellSizes('lstmCellBackward', N, H, 4);
    need2('lstmCellBackward', { gates, dgates }, s.gate, { cPrev, dz, dcNext, dcPrev }, s.state);
    for (let n = 0; n < N; n++) {
      const g = n * 4 * H;
      for (let j = 0; j < H; j++) {
        const q = n * H + j;
        const dc = dz[q]! + (dcNext ? dcNext[q]! : 0);
        const i = gates[g + j]!, f = gates[g + H + j]!, gg = gates[g + 2 * H + j]!;
        dgates[g + j] = dc * gg * i * (1 - i);
        dgates[g + H + j] = dc * cPrev[q]! * f * (1 - f);
        dgates[g + 2 * H + j] = dc * i * (1 - gg * gg);
        dcPrev[q] = dc * f;
      }
    }
  },

  gruCellForward(xg, hg, hPrev, gates, h, N, H) {
    const s = cellSizes('gruCellForward', N, H, 3);
    need2('gruCellForward', { xg, hg, gates }, s.gate, { hPrev, h }, s.state);
    for (let n = 0; n < N; n++) {
      const g = n * 3 * H;
      for (let j = 0; j < H; j++) {
        const r = f32(sigmoid(xg[g + j]! + hg[g + j]!));
        const z = f32(sigmoid(xg[g + H + j]! + hg[g + H + j]!));
        const nn = f32(Math.tanh(xg[g + 2 * H + j]! + r * hg[g + 2 * H + j]!));
        gates[g + j] = r; gates[g + H + j] = z; gates[g + 2 * H + j] = nn;
        h[n * H + j] = (1 - z) * nn + z * hPrev[n * H + j]!;
      }
    }
  },

  gruCellBackward(gates, hg, hPrev, dh, dhNext, dxg, dhg, dhPrev, N, H) {
    const s = cellSizes('gruCellBackward', N, H, 3);
    need2('gruCellBackward', { gates, hg, dxg, dhg }, s.gate, { hPrev, dh, dhNext, dhPrev }, s.state);
    for (let n = 0; n < N; n++) {
      const g = n * 3 * H;
      for (let j = 0; j < H; j++) {
        const q = n * H + j;
        const d = (dh ? dh[q]! : 0) + (dhNext ? dhNext[q]! : 0);
        const r = gates[g + j]!, z = gates[g + H + j]!, nn = gates[g + 2 * H + j]!;
        const an = d * (1 - z) * (1 - nn * nn);
        const ar = an * hg[g + 2 * H + j]! * r * (1 - r);
        const az = d * (hPrev[q]! - nn) * z * (1 - z);
        dxg[g + j] = ar; dxg[g + H + j] = az; dxg[g + 2 * H + j] = an;
        dhg[g + j] = ar; dhg[g + H + j] = az; dhg[g + 2 * H + j] = an * r;
        dhPrev[q] = d * z;
      }
    }
  },

  rnnCellForward(xg, hg, h, N, H, activation) {
    const s = cellSizes('rnnCellForward', N, H, 1);
    need2('rnnCellForward', { xg, hg, h }, s.state, {}, 0);
    const kind = cellActivation('rnnCellForward', activation);
    for (let i = 0; i < s.state; i++) h[i] = act(kind, xg[i]! + hg[i]!, 0);
  },

  rnnCellBackward(h, dh, dhNext, da, N, H, activation) {
    const s = cellSizes('rnnCellBackward', N, H, 1);
    need2('rnnCellBackward', { h, dh, dhNext, da }, s.state, {}, 0);
    const kind = cellActivation('rnnCellBackward', activation);
    for (let i = 0; i < s.state; i++) {
      const d = (dh ? dh[i]! : 0) + (dhNext ? dhNext[i]! : 0);
      da[i] = d * actGrad(kind, h[i]!, 0);
    }
  },
};

export const portableKernels: Kernels = Object.freeze(kernels);
