/**
 * The one interface every compute kernel goes through. Two implementations:
 * the native addon (native/, loaded by ./native.ts) and the portable
 * TypeScript twin (./portable.ts). Both work in place on Float32Array views
 * owned by the caller; nothing is copied across the boundary.
 *
 * Layout conventions (all row-major):
 * - Activations of a dense layer are [N, C]. Activations of a conv layer are
 *   [N, C, S] with S = H*W. Channel-wise kernels take (N, C, S) and index
 *   x[(n*C + c)*S + s]; a dense layer passes S = 1.
 * - Dense weights are [out, in] as in PyTorch.
 */

/** Activation kinds, with the integer code the native addon uses. */
export const ACTIVATIONS = ['relu', 'leaky_relu', 'elu', 'tanh', 'sigmoid'] as const;
export type ActivationKind = (typeof ACTIVATIONS)[number];
export function activationCode(kind: ActivationKind): number {
  return ACTIVATIONS.indexOf(kind);
}

export interface Kernels {
  /** 'native' for the addon, 'portable' for the TypeScript kernels. */
  readonly name: 'native' | 'portable';
  /** Which matrix multiply is in use: 'openblas', 'builtin' or 'portable'. */
  readonly gemmBackend: string;

  /**
   * C = alpha * op(A) * op(B) + beta * C, with op(A) of shape [M, K] and
   * op(B) of shape [K, N]. A is stored [M, K] (transA false) or [K, M]
   * (transA true); B is stored [K, N] or [N, K]. C is [M, N]. beta = 0 means
   * C is overwritten (its old contents, even NaN, are ignored).
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
  ): void;

  /** x[(n*C+c)*S+s] += bias[c], in place. */
  addBias(x: Float32Array, bias: Float32Array, N: number, C: number, S: number): void;

  /** dbias[c] = sum over n, s of dy[(n*C+c)*S+s] (overwrites dbias). */
  biasGrad(dy: Float32Array, dbias: Float32Array, N: number, C: number, S: number): void;

  /**
   * Batch norm, training mode. Per channel c over the N*S values:
   *   mean = Σx / (N*S), var = Σ(x-mean)² / (N*S)   (biased)
   *   rstd = 1 / sqrt(var + eps)
   *   y = gamma[c] * (x - mean) * rstd + beta[c]    (gamma null → 1, beta null → 0)
   * Writes saveMean[c] = mean and saveRstd[c] = rstd for the backward pass.
   * Running statistics (Keras convention, momentum = weight of the old value):
   *   runningMean = momentum*runningMean + (1-momentum)*mean
   *   runningVar  = momentum*runningVar  + (1-momentum)*var*(N*S)/(N*S-1)  (unbiased)
   * When updateRunning is false the running statistics are left untouched.
   * y may alias x.
   */
  batchNormForwardTrain(
    x: Float32Array, y: Float32Array, N: number, C: number, S: number,
    gamma: Float32Array | null, beta: Float32Array | null,
    runningMean: Float32Array, runningVar: Float32Array,
    momentum: number, eps: number, updateRunning: boolean,
    saveMean: Float32Array, saveRstd: Float32Array,
  ): void;

  /**
   * Batch norm, inference mode: y = gamma*(x - runningMean)/sqrt(runningVar + eps) + beta.
   * y may alias x.
   */
  batchNormForwardInfer(
    x: Float32Array, y: Float32Array, N: number, C: number, S: number,
    gamma: Float32Array | null, beta: Float32Array | null,
    runningMean: Float32Array, runningVar: Float32Array, eps: number,
  ): void;

  /**
   * Batch norm backward for the training-mode forward. x is the forward input,
   * saveMean/saveRstd what the forward saved. Writes (overwrites):
   *   dgamma[c] = Σ dy * xhat,  dbeta[c] = Σ dy          (each skipped when null)
   *   dx = gamma*rstd/M * (M*dy - Σdy - xhat*Σ(dy*xhat)),  M = N*S, xhat = (x-mean)*rstd
   * gamma null → 1. dx may alias dy.
   */
  batchNormBackward(
    x: Float32Array, dy: Float32Array, dx: Float32Array, N: number, C: number, S: number,
    gamma: Float32Array | null, saveMean: Float32Array, saveRstd: Float32Array,
    dgamma: Float32Array | null, dbeta: Float32Array | null,
  ): void;

  /**
   * y = f(x) elementwise over the first n values. alpha is the negative slope
   * of leaky_relu and the alpha of elu (ignored by the others). y may alias x.
   */
  activationForward(kind: number, x: Float32Array, y: Float32Array, n: number, alpha: number): void;

  /**
   * dx = dy * f'(x), computed from the forward input x and output y (each
   * kernel uses whichever is exact). dx may alias dy. At x = 0 relu and
   * leaky_relu use the derivative of the x < 0 side (as PyTorch does).
   */
  activationBackward(
    kind: number, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array,
    n: number, alpha: number,
  ): void;

  /**
   * Inverted dropout over the first n values. For each i in order, one draw
   * u = (nextUint32(rngState) >>> 8) * 2^-24 from the xoshiro128** state in
   * rngState (advanced in place, see ../rng.ts); mask[i] = u < rate ? 0 : 1/(1-rate);
   * y[i] = x[i] * mask[i]. y may alias x.
   */
  dropoutForward(
    x: Float32Array, y: Float32Array, mask: Float32Array, n: number, rate: number,
    rngState: Uint32Array,
  ): void;

  /** out[i] = a[i] * b[i] for the first n values (dropout backward). out may alias a. */
  multiply(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;

  /**
   * Softmax cross-entropy over N rows of C logits with integer labels.
   * Writes probs [N, C] (softmax, max-subtracted) and returns the mean loss
   * over the rows (computed in double precision). Also writes, when
   * `correct` is given, correct[0] = number of rows whose arg-max equals the label.
   */
  softmaxCrossEntropy(
    logits: Float32Array, labels: Int32Array, probs: Float32Array, N: number, C: number,
    correct: Int32Array | null,
  ): number;

  /** dlogits = (probs - onehot(labels)) / N. dlogits may alias probs. */
  softmaxCrossEntropyBackward(
    probs: Float32Array, labels: Int32Array, dlogits: Float32Array, N: number, C: number,
  ): void;

  /**
   * SGD step, PyTorch semantics (dampening 0):
   *   g = grad + weightDecay*param
   *   if momentum > 0: velocity = momentum*velocity + g; g = nesterov ? g + momentum*velocity : velocity
   *   param -= lr * g
   * velocity is only read/written when momentum > 0.
   */
  sgdStep(
    param: Float32Array, grad: Float32Array, velocity: Float32Array, n: number,
    lr: number, momentum: number, nesterov: boolean, weightDecay: number,
  ): void;

  /**
   * Adam step, PyTorch semantics (L2 weight decay added to the gradient; step counts from 1):
   *   g = grad + weightDecay*param
   *   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
   *   bc1 = 1 - beta1^step;  bc2 = 1 - beta2^step
   *   param -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)
   */
  adamStep(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number,
  ): void;
}
