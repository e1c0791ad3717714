/**
 * The portable twin of the native kernels: the same contract (./types.ts) in
 * plain TypeScript loops. Arithmetic runs in doubles and rounds when stored
 * into the Float32Arrays; scalar parameters that the addon converts to float
 * are rounded the same way here. The two agree to float32 rounding, and bit
 * for bit on dropout masks. Argument checks mirror native/addon.cc so a
 * mistake fails the same way whichever kernels are loaded.
 */
import { nextUint32 } from '../rng.js';
import { activationCode, type Kernels } from './types.js';

const RELU = activationCode('relu');
const LEAKY_RELU = activationCode('leaky_relu');
const ELU = activationCode('elu');
const TANH = activationCode('tanh');
const SIGMOID = activationCode('sigmoid');

const f32 = Math.fround;

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

const kernels: Kernels = {
  name: 'portable',
  gemmBackend: 'portable',

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

  addBias(x, bias, N, C, S) {
    size('addBias', 'N', N); size('addBias', 'C', C); size('addBias', 'S', S);
    need('addBias', 'x', x, N * C * S); need('addBias', 'bias', bias, C);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const off = (n * C + c) * S;
        const b = bias[c]!;
        for (let s = 0; s < S; s++) x[off + s]! += b;
      }
    }
  },

  biasGrad(dy, dbias, N, C, S) {
    size('biasGrad', 'N', N); size('biasGrad', 'C', C); size('biasGrad', 'S', S);
    need('biasGrad', 'dy', dy, N * C * S); need('biasGrad', 'dbias', dbias, C);
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
    saveMean, saveRstd) {
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
      // Shifted sums, as in the addon: no cancellation when |mean| >> std.
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
      const mean = shift + sum / M;
      const variance = Math.max(0, (sumsq - (sum * sum) / M) / M);
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
        for (let s = 0; s < S; s++) y[off + s] = (x[off + s]! - mean) * scale + b;
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

  batchNormBackward(x, dy, dx, N, C, S, gamma, saveMean, saveRstd, dgamma, dbeta) {
    const fn = 'batchNormBackward';
    size(fn, 'N', N); size(fn, 'C', C); size(fn, 'S', S);
    const M = N * S;
    need(fn, 'x', x, M * C); need(fn, 'dy', dy, M * C); need(fn, 'dx', dx, M * C); need(fn, 'gamma', gamma, C);
    need(fn, 'saveMean', saveMean, C); need(fn, 'saveRstd', saveRstd, C);
    need(fn, 'dgamma', dgamma, C); need(fn, 'dbeta', dbeta, C);
    if (C > 0 && M === 0) throw new RangeError(`${fn}: needs a value per channel (N*S = 0)`);
    for (let c = 0; c < C; c++) {
      const mean = saveMean[c]!;
      const rstd = saveRstd[c]!;
      let dsum = 0;
      let dxhatSum = 0;
      for (let n = 0; n < N; n++) {
        const off = (n * C + c) * S;
        for (let s = 0; s < S; s++) {
          dsum += dy[off + s]!;
          dxhatSum += dy[off + s]! * ((x[off + s]! - mean) * rstd);
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
          dx[off + s] = scale * (dy[off + s]! - dmean - xhat * dxhatMean);
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
};

export const portableKernels: Kernels = Object.freeze(kernels);
