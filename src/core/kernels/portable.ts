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
 * Mean and biased variance of channel c over its N*S values. Sums are taken
 * around the channel's first value, as in the addon, so they do not cancel
 * when |mean| >> std.
 */
function channelMoments(x: Float32Array, N: number, C: number, S: number, c: number): [number, number] {
  const M = N * S;
  const shift = x[c * S]!;
  let sum = 0;
  let sumsq = 0;
  for (let n = 0; n < N; n++) {
    const off = (n * C + c) * S;
    for (let s = 0; s < S; s++) {
      const d = x[off + s]! - shift;
      sum += d;
      sumsq += d * d;
    }
  }
  return [shift + sum / M, Math.max(0, (sumsq - (sum * sum) / M) / M)];
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

const kernels: Kernels = {
  name: 'portable',
  gemmBackend: 'portable',
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
    const fn = 'batchNormForwardTrain';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    const M = N * S;
    need(fn, 'x', x, M * C); need(fn, 'y', y, M * C); need(fn, 'gamma', gamma, C); need(fn, 'beta', beta, C);
    need(fn, 'runningMean', runningMean, C); need(fn, 'runningVar', runningVar, C);
    need(fn, 'saveMean', saveMean, C); need(fn, 'saveRstd', saveRstd, C);
    if (C > 0 && M < (updateRunning ? 2 : 1)) {
      throw new RangeError(`${fn}: needs ${updateRunning ? 'two values' : 'a value'} per channel (N*S = ${M})`);
    }
    for (let c = 0; c < C; c++) {
      const [mean, variance] = channelMoments(x, N, C, S, c);
      const rstd = 1 / Math.sqrt(variance + eps);
      saveMean[c] = mean;
      saveRstd[c] = rstd;
      if (updateRunning) {
        runningMean[c] = momentum * runningMean[c]! + (1 - momentum) * mean;
        runningVar[c] = momentum * runningVar[c]! + ((1 - momentum) * variance * M) / (M - 1);
      }
      const scale = (gamma ? gamma[c]! : 1) * rstd;
      const b = beta ? beta[c]! : 0;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) y[off + s] = act(activation, f32((x[off + s]! - mean) * scale + b), f32(alpha));
      }
    }
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

  batchNormBackward(x, dy, dx, N, C, S, gamma, saveMean, saveRstd, dgamma, dbeta, activation = NO_ACTIVATION, alpha = 0, y = null) {
    const fn = 'batchNormBackward';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    const M = N * S;
    need(fn, 'x', x, M * C); need(fn, 'dy', dy, M * C); need(fn, 'dx', dx, M * C); need(fn, 'gamma', gamma, C);
    need(fn, 'saveMean', saveMean, C); need(fn, 'saveRstd', saveRstd, C);
    need(fn, 'dgamma', dgamma, C); need(fn, 'dbeta', dbeta, C);
    if (C > 0 && M === 0) throw new RangeError(`${fn}: needs a value per channel (N*S = 0)`);
    if (activation !== NO_ACTIVATION) need(fn, 'y', y, M * C);
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
      if (dgamma) dgamma[c] = dxhatSum;
      if (dbeta) dbeta[c] = dsum;
      // Reads dy[i] before writing dx[i], so dx may alias dy.
      const scale = (gamma ? gamma[c]! : 1) * rstd;
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

  batchRenormForwardTrain(x, y, N, C, S, gamma, beta, runningMean, runningVar, momentum, eps, rMax, dMax,
    updateRunning, saveMean, saveRstd, saveR, saveD) {
    const fn = 'batchRenormForwardTrain';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    const M = N * S;
    need(fn, 'x', x, M * C); need(fn, 'y', y, M * C); need(fn, 'gamma', gamma, C); need(fn, 'beta', beta, C);
    need(fn, 'runningMean', runningMean, C); need(fn, 'runningVar', runningVar, C);
    need(fn, 'saveMean', saveMean, C); need(fn, 'saveRstd', saveRstd, C); need(fn, 'saveR', saveR, C);
    need(fn, 'saveD', saveD, C);
    if (!(rMax >= 1)) throw new RangeError(`${fn}: rMax must be at least 1`);
    if (!(dMax >= 0)) throw new RangeError(`${fn}: dMax must be at least 0`);
    if (C > 0 && M < (updateRunning ? 2 : 1)) {
      throw new RangeError(`${fn}: needs ${updateRunning ? 'two values' : 'a value'} per channel (N*S = ${M})`);
    }
    for (let c = 0; c < C; c++) {
      const [mean, variance] = channelMoments(x, N, C, S, c);
      const stdB = Math.sqrt(variance + eps);
      const rstd = 1 / stdB;
      // r and d from the running statistics as they were before this batch; NaN stays NaN.
      const sigma = Math.sqrt(runningVar[c]! + eps);
      const r = Math.min(Math.max(stdB / sigma, 1 / rMax), rMax);
      const d = Math.min(Math.max((mean - runningMean[c]!) / sigma, -dMax), dMax);
      saveMean[c] = mean;
      saveRstd[c] = rstd;
      saveR[c] = r;
      saveD[c] = d;
      if (updateRunning) {
        runningMean[c] = momentum * runningMean[c]! + (1 - momentum) * mean;
        runningVar[c] = momentum * runningVar[c]! + ((1 - momentum) * variance * M) / (M - 1);
      }
      const g = gamma ? gamma[c]! : 1;
      const scale = g * rstd * r;
      const offset = g * d + (beta ? beta[c]! : 0);
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) y[off + s] = (x[off + s]! - mean) * scale + offset;
      }
    }
  },

  batchRenormBackward(x, dy, dx, N, C, S, gamma, saveMean, saveRstd, saveR, saveD, dgamma, dbeta) {
    const fn = 'batchRenormBackward';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    const M = N * S;
    need(fn, 'x', x, M * C); need(fn, 'dy', dy, M * C); need(fn, 'dx', dx, M * C); need(fn, 'gamma', gamma, C);
    need(fn, 'saveMean', saveMean, C); need(fn, 'saveRstd', saveRstd, C); need(fn, 'saveR', saveR, C);
    need(fn, 'saveD', saveD, C); need(fn, 'dgamma', dgamma, C); need(fn, 'dbeta', dbeta, C);
    if (C > 0 && M === 0) throw new RangeError(`${fn}: needs a value per channel (N*S = 0)`);
    for (let c = 0; c < C; c++) {
      const mean = saveMean[c]!;
      const rstd = saveRstd[c]!;
      const r = saveR[c]!;
      // Σdy and Σdy·xhatB, xhatB = (x - mean)·rstd.
      let dsum = 0;
      let dxhatSum = 0;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) {
          dsum += dy[off + s]!;
          dxhatSum += dy[off + s]! * ((x[off + s]! - mean) * rstd);
        }
      }
      // xhat = r·xhatB + d, so Σdy·xhat = r·Σdy·xhatB + d·Σdy.
      if (dgamma) dgamma[c] = r * dxhatSum + saveD[c]! * dsum;
      if (dbeta) dbeta[c] = dsum;
      // Reads dy[i] before writing dx[i], so dx may alias dy.
      const scale = (gamma ? gamma[c]! : 1) * r * rstd;
      const dmean = dsum / M;
      const dxhatMean = dxhatSum / M;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) {
          const xhat = (x[off + s]! - mean) * rstd;
          dx[off + s] = scale * (dy[off + s]! - dmean - xhat * dxhatMean);
        }
      }
    }
  },
};

export const portableKernels: Kernels = Object.freeze(kernels);
