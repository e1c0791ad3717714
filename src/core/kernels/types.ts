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
 * - Spatial kernels (conv, pooling) take NCHW activations x[((n*C + c)*H + h)*W + w]
 *   with H and W given separately; conv weights are [F, C, KH, KW] as in PyTorch.
 */

/** Activation kinds, with the integer code the native addon uses. */
export const ACTIVATIONS = ['relu', 'leaky_relu', 'elu', 'tanh', 'sigmoid'] as const;
export type ActivationKind = (typeof ACTIVATIONS)[number];
export function activationCode(kind: ActivationKind): number {
  return ACTIVATIONS.indexOf(kind);
}
/** Activation code meaning "none" for the kernels that fuse an optional activation. */
export const NO_ACTIVATION = -1;

export interface Kernels {
  /** 'native' for the addon, 'portable' for the TypeScript kernels. */
  readonly name: 'native' | 'portable';
  /** Which matrix multiply is in use: 'openblas', 'builtin', 'direct+openblas', 'direct+builtin' or 'portable'. */
  readonly gemmBackend: string;
  /**
   * Instruction set of the hand-written native kernels (built-in sgemm, inference):
   * 'avx512', 'avx2' or 'baseline', chosen at run time; 'portable' for the TypeScript kernels.
   */
  readonly cpu: string;
  /**
   * Threads of one denseChain run: 1, or 2 where the native kernels share each run with a
   * helper thread (NORMLAB_INFER_THREADS). The bytes are the same either way.
   */
  readonly inferThreads: 1 | 2;

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

  /**
   * x[(n*C+c)*S+s] = f(x[(n*C+c)*S+s] + bias[c]) in place, where f is the
   * optional fused activation (default NO_ACTIVATION: identity; alpha as in
   * activationForward).
   */
  addBias(x: Float32Array, bias: Float32Array, N: number, C: number, S: number, activation?: number, alpha?: number): void;

  /**
   * dbias[c] = sum over n, s of dy[(n*C+c)*S+s] (overwrites dbias). With a
   * fused activation, dy is first replaced in place by dy·f'(·), read off the
   * forward output y (so dy becomes the gradient at the pre-activation).
   */
  biasGrad(dy: Float32Array, dbias: Float32Array, N: number, C: number, S: number,
    activation?: number, alpha?: number, y?: Float32Array | null): void;

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
   * With a fused activation (default NO_ACTIVATION), y = f(BN(x)) in the same pass.
   * y may alias x.
   */
  batchNormForwardTrain(
    x: Float32Array, y: Float32Array, N: number, C: number, S: number,
    gamma: Float32Array | null, beta: Float32Array | null,
    runningMean: Float32Array, runningVar: Float32Array,
    momentum: number, eps: number, updateRunning: boolean,
    saveMean: Float32Array, saveRstd: Float32Array,
    activation?: number, alpha?: number,
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
   * Batch norm backward for the training-mode forward, and batch renormalization's (r and d
   * treated as constants, as in the paper). x is the forward input, saveMean/saveRstd (and
   * saveR/saveD for renormalization, both null otherwise) what the forward saved. With
   * xhatB = (x-mean)*rstd, M = N*S, and r = 1, d = 0 without renormalization, writes (overwrites):
   *   dgamma[c] = Σ dy * xhat = r*Σ(dy*xhatB) + d*Σdy,  dbeta[c] = Σ dy     (each skipped when null)
   *   dx = gamma*r*rstd/M * (M*dy - Σdy - xhatB*Σ(dy*xhatB))
   * gamma null → 1. dx may alias dy. For the fused forward, pass the same
   * activation and its output y: dy is then the gradient at f's output and the
   * formulas above apply to dy·f'(·) (read off y).
   */
  batchNormBackward(
    x: Float32Array, dy: Float32Array, dx: Float32Array, N: number, C: number, S: number,
    gamma: Float32Array | null, saveMean: Float32Array, saveRstd: Float32Array,
    saveR: Float32Array | null, saveD: Float32Array | null,
    dgamma: Float32Array | null, dbeta: Float32Array | null,
    activation?: number, alpha?: number, y?: Float32Array | null,
  ): void;

