/**
 * The trainable sequential model. Every buffer (activations, gradients,
 * batch-norm caches) is allocated once for the largest batch the job uses;
 * forward and backward then run without allocating.
 */
import { activationCode, NO_ACTIVATION, type Kernels } from './kernels/types.js';
import type { LayerInfo } from './layers.js';
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
    this.weight = { name: 'weight', value: new Float32Array(info.out * info.in), grad: new Float32Array(info.out * info.in), shape: [info.out, info.in] };
    this.bias = info.bias ? { name: 'bias', value: new Float32Array(info.out), grad: new Float32Array(info.out), shape: [info.out] } : null;
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

export class BatchNorm implements RuntimeLayer {
  readonly outputSize: number;
  readonly params: Param[];
  readonly gamma: Param | null;
  readonly beta: Param | null;
  readonly runningMean: Float32Array;
  readonly runningVar: Float32Array;
  /** Statistics of the last training batch (for the epoch event and the backward pass). */
  readonly saveMean: Float32Array;
  readonly saveRstd: Float32Array;
  /** False once statistics are frozen: training then leaves the running averages alone. */
  updateRunning = true;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private x: Float32Array | null = null;

  constructor(readonly info: Extract<LayerInfo, { type: 'batchnorm' }>, private readonly k: Kernels, maxBatch: number,
    readonly cfg: BatchNormSpec, private readonly act: Fused) {
    const c = info.channels;
    this.outputSize = c;
    this.gamma = cfg.scale ? { name: 'gamma', value: new Float32Array(c).fill(1), grad: new Float32Array(c), shape: [c] } : null;
    this.beta = cfg.center ? { name: 'beta', value: new Float32Array(c), grad: new Float32Array(c), shape: [c] } : null;
    this.params = [this.gamma, this.beta].filter((p): p is Param => p !== null);
    this.runningMean = new Float32Array(c);
    this.runningVar = new Float32Array(c).fill(1);
    this.saveMean = new Float32Array(c);
    this.saveRstd = new Float32Array(c);
    this.y = new Float32Array(maxBatch * c);
    this.dx = new Float32Array(maxBatch * c);
  }

  forward(x: Float32Array, n: number, training: boolean): Float32Array {
    this.x = x;
    const c = this.info.channels;
    const gamma = this.gamma?.value ?? null;
    const beta = this.beta?.value ?? null;
    if (training) {
      this.k.batchNormForwardTrain(x, this.y, n, c, 1, gamma, beta, this.runningMean, this.runningVar,
        this.cfg.momentum, this.cfg.epsilon, this.updateRunning, this.saveMean, this.saveRstd, this.act.code, this.act.alpha);
    } else {
      this.k.batchNormForwardInfer(x, this.y, n, c, 1, gamma, beta, this.runningMean, this.runningVar, this.cfg.epsilon);
      if (this.act !== NONE) this.k.activationForward(this.act.code, this.y, this.y, n * c, this.act.alpha);
    }
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    this.k.batchNormBackward(this.x!, dy, this.dx, n, this.info.channels, 1, this.gamma?.value ?? null,
      this.saveMean, this.saveRstd, this.gamma?.grad ?? null, this.beta?.grad ?? null, this.act.code, this.act.alpha, this.y);
    return this.dx;
  }
}

class Activation implements RuntimeLayer {
  readonly params: Param[] = [];
  private readonly code: number;
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private x: Float32Array | null = null;
  private n = 0;

  constructor(readonly info: Extract<LayerInfo, { alpha: number }>, private readonly k: Kernels, maxBatch: number, readonly outputSize: number) {
    this.code = activationCode(info.type);
    this.y = new Float32Array(maxBatch * outputSize);
    this.dx = new Float32Array(maxBatch * outputSize);
  }

  forward(x: Float32Array, n: number): Float32Array {
    this.x = x;
    this.n = n;
    this.k.activationForward(this.code, x, this.y, n * this.outputSize, this.info.alpha);
    return this.y;
  }

  backward(dy: Float32Array, n: number): Float32Array {
    this.k.activationBackward(this.code, this.x!, this.y, dy, this.dx, n * this.outputSize, this.info.alpha);
    return this.dx;
  }
}

/** An activation computed by the layer before it: passes values and gradients through. */
class FusedAway implements RuntimeLayer {
  readonly params: Param[] = [];
  constructor(readonly info: LayerInfo, readonly outputSize: number) {}
  forward(x: Float32Array): Float32Array {
    return x;
  }
  backward(dy: Float32Array): Float32Array {
    return dy;
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

  /** fuse: false keeps every activation a layer of its own (tests compare the two forms). */
  constructor(readonly infos: LayerInfo[], readonly kernels: Kernels, readonly maxBatch: number,
    readonly inputSize: number, bn: BatchNormSpec, rng: RngState, { fuse = true } = {}) {
    let width = inputSize;
    // The first layer with parameters needs no input gradient; nor does anything before it.
    const firstTrainable = infos.findIndex((l) => l.type === 'dense' || l.type === 'batchnorm');
    // An activation right after batch norm, or after a dense layer with a bias,
    // runs inside that layer's kernels (one pass fewer over the activations).
    const fusedInto = (i: number): Fused => {
      const next = infos[i + 1];
      return fuse && next && 'alpha' in next ? { code: activationCode(next.type), alpha: next.alpha } : NONE;
    };
    this.layers = [];
    infos.forEach((info, i) => {
      let layer: RuntimeLayer;
      const prev = this.layers[i - 1];
      switch (info.type) {
        case 'dense': layer = new Dense(info, kernels, maxBatch, i > firstTrainable, info.bias ? fusedInto(i) : NONE); break;
        case 'batchnorm': layer = new BatchNorm(info, kernels, maxBatch, bn, fusedInto(i)); break;
        case 'dropout': layer = new Dropout(info, kernels, maxBatch, width, rng); break;
        default:
          layer = fuse && (prev instanceof BatchNorm || (prev instanceof Dense && prev.bias))
            ? new FusedAway(info, width)
            : new Activation(info, kernels, maxBatch, width);
      }
      width = layer.outputSize;
      this.layers.push(layer);
    });
    this.params = this.layers.flatMap((l) => l.params);
  }

  get outputSize(): number {
    return this.layers[this.layers.length - 1]!.outputSize;
  }

  batchNorms(): BatchNorm[] {
    return this.layers.filter((l): l is BatchNorm => l instanceof BatchNorm);
  }

  /** Forward through layers [0, end); returns the last output. */
  forward(x: Float32Array, n: number, training: boolean, end = this.layers.length): Float32Array {
    let h = x;
    for (let i = 0; i < end; i++) h = this.layers[i]!.forward(h, n, training);
    return h;
  }

  backward(dlogits: Float32Array, n: number): void {
    let g: Float32Array | null = dlogits;
    for (let i = this.layers.length - 1; i >= 0 && g; i--) g = this.layers[i]!.backward(g, n);
  }

  /** Initialize dense weights from the seeded PRNG (biases 0, γ 1, β 0 already). */
  initialize(init: InitSpec, rng: RngState): void {
    for (const layer of this.layers) {
      if (!(layer instanceof Dense)) continue;
      const { in: fanIn, out: fanOut } = layer.info;
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
