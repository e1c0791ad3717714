/**
 * The trainable sequential model. Every buffer (activations, gradients,
 * batch-norm caches, im2col scratch) is allocated once for the largest batch
 * the job uses; forward and backward then run without allocating (ghost batch
 * norm aside, which takes sub-array views per virtual batch). What each layer
 * does is its module's (./layers/); this file only wires them together.
 */
import { BatchNorm } from './layers/batchnorm.js';
import { fusedActivation, layerTensors, moduleOf, scratchSize, type LayerInfo } from './layers/index.js';
import {
  isNormalizing, type BatchNormClock, type NormalizingLayer, type NormStatistics, type Param, type RuntimeLayer, type StateTensor,
  type TensorSpec,
} from './layers/types.js';
import type { Kernels } from './kernels/types.js';
import { nextFloat, nextNormal, type RngState } from './rng.js';
import type { BatchNormSpec, InitSpec } from './spec.js';

export { BatchNorm };
export type { BatchNormClock, NormalizingLayer, Param, RuntimeLayer };

function tensorOf(t: TensorSpec): Float32Array {
  return new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(t.fill ?? 0);
}

/** he/glorot/lecun/normal over a weight whose shape is [out, in, …kernel]. */
function initializeFan(w: Float32Array, shape: number[], init: InitSpec, rng: RngState): void {
  const [out, inputs, ...kernel] = shape as [number, number, ...number[]];
  const area = kernel.reduce((a, b) => a * b, 1);
  const fanIn = inputs * area;
  const fanOut = out * area;
  if (init === 'glorot') {
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    for (let i = 0; i < w.length; i++) w[i] = (2 * nextFloat(rng) - 1) * limit;
  } else {
    const std = init === 'he' ? Math.sqrt(2 / fanIn) : init === 'lecun' ? Math.sqrt(1 / fanIn) : init.normal.std;
    for (let i = 0; i < w.length; i++) w[i] = nextNormal(rng) * std;
  }
}

export class Sequential {
  readonly layers: RuntimeLayer[];
  readonly params: Param[];
  /** Shared by the batch-norm layers; part of a checkpoint. */
  readonly batchNormClock: BatchNormClock = { updates: 0 };
  private readonly norms: NormalizingLayer[];

  /** fuse: false keeps every activation a layer of its own (tests compare the two forms). */
  constructor(readonly infos: LayerInfo[], readonly kernels: Kernels, readonly maxBatch: number,
    readonly inputSize: number, bn: BatchNormSpec, rng: RngState, { fuse = true } = {}) {
    let width = inputSize;
    const tensors = infos.map((l) => layerTensors(l, bn));
    // The first layer with tensors needs no input gradient; nor does anything before it.
    const firstTrainable = tensors.findIndex((t) => t.params.length + t.state.length > 0);
    // One scratch buffer serves every layer (its contents never outlive a call).
    const scratch = new Float32Array(scratchSize(infos));
    this.layers = infos.map((info, i) => {
      const layer = moduleOf(info.type).build(info, {
        kernels, maxBatch, inputSize: width, needsInputGrad: i > firstTrainable, bn, clock: this.batchNormClock, rng, scratch,
        fused: fusedActivation(infos, i, bn, fuse),
        fusedIntoPrevious: i > 0 && fusedActivation(infos, i - 1, bn, fuse) !== null,
        params: tensors[i]!.params.map((t) => {
          const value = tensorOf(t);
          return { name: t.name, shape: t.shape, value, grad: new Float32Array(value.length), init: t.init };
        }),
        state: tensors[i]!.state.map((t) => ({ name: t.name, shape: t.shape, value: tensorOf(t) })),
      });
      width = layer.outputSize;
      return layer;
    });
    this.params = this.layers.flatMap((l) => l.params);
    this.norms = this.layers.filter(isNormalizing);
  }

  get outputSize(): number {
    return this.layers[this.layers.length - 1]!.outputSize;
  }

  /** The layers with batch statistics (batchnorm, and any layer with normalization inside). */
  normalizers(): NormalizingLayer[] {
    return this.norms;
  }

  /** Every set of batch-norm statistics, in layer order. */
  normStatistics(): NormStatistics[] {
    return this.norms.flatMap((l) => l.statistics());
  }

  /** The batchnorm layers. */
  batchNorms(): BatchNorm[] {
    return this.norms.filter((l): l is BatchNorm => l instanceof BatchNorm);
  }

  /** Forward through layers [0, end); returns the last output. */
  forward(x: Float32Array, n: number, training: boolean, end = this.layers.length): Float32Array {
    if (training && this.norms.length > 0 && !this.norms[0]!.frozen) this.batchNormClock.updates++; // all freeze together
    let h = x;
    for (let i = 0; i < end; i++) h = this.layers[i]!.forward(h, n, training);
    return h;
  }

  backward(dlogits: Float32Array, n: number): void {
    let g: Float32Array | null = dlogits;
    for (let i = this.layers.length - 1; i >= 0 && g; i--) g = this.layers[i]!.backward(g, n);
  }

  /** Initialize the weights from the seeded PRNG, layer by layer (biases 0, γ 1, β 0 already). */
  initialize(init: InitSpec, rng: RngState): void {
    for (const p of this.params) {
      if (p.init === 'fan') initializeFan(p.value, p.shape, init, rng);
      else if (p.init) p.init(p.value, rng, init);
    }
  }

  /**
   * Forward in training mode for batch norm (batch statistics, running
   * statistics untouched) and inference mode for everything else (no
   * dropout): the "batch" side of the train/inference gap.
   */
  forwardBatchStatistics(x: Float32Array, n: number): Float32Array {
    let h = x;
    for (const layer of this.layers) h = isNormalizing(layer) ? layer.forwardBatchStatistics(h, n) : layer.forward(h, n, false);
    return h;
  }

  /** Switch every normalizing layer to its frozen running statistics, in training too. */
  freezeBatchNorm(): void {
    for (const l of this.norms) l.frozen = true;
  }

  /** Tensors by safetensors name: every layer's parameters, then its state (batch-norm running statistics). */
  namedTensors(): Array<{ name: string; value: Float32Array; shape: number[] }> {
    const out: Array<{ name: string; value: Float32Array; shape: number[] }> = [];
    this.layers.forEach((layer, i) => {
      for (const t of [...layer.params, ...layer.state] as Array<Param | StateTensor>) {
        out.push({ name: `layers.${i}.${t.name}`, value: t.value, shape: t.shape });
      }
    });
    return out;
  }
}