  /**
   * The running-statistics update of batch norm (Keras convention: momentum weighs the old value),
   * for the C channels, from statistics in double precision:
   *   runningMean[c] = momentum*runningMean[c] + (1 - momentum)*mean[c]
   *   runningVar[c]  = momentum*runningVar[c]  + (1 - momentum)*variance[c]*count/(count - 1)   (count > 0)
   *   runningVar[c]  = momentum*runningVar[c]  + (1 - momentum)*variance[c]                      (count = 0)
   * count > 0: variance is the biased variance of count values (unbiased here); count = 0: it is
   * unbiased already (ghost batch norm's average over virtual batches, population statistics with
   * momentum 0). The same update batchNormForwardTrain and batchRenormForwardTrain apply.
   */
  batchNormUpdateRunning(
    runningMean: Float32Array, runningVar: Float32Array, mean: Float64Array, variance: Float64Array,
    C: number, momentum: number, count: number,
  ): void;

  /**
   * The shifted-moments pass of batch norm's statistics: for each channel c, adds
   *   Σ(x - shift[c]) to sums[2c] and Σ(x - shift[c])² to sums[2c + 1]
   * over its N*S values, in double precision (the native kernels sum each row's S values first).
   * With shift[c] one of the channel's values the sums do not cancel when |mean| >> std; the
   * population statistics accumulate them over every batch with one shift.
   */
  channelShiftedSums(x: Float32Array, N: number, C: number, S: number, shift: Float64Array, sums: Float64Array): void;

  /**
   * Batch norm backward with frozen statistics (y = gamma*(x - runningMean)*rstd + beta with
   * rstd = 1/sqrt(runningVar + eps) constants, as after freezeBatchNormAfterEpoch). With g = dy, or
   * dy*f'(y) for the fused activation (f' read off the output y, as batchNormBackward), writes (overwrites):
   *   dgamma[c] = Σ g*(x - runningMean)*rstd,  dbeta[c] = Σ g     (each skipped when null)
   *   dx = g*gamma*rstd                                            (gamma null → 1)
   * in double precision, rounded once. dx may alias dy.
   */
  batchNormBackwardFrozen(
    x: Float32Array, dy: Float32Array, dx: Float32Array, N: number, C: number, S: number,
    gamma: Float32Array | null, runningMean: Float32Array, runningVar: Float32Array, eps: number,
    dgamma: Float32Array | null, dbeta: Float32Array | null,
    activation?: number, alpha?: number, y?: Float32Array | null,
  ): void;

  /**
   * Ghost batch norm backward: the N rows are floor(N/virtualBatch) virtual batches of virtualBatch
   * rows, the last taking the remainder; virtual batch i saved its statistics at saveMean/saveRstd
   * [i*C, (i+1)*C) (and saveR/saveD for renormalization, both null otherwise). Each runs
   * batchNormBackward (with the fused activation) on its rows, and dgamma/dbeta (each skipped when null) get the sum over virtual batches, accumulated
   * in float in order. scratch holds at least 2*C floats. dx may alias dy.
   */
  batchNormBackwardGhost(
    x: Float32Array, dy: Float32Array, dx: Float32Array, N: number, C: number, S: number, virtualBatch: number,
    gamma: Float32Array | null, saveMean: Float32Array, saveRstd: Float32Array,
    saveR: Float32Array | null, saveD: Float32Array | null,
    dgamma: Float32Array | null, dbeta: Float32Array | null, scratch: Float32Array,
    activation?: number, alpha?: number, y?: Float32Array | null,
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

  /**
   * Mini-batch gather: for i < n, row i of dst [n, features] = row rows[start+i]
   * of src [*, features], and dstLabels[i] = srcLabels[rows[start+i]]. A row
   * index outside src is a RangeError.
   */
  gatherRows(
    src: Float32Array, srcLabels: Int32Array, rows: Int32Array, start: number, n: number, features: number,
    dst: Float32Array, dstLabels: Int32Array,
  ): void;

  /** out[i] = a[i] * b[i] for the first n values (dropout backward). out may alias a. */
  multiply(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;

  /**
   * Row-wise softmax of N rows of C logits, an inference model's probabilities:
   * out = exp(z − max) / Σ exp(z − max), in double precision, then rounded to float.
   * A NaN logit makes its row NaN. out may alias logits.
   */
  softmaxRows(logits: Float32Array, out: Float32Array, N: number, C: number): void;

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

  /**
   * 2-D convolution (cross-correlation, as PyTorch's conv2d; one group, no dilation), NCHW:
   *   x [N, C, H, W], weight [F, C, KH, KW], bias [F] (null → no bias), y [N, F, OH, OW] with
   *   OH = convOutputSize(H, KH, strideH, padH) = floor((H + 2*padH - KH)/strideH) + 1, OW likewise;
   *   y[n,f,oh,ow] = bias[f] + Σ_{c,kh,kw} weight[f,c,kh,kw] * x[n, c, oh*strideH - padH + kh, ow*strideW - padW + kw]
   * with x = 0 outside [0, H) x [0, W) (zero padding, padH rows above and below, padW columns left
   * and right). 'valid' is pad 0; 'same' for an odd kernel at stride 1 is pad (K-1)/2.
   * Needs KH, KW, strideH, strideW ≥ 1 and OH, OW ≥ 1 (RangeError otherwise).
   * col is caller-owned scratch of at least conv2dColSize(C, KH, KW, OH, OW) = C*KH*KW*OH*OW floats
   * (one sample's im2col matrix; the same buffer serves conv2dBackward); its contents before and
   * after a call are unspecified. y must not overlap x, weight or col. Native: a 3x3 kernel at
   * stride 1 with at least 8 channels in and out is computed as Winograd F(2x2, 3x3), in
   * scratch the addon owns (col unused); it rounds differently from im2col, within the same
   * order of error relative to the largest output (kernels-conv.test.ts).
   */
  conv2dForward(
    x: Float32Array, weight: Float32Array, bias: Float32Array | null, y: Float32Array,
    N: number, C: number, H: number, W: number, F: number, KH: number, KW: number,
    strideH: number, strideW: number, padH: number, padW: number, col: Float32Array,
  ): void;

  /**
   * Backward of conv2dForward (same sizes; x and weight are the forward's) for the upstream
   * gradient dy [N, F, OH, OW]. Writes (overwrites):
   *   dweight[f,c,kh,kw] = Σ_{n,oh,ow} dy[n,f,oh,ow] * x[n, c, oh*strideH - padH + kh, ow*strideW - padW + kw]
   *   dbias[f]           = Σ_{n,oh,ow} dy[n,f,oh,ow]                                   (skipped when null)
   *   dx[n,c,h,w]        = Σ dy[n,f,oh,ow] * weight[f,c,kh,kw] over the (f, oh, ow, kh, kw) with
   *                        oh*strideH - padH + kh = h and ow*strideW - padW + kw = w   (skipped when null,
   *                        e.g. for a first layer; input positions no window covers get 0)
   * col is scratch as for conv2dForward (the forward's contents are not needed). No output may
   * overlap an input, another output or col.
   */
  conv2dBackward(
    x: Float32Array, weight: Float32Array, dy: Float32Array,
    dx: Float32Array | null, dweight: Float32Array, dbias: Float32Array | null,
    N: number, C: number, H: number, W: number, F: number, KH: number, KW: number,
    strideH: number, strideW: number, padH: number, padW: number, col: Float32Array,
  ): void;

  /**
   * The inference form of a dense layer's weight [out, in]: packed into panels of DENSE_PANEL
   * outputs, packed[(p*in + k)*DENSE_PANEL + j] = weight[(p*DENSE_PANEL + j)*in + k], zero for
   * outputs ≥ out; packed holds at least packedDenseSize(out, in) floats. Done once per model load.
   */
  packDense(weight: Float32Array, out: number, inputs: number, packed: Float32Array): void;

  /**
   * n zeroed floats for packDense's output (and other long-lived kernel operands): native, a view
   * whose data starts on a 64-byte boundary, so vector loads never straddle cache lines; portable,
   * a plain Float32Array.
   */
  alignedFloat32Array(n: number): Float32Array;

  /**
   * Inference dense layer on packed weights: y[r*out + o] = f(Σ_k x[r*in + k]·weight[o*in + k] + bias[o])
   * for the N rows of x (bias null → 0; f the optional activation, as addBias). Batch invariance:
   * each output is one sum over k = 0 .. in-1 in that order (native: a single fused multiply-add
   * chain in float; portable: double, rounded once), so a row's outputs are the same bytes
   * whatever N is and wherever the row sits in x. y must not overlap x.
   */
  denseInfer(x: Float32Array, packed: Float32Array, bias: Float32Array | null, y: Float32Array,
    N: number, inputs: number, out: number, activation?: number, alpha?: number): void;

  /**
   * A run of denseInfer layers compiled once (at model load): run(x, N, y) is denseInfer through
   * every layer in turn (layer i's output is layer i+1's input; the last writes y [N, out of the
   * last layer]), the same bytes as the separate calls, in one call into the kernels. The chain
   * keeps the layers' arrays and its own scratch for the rows between layers (grown to the largest
   * N seen). y must not overlap x.
   */
  denseChain(layers: readonly DenseChainLayer[]): DenseChain;

  /**
   * The inference form of a conv2d weight [F, C, KH, KW] for conv2dInfer at these kernel sizes
   * and strides, made once per model load: native, for the kernels conv2dForward computes as
   * Winograd F(2x2, 3x3), their transform (16·F·C floats); otherwise, and in the portable
   * kernels, a copy of the weight.
   */
  packConv(weight: Float32Array, F: number, C: number, KH: number, KW: number, strideH: number, strideW: number): Float32Array;

  /**
   * Inference conv2d: f(conv2dForward(...)) (f the optional activation, as addBias) on `weight` =
   * packConv's output for the same sizes. Batch invariance: every value of y is computed the same
   * way whatever N is and wherever its sample sits (native: the built-in sgemm, never OpenBLAS,
   * whose kernels and threads may vary; im2col with one multiply of the same shape per sample, or
   * Winograd over chunks of samples, where each gemm element is one sum over C whatever the
   * chunk), so a sample's output is the same bytes in any batch. col is scratch as for
   * conv2dForward. y must not overlap x, weight or col.
   */
  conv2dInfer(
    x: Float32Array, weight: Float32Array, bias: Float32Array | null, y: Float32Array,
    N: number, C: number, H: number, W: number, F: number, KH: number, KW: number,
    strideH: number, strideW: number, padH: number, padW: number, col: Float32Array,
    activation?: number, alpha?: number,
  ): void;

  /**
   * Max pooling over size x size windows at `stride`, no padding, NCHW: x [N, C, H, W] →
   * y [N, C, OH, OW], OH = poolOutputSize(H, size, stride) = floor((H - size)/stride) + 1, OW
   * likewise (needs size, stride ≥ 1 and size ≤ H, W; a layer's default stride is size).
   *   y[n,c,oh,ow] = max over 0 ≤ i, j < size of x[n, c, oh*stride + i, ow*stride + j]
   * argmax (same length and layout as y) receives the index of that maximum within its
   * input plane, h*W + w (PyTorch's return_indices). As in PyTorch, a tie goes to the first in
   * row-major window order, and a NaN in the window wins (y is NaN; argmax is the last NaN's).
   * y must not overlap x.
   */
  maxPool2dForward(
    x: Float32Array, y: Float32Array, argmax: Int32Array,
    N: number, C: number, H: number, W: number, size: number, stride: number,
  ): void;

  /**
   * Backward of maxPool2dForward: dx = 0, then dx[n,c][argmax[i]] += dy[i] for every output i
   * of plane (n, c) (so overlapping windows, stride < size, accumulate). Overwrites dx. An argmax
   * entry outside [0, H*W) is a RangeError.
   */
  maxPool2dBackward(
    dy: Float32Array, argmax: Int32Array, dx: Float32Array,
    N: number, C: number, H: number, W: number, size: number, stride: number,
  ): void;

  /**
   * Average pooling, same geometry as maxPool2dForward (windows always inside the input):
   *   y[n,c,oh,ow] = Σ_{0 ≤ i, j < size} x[n, c, oh*stride + i, ow*stride + j] / size²
   * y must not overlap x.
   */
  avgPool2dForward(
    x: Float32Array, y: Float32Array, N: number, C: number, H: number, W: number, size: number, stride: number,
  ): void;

  /**
   * Backward of avgPool2dForward: dx = 0, then every dy[n,c,oh,ow]/size² is added to the
   * size x size input positions of its window. Overwrites dx.
   */
  avgPool2dBackward(
    dy: Float32Array, dx: Float32Array, N: number, C: number, H: number, W: number, size: number, stride: number,
  ): void;

  /**
   * Global average pooling, (N, C, S) → [N, C] with S = H*W: y[n*C + c] = Σ_s x[(n*C + c)*S + s] / S.
   * Needs S ≥ 1 (when N*C > 0).
   */
  globalAvgPoolForward(x: Float32Array, y: Float32Array, N: number, C: number, S: number): void;

  /** Backward of globalAvgPoolForward: dx[(n*C + c)*S + s] = dy[n*C + c] / S (overwrites dx). */
  globalAvgPoolBackward(dy: Float32Array, dx: Float32Array, N: number, C: number, S: number): void;

  /**
   * Batch renormalization (Ioffe 2017), training mode. Per channel c over the N*S values, with
   * the running statistics as they are on entry:
   *   mean, var = batch mean and biased variance (as batchNormForwardTrain), rstd = 1/sqrt(var + eps)
   *   sigma = sqrt(runningVar + eps)
   *   r = clip(sqrt(var + eps)/sigma, 1/rMax, rMax),  d = clip((mean - runningMean)/sigma, -dMax, dMax)
   *   xhat = (x - mean)*rstd*r + d
   *   y = gamma[c]*xhat + beta[c]                     (gamma null → 1, beta null → 0)
   * Writes saveMean = mean, saveRstd = rstd, saveR = r, saveD = d for the backward pass; then (after
   * r and d are computed) updates the running statistics exactly as batchNormForwardTrain does
   * (Keras momentum, unbiased variance), unless updateRunning is false.
   * Needs rMax ≥ 1 and dMax ≥ 0; rMax = 1, dMax = 0 is plain batch norm. With a fused activation
   * (default NO_ACTIVATION), y = f(...) in the same pass, as batchNormForwardTrain. y may alias x.
   * The backward is batchNormBackward with saveR and saveD.
   */
  batchRenormForwardTrain(
    x: Float32Array, y: Float32Array, N: number, C: number, S: number,
    gamma: Float32Array | null, beta: Float32Array | null,
    runningMean: Float32Array, runningVar: Float32Array,
    momentum: number, eps: number, rMax: number, dMax: number, updateRunning: boolean,
    saveMean: Float32Array, saveRstd: Float32Array, saveR: Float32Array, saveD: Float32Array,
    activation?: number, alpha?: number,
  ): void;

  /*
   * Recurrent cells, one time step over N rows of H units (native/recurrent.cc). The projections
   * arrive precomputed: xg = the input term W_ih·x_t (+ bias, or batch-normalized) and hg = the
   * hidden term W_hh·h_{t-1} (+ bias, or batch-normalized), each [N, G·H] with the G gate blocks
   * of a row in PyTorch's order (LSTM i, f, g, o; GRU r, z, n), gate k of unit j at n*G*H + k*H + j.
   * Elementwise: a row's results never depend on the other rows. A null dh or dhNext (or dcNext)
   * is zero.
   */

  /**
   * LSTM gates and cell: with a_k = xg_k + hg_k, gates = (σ(a_i), σ(a_f), tanh(a_g), σ(a_o)) and
   * c = f·cPrev + i·g ([N, H]). gates may alias xg or hg.
   */
  lstmCellForward(xg: Float32Array, hg: Float32Array, cPrev: Float32Array, gates: Float32Array, c: Float32Array,
    N: number, H: number): void;

  /** LSTM output h = o·tanh(z), z the cell c (or its batch-normalized form), from gates of lstmCellForward. */
  lstmOutputForward(gates: Float32Array, z: Float32Array, h: Float32Array, N: number, H: number): void;

  /**
   * Backward of lstmOutputForward for d = dh + dhNext (the gradient at h_t from the layer above
   * and from step t+1): writes the o block of dgates, d·tanh(z)·o(1−o), and dz = d·o·(1 − tanh²z).
   */
  lstmOutputBackward(gates: Float32Array, z: Float32Array, dh: Float32Array | null, dhNext: Float32Array | null,
    dz: Float32Array, dgates: Float32Array, N: number, H: number): void;

  /**
   * Backward of lstmCellForward for dc = dz + dcNext (dcNext the gradient at c_t from step t+1):
   * writes the i, f, g blocks of dgates (gradients at the pre-activations a_i, a_f, a_g) and
   * dcPrev = dc·f. dcPrev may alias dcNext.
   */
  lstmCellBackward(gates: Float32Array, cPrev: Float32Array, dz: Float32Array, dcNext: Float32Array | null,
    dgates: Float32Array, dcPrev: Float32Array, N: number, H: number): void;

  /**
   * GRU step, PyTorch's nn.GRU: r = σ(xg_r + hg_r), z = σ(xg_z + hg_z), n = tanh(xg_n + r·hg_n),
   * h = (1 − z)·n + z·hPrev; gates = (r, z, n). gates may alias xg (not hg, whose n block the
   * backward needs).
   */
  gruCellForward(xg: Float32Array, hg: Float32Array, hPrev: Float32Array, gates: Float32Array, h: Float32Array,
    N: number, H: number): void;

  /**
   * Backward of gruCellForward for d = dh + dhNext: writes dxg and dhg (gradients at the input
   * and hidden terms; they differ only in the n block, dhg_n = dxg_n·r) and the direct part of
   * the gradient at hPrev, dhPrev = d·z (the caller adds dhg·W_hh). dhPrev may alias dhNext.
   */
  gruCellBackward(gates: Float32Array, hg: Float32Array, hPrev: Float32Array, dh: Float32Array | null,
    dhNext: Float32Array | null, dxg: Float32Array, dhg: Float32Array, dhPrev: Float32Array, N: number, H: number): void;

  /** Elman step h = f(xg + hg), f tanh or relu (activation codes). h may alias xg or hg. */
  rnnCellForward(xg: Float32Array, hg: Float32Array, h: Float32Array, N: number, H: number, activation: number): void;

  /** Backward of rnnCellForward: da = (dh + dhNext)·f'(read off h). da may alias dhNext. */
  rnnCellBackward(h: Float32Array, dh: Float32Array | null, dhNext: Float32Array | null, da: Float32Array,
    N: number, H: number, activation: number): void;
}

/**
 * Output size of a convolution along one axis: floor((size + 2*pad - kernel)/stride) + 1, or 0
 * when the kernel does not fit the padded input (the kernels reject that).
 */
export function convOutputSize(size: number, kernel: number, stride: number, pad: number): number {
  const span = size + 2 * pad - kernel;
  return span < 0 ? 0 : Math.floor(span / stride) + 1;
}

/** Output size of pooling along one axis (no padding): floor((size - window)/stride) + 1, or 0. */
export function poolOutputSize(size: number, window: number, stride: number): number {
  return convOutputSize(size, window, stride, 0);
}

/** Floats the `col` scratch of conv2dForward/conv2dBackward needs: one sample's im2col matrix. */
export function conv2dColSize(C: number, KH: number, KW: number, OH: number, OW: number): number {
  return C * KH * KW * OH * OW;
}

/** One layer of Kernels.denseChain: denseInfer's operands (packed by packDense). */
export interface DenseChainLayer {
  packed: Float32Array;
  bias: Float32Array | null;
  in: number;
  out: number;
  /** An activation code (activationCode) or NO_ACTIVATION. */
  activation: number;
  alpha: number;
}

/** A compiled Kernels.denseChain. */
export interface DenseChain {
  run(x: Float32Array, N: number, y: Float32Array): void;
}

/** Outputs per panel of packDense. */
export const DENSE_PANEL = 16;

/** Floats packDense writes for an [out, in] weight: whole panels of DENSE_PANEL outputs. */
export function packedDenseSize(out: number, inputs: number): number {
  return Math.ceil(out / DENSE_PANEL) * DENSE_PANEL * inputs;
}
