/**
 * Recurrent layers (LSTM, GRU, Elman RNN) with three batch-norm variants:
 *   none       PyTorch's nn.LSTM / nn.GRU / nn.RNN: pre = W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh.
 *   sequence   Deep Speech 2: BN(W_ih·x_t; γ_ih, β_ih) + W_hh·h_{t−1} + b_hh, statistics per unit
 *              over all N·T values of the batch (β_ih replaces b_ih). Inference folds it into W_ih.
 *   recurrent  Cooijmans et al. 2016: BN_t(W_ih·x_t; γ_ih) + b_ih + BN_t(W_hh·h_{t−1}; γ_hh) + b_hh,
 *              and for the LSTM h_t = o ⊙ tanh(BN_t(c_t; γ_c, β_c)); statistics per time step t,
 *              γ initialized to 0.1. The GRU's hidden term is normalized before r multiplies its
 *              n block (n = tanh(x_n + r ⊙ (BN_t(W_hn·h) + b_hn))), and an Elman cell takes the
 *              same two normalized terms; neither has a cell state. The Elman cell's h_t = f(pre)
 *              takes f = tanh or relu (`nonlinearity`, as nn.RNN).
 * Internally time-major: step t's N rows are one contiguous block, so the input projection of
 * all steps is one gemm, a per-step batch norm is the BN kernel on one block, and the weight
 * gradients are one gemm each over all T·N rows. Each direction keeps per-step gates, cell and
 * hidden states for backpropagation through time. Rows outside are batch-major [N, T, F].
 */
import { activationCode, packedDenseSize, type Kernels } from '../kernels/types.js';
import { nextFloat, type RngState } from '../rng.js';
import { Type, type Static } from '@sinclair/typebox';
import type { BatchNormSpec } from '../spec.js';
import { OnnxUnsupportedError } from '../onnx-unsupported.js';
import type {
  BatchNormClock as Clock, BatchNormStats, InferenceOp, KernelOp, LayerModule, NormalizingLayer, NormStatistics, OnnxAttribute, OnnxGraph, Param, PutTensor,
  StateTensor, TensorSpec,
} from './types.js';

export const CELLS = ['lstm', 'gru', 'rnn'] as const;
export type CellKind = (typeof CELLS)[number];
export type RecurrentBatchNorm = 'none' | 'sequence' | 'recurrent';
/** Gate blocks per unit, PyTorch order: LSTM i, f, g, o; GRU r, z, n; Elman one. */
export const CELL_GATES: Record<CellKind, number> = { lstm: 4, gru: 3, rnn: 1 };

export interface RecurrentInfo {
  index: number;
  type: CellKind;
  /** Time steps T and features per step F of the input. */
  steps: number;
  features: number;
  units: number;
  /** true: the output is every step's [T, D·units]; false: the last step's [D·units]. */
  returnSequences: boolean;
  bidirectional: boolean;
  batchNorm: RecurrentBatchNorm;
  /** The Elman cell's activation (type rnn only); absent: tanh, as in models saved before the field. */
  nonlinearity?: ElmanNonlinearity;
}

export type ElmanNonlinearity = 'tanh' | 'relu';

/** The activation code of an Elman cell's h_t = f(x_t + h_t-1 terms). */
function elmanActivation(l: RecurrentInfo): number {
  return activationCode(l.nonlinearity ?? 'tanh');
}

export function recurrentOutputSize(l: RecurrentInfo): number {
  const width = (l.bidirectional ? 2 : 1) * l.units;
  return l.returnSequences ? l.steps * width : width;
}

/** A tensor of a recurrent layer: a parameter (with its initial fill) or running statistics. */
export interface RecurrentTensor { name: string; shape: number[]; param: boolean; fill: number }

/** Cooijmans et al.: γ = 0.1 keeps the normalized pre-activations in the linear range of the gates. */
export const RECURRENT_GAMMA_INIT = 0.1;

/**
 * Every tensor of the layer, by name (PyTorch's weight_ih_l0 ... with _reverse for the reverse
 * direction): the source of the parameter count, the artifact checks and the checkpoint.
 */
export function recurrentTensors(l: RecurrentInfo, bn: Pick<BatchNormSpec, 'center' | 'scale'>): RecurrentTensor[] {
  const G = CELL_GATES[l.type] * l.units;
  const H = l.units;
  const T = l.steps;
  const out: RecurrentTensor[] = [];
  for (const suffix of l.bidirectional ? ['_l0', '_l0_reverse'] : ['_l0']) {
    const p = (name: string, shape: number[], fill = 0) => out.push({ name: name + suffix, shape, param: true, fill });
    const stat = (name: string, shape: number[], fill: number) => out.push({ name: name + suffix, shape, param: false, fill });
    p('weight_ih', [G, l.features]);
    p('weight_hh', [G, H]);
    if (l.batchNorm !== 'sequence') p('bias_ih', [G]);
    p('bias_hh', [G]);
    if (l.batchNorm === 'sequence') {
      if (bn.scale) p('gamma_ih', [G], 1);
      if (bn.center) p('beta_ih', [G]);
      stat('running_mean_ih', [G], 0);
      stat('running_var_ih', [G], 1);
    } else if (l.batchNorm === 'recurrent') {
      if (bn.scale) {
        p('gamma_ih', [G], RECURRENT_GAMMA_INIT);
        p('gamma_hh', [G], RECURRENT_GAMMA_INIT);
        if (l.type === 'lstm') p('gamma_c', [H], RECURRENT_GAMMA_INIT);
      }
      if (l.type === 'lstm' && bn.center) p('beta_c', [H]);
      for (const [name, width] of [['ih', G], ['hh', G], ...(l.type === 'lstm' ? [['c', H]] : [])] as [string, number][]) {
        stat(`running_mean_${name}`, [T, width], 0);
        stat(`running_var_${name}`, [T, width], 1);
      }
    }
  }
  return out;
}

/** 'train': batch statistics, running statistics updated; 'batch': batch statistics only; 'infer': frozen statistics. */
type ForwardMode = 'train' | 'batch' | 'infer';

/** Parameters and state tensors of a layer, created from recurrentTensors (zero or `fill`). */
export function createRecurrentTensors(l: RecurrentInfo, bn: Pick<BatchNormSpec, 'center' | 'scale'>): { params: Param[]; state: StateTensor[] } {
  const params: Param[] = [];
  const state: StateTensor[] = [];
  for (const t of recurrentTensors(l, bn)) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    const value = new Float32Array(size).fill(t.fill);
    if (t.param) params.push({ name: t.name, shape: t.shape, value, grad: new Float32Array(size) });
    else state.push({ name: t.name, shape: t.shape, value });
  }
  return { params, state };
}

/** One direction's tensors by plain name (suffix stripped), and its running statistics. */
class Direction {
  readonly params: Param[] = [];
  readonly stats = new Map<string, Float32Array>();
  private readonly byName = new Map<string, Param>();
  private readonly G: number;
  // Forward stores, time-major; h and c have a leading zero block (the initial state).
  private readonly xw: Float32Array;
  private readonly xg: Float32Array;
  private readonly hw: Float32Array;
  private readonly hg: Float32Array;
  private readonly hgStep: boolean;
  private readonly gates: Float32Array;
  readonly h: Float32Array;
  private readonly c: Float32Array;
  private readonly z: Float32Array;
  // Batch statistics of the last training forward: per block (recurrent) or one (sequence).
  private readonly save = new Map<string, { mean: Float32Array; rstd: Float32Array }>();
  /** Sums over the epoch's training batches of the batch mean and unbiased variance, per normalized term. */
  readonly epoch = new Map<string, { mean: Float64Array; variance: Float64Array }>();
  // Backward.
  private readonly dxg: Float32Array;
  private readonly dhw: Float32Array;
  private readonly dz: Float32Array;
  private readonly dhRec: Float32Array;
  private readonly dcRec: Float32Array;
  private readonly scratchGamma: Float32Array;
  private readonly scratchBeta: Float32Array;
  readonly dxT: Float32Array | null;
  private readonly ones: Float32Array;
  private xT: Float32Array | null = null;
  private trained = false;

  constructor(readonly info: RecurrentInfo, params: Param[], state: StateTensor[], private readonly k: Kernels, maxBatch: number,
    needsInputGrad: boolean, private readonly cfg: BatchNormSpec) {
    const plain = (name: string) => name.replace(/_l0(_reverse)?$/, '');
    for (const p of params) {
      this.params.push(p);
      this.byName.set(plain(p.name), p);
    }
    for (const t of state) this.stats.set(plain(t.name), t.value);
    const { steps: T, units: H, type, batchNorm: bn } = info;
    const G = (this.G = CELL_GATES[type] * H);
    const rows = T * maxBatch;
    const store = (n: number, when = true) => new Float32Array(when ? n : 0);
    this.xw = store(rows * G);
    this.xg = bn === 'none' ? this.xw : store(rows * G);
    this.hw = store(rows * G, bn === 'recurrent');
    // The hidden term is kept for every step when the GRU backward needs it; else one step's worth.
    this.hgStep = type !== 'gru';
    this.hg = store((this.hgStep ? maxBatch : rows) * G);
    this.gates = store(rows * G, type !== 'rnn');
    this.h = store((T + 1) * maxBatch * H);
    this.c = store((T + 1) * maxBatch * H, type === 'lstm');
    this.z = store(rows * H, type === 'lstm' && bn === 'recurrent');
    const saved = (name: string, blocks: number, width: number) => {
      this.save.set(name, { mean: new Float32Array(blocks * width), rstd: new Float32Array(blocks * width) });
      this.epoch.set(name, { mean: new Float64Array(blocks * width), variance: new Float64Array(blocks * width) });
    };
    if (bn === 'sequence') saved('ih', 1, G);
    if (bn === 'recurrent') {
      saved('ih', T, G);
      saved('hh', T, G);
      if (type === 'lstm') saved('c', T, H);
    }
    this.dxg = store(rows * G);
    this.dhw = type === 'gru' || bn === 'recurrent' ? store(rows * G) : this.dxg;
    this.dz = store(maxBatch * H, type === 'lstm');
    this.dhRec = store(maxBatch * H);
    this.dcRec = store(maxBatch * H, type === 'lstm');
    this.scratchGamma = store(G);
    this.scratchBeta = store(G);
    this.dxT = needsInputGrad ? store(rows * info.features) : null;
    this.ones = new Float32Array(bn === 'recurrent' ? 0 : rows).fill(1);
  }

  private p(name: string): Param | null {
    return this.byName.get(name) ?? null;
  }

  /** PyTorch's initialization of recurrent weights: U(−1/√units, 1/√units); biases stay 0. */
  initialize(rng: RngState): void {
    const bound = 1 / Math.sqrt(this.info.units);
    for (const name of ['weight_ih', 'weight_hh']) {
      const w = this.p(name)!.value;
      for (let i = 0; i < w.length; i++) w[i] = (2 * nextFloat(rng) - 1) * bound;
    }
  }

  /**
   * Batch norm of `rows` rows of `width` channels from x into y: batch statistics that update the
   * running ones and the epoch sums ('train'), batch statistics alone ('batch'), or frozen ones ('infer').
   */
  private norm(name: string, block: number, x: Float32Array, y: Float32Array, rows: number, width: number,
    gamma: Float32Array | null, beta: Float32Array | null, mode: ForwardMode, momentum: number): void {
    const range = (a: Float32Array) => a.subarray(block * width, (block + 1) * width);
    const mean = range(this.stats.get(`running_mean_${name}`)!);
    const variance = range(this.stats.get(`running_var_${name}`)!);
    if (mode === 'infer') {
      this.k.batchNormForwardInfer(x, y, rows, width, 1, gamma, beta, mean, variance, this.cfg.epsilon);
      return;
    }
    const s = this.save.get(name)!;
    const saveMean = range(s.mean);
    const saveRstd = range(s.rstd);
    this.k.batchNormForwardTrain(x, y, rows, width, 1, gamma, beta, mean, variance, momentum, this.cfg.epsilon, mode === 'train',
      saveMean, saveRstd);
    if (mode !== 'train') return;
    const e = this.epoch.get(name)!;
    const unbiased = rows / Math.max(1, rows - 1);
    for (let j = 0; j < width; j++) {
      const rstd = saveRstd[j]!;
      e.mean[block * width + j] += saveMean[j]!;
      e.variance[block * width + j] += (1 / (rstd * rstd) - this.cfg.epsilon) * unbiased;
    }
  }

  /** Backward of norm() in place on dy, adding dγ and dβ into the given gradients. */
  private normBackward(name: string, block: number, x: Float32Array, dy: Float32Array, dx: Float32Array, rows: number,
    width: number, gamma: Param | null, beta: Param | null): void {
    const s = this.save.get(name)!;
    const dg = gamma ? this.scratchGamma.subarray(0, width) : null;
    const db = beta ? this.scratchBeta.subarray(0, width) : null;
    this.k.batchNormBackward(x, dy, dx, rows, width, 1, gamma?.value ?? null, s.mean.subarray(block * width, (block + 1) * width),
      s.rstd.subarray(block * width, (block + 1) * width), null, null, dg, db);
    for (let j = 0; j < width; j++) {
      if (gamma) gamma.grad[j] = gamma.grad[j]! + dg![j]!;
      if (beta) beta.grad[j] = beta.grad[j]! + db![j]!;
    }
  }

  /** W_ih·x_t of every step into the xw store (the sequence-wise BN's input), for population statistics. */
  inputProjection(xT: Float32Array, n: number): Float32Array {
    const { steps: T, features: F } = this.info;
    this.k.gemm(false, true, T * n, this.G, F, 1, xT, this.p('weight_ih')!.value, 0, this.xw);
    return this.xw.subarray(0, T * n * this.G);
  }

  /** xT: the input, time-major [T, n, F] (for the reverse direction, in reversed time). */
  forward(xT: Float32Array, n: number, mode: ForwardMode, momentum: number): void {
    this.xT = xT;
    this.trained = mode === 'train';
    const { k, G } = this;
    const { steps: T, units: H, features: F, type, batchNorm: bn } = this.info;
    const v = (name: string) => this.p(name)?.value ?? null;
    const whh = v('weight_hh')!;
    k.gemm(false, true, T * n, G, F, 1, xT, v('weight_ih')!, 0, this.xw); // all steps' W_ih·x_t at once
    if (bn === 'none') k.addBias(this.xw, v('bias_ih')!, T * n, G, 1);
    else if (bn === 'sequence') this.norm('ih', 0, this.xw, this.xg, T * n, G, v('gamma_ih'), v('beta_ih'), mode, momentum);
    const block = (a: Float32Array, s: number, width: number) => a.subarray(s * n * width, (s + 1) * n * width);
    this.h.fill(0, 0, n * H);
    if (type === 'lstm') this.c.fill(0, 0, n * H);
    for (let s = 0; s < T; s++) {
      const xg = block(this.xg, s, G);
      const hPrev = block(this.h, s, H);
      const hg = this.hgStep ? this.hg.subarray(0, n * G) : block(this.hg, s, G);
      if (bn === 'recurrent') {
        this.norm('ih', s, block(this.xw, s, G), xg, n, G, v('gamma_ih'), v('bias_ih'), mode, momentum);
        const hw = block(this.hw, s, G);
        k.gemm(false, true, n, G, H, 1, hPrev, whh, 0, hw);
        this.norm('hh', s, hw, hg, n, G, v('gamma_hh'), v('bias_hh'), mode, momentum);
      } else {
        k.gemm(false, true, n, G, H, 1, hPrev, whh, 0, hg);
        k.addBias(hg, v('bias_hh')!, n, G, 1);
      }
      const h = block(this.h, s + 1, H);
      if (type === 'lstm') {
        const gates = block(this.gates, s, G);
        const c = block(this.c, s + 1, H);
        k.lstmCellForward(xg, hg, block(this.c, s, H), gates, c, n, H);
        let z = c;
        if (bn === 'recurrent') {
          z = block(this.z, s, H);
          this.norm('c', s, c, z, n, H, v('gamma_c'), v('beta_c'), mode, momentum);
        }
        k.lstmOutputForward(gates, z, h, n, H);
      } else if (type === 'gru') {
        k.gruCellForward(xg, hg, hPrev, block(this.gates, s, G), h, n, H);
      } else {
        k.rnnCellForward(xg, hg, h, n, H, elmanActivation(this.info));
      }
    }
  }

  /**
   * Backpropagation through time. dhAbove(s) is the gradient at step s's output from the layer
   * above ([n, units], or null for none). Writes every parameter gradient and, when the layer
   * needs it, dxT (time-major, in this direction's time order).
   */
  backward(dhAbove: (s: number) => Float32Array | null, n: number): void {
    if (!this.trained) throw new Error('recurrent layer: backward without a training forward');
    const { k, G } = this;
    const { steps: T, units: H, features: F, type, batchNorm: bn } = this.info;
    const block = (a: Float32Array, s: number, width: number) => a.subarray(s * n * width, (s + 1) * n * width);
    const p = (name: string) => this.p(name);
    for (const param of this.params) param.grad.fill(0);
    const whh = p('weight_hh')!.value;
    const dhRec = this.dhRec.subarray(0, n * H);
    const dcRec = this.dcRec.subarray(0, n * H);
    dhRec.fill(0);
    dcRec.fill(0);
    for (let s = T - 1; s >= 0; s--) {
      const dh = dhAbove(s);
      const dxg = block(this.dxg, s, G);
      const dhw = block(this.dhw, s, G);
      if (type === 'lstm') {
        const gates = block(this.gates, s, G);
        const c = block(this.c, s + 1, H);
        const dz = this.dz.subarray(0, n * H);
        k.lstmOutputBackward(gates, bn === 'recurrent' ? block(this.z, s, H) : c, dh, dhRec, dz, dxg, n, H);
        if (bn === 'recurrent') this.normBackward('c', s, c, dz, dz, n, H, p('gamma_c'), p('beta_c'));
        k.lstmCellBackward(gates, block(this.c, s, H), dz, dcRec, dxg, dcRec, n, H);
      } else if (type === 'gru') {
        k.gruCellBackward(block(this.gates, s, G), block(this.hg, s, G), block(this.h, s, H), dh, dhRec, dxg, dhw, dhRec, n, H);
      } else {
        k.rnnCellBackward(block(this.h, s + 1, H), dh, dhRec, dxg, n, H, elmanActivation(this.info));
      }
      // dxg is now the gradient at the input term; the hidden term's is dhw (the same for LSTM and Elman).
      if (bn === 'recurrent') {
        this.normBackward('hh', s, block(this.hw, s, G), type === 'gru' ? dhw : dxg, dhw, n, G, p('gamma_hh'), p('bias_hh'));
        this.normBackward('ih', s, block(this.xw, s, G), dxg, dxg, n, G, p('gamma_ih'), p('bias_ih'));
      }
      if (s > 0) k.gemm(false, false, n, H, G, 1, dhw, whh, type === 'gru' ? 1 : 0, dhRec); // into dh_{s−1}
    }
    const rows = T * n;
    // dhw first: for LSTM and Elman cells without recurrent BN it is dxg, which the sequence BN backward overwrites.
    // Bias gradients are column sums over all T·n rows: one gemm with a row of ones (biasGrad strides down the columns).
    const ones = this.ones.subarray(0, rows);
    if (bn !== 'recurrent') k.gemm(false, false, 1, G, rows, 1, ones, this.dhw, 0, p('bias_hh')!.grad);
    k.gemm(true, false, G, H, rows, 1, this.dhw, this.h, 0, p('weight_hh')!.grad); // Σ_s dhw_sᵀ·h_{s−1}
    if (bn === 'none') k.gemm(false, false, 1, G, rows, 1, ones, this.dxg, 0, p('bias_ih')!.grad);
    if (bn === 'sequence') {
      const s = this.save.get('ih')!;
      k.batchNormBackward(this.xw, this.dxg, this.dxg, rows, G, 1, p('gamma_ih')?.value ?? null, s.mean, s.rstd, null, null,
        p('gamma_ih')?.grad ?? null, p('beta_ih')?.grad ?? null);
    }
    k.gemm(true, false, G, F, rows, 1, this.dxg, this.xT!, 0, p('weight_ih')!.grad);
    if (this.dxT) k.gemm(false, false, rows, F, G, 1, this.dxg, p('weight_ih')!.value, 0, this.dxT);
  }
}

/**
 * The trainable layer: one Direction, or two for bidirectional (the reverse one reads the
 * sequence backwards; outputs are concatenated forward ‖ reverse per step, as PyTorch). Without
 * returnSequences the output is each direction's final hidden state (PyTorch's h_n): forward
 * after step T−1, reverse after step 0.
 *
 * Batch statistics: a `sequence` layer has one set per direction (the W_ih·x term, G·units
 * channels); a `recurrent` one has a set per normalized term (ih, hh, and c for the LSTM) whose
 * channels are its T·width per-step statistics, step-major. Population statistics are exact for
 * `sequence` (W_ih·x does not depend on the recurrence, so one pass over the training rows
 * gives them). For `recurrent` the statistics of step t depend on the frozen statistics of the
 * steps before it, which one pass cannot give, so the moving averages stay (finishPopulation
 * leaves them; the spec rejects inferenceStats "population" for such a layer).
 */
export class RecurrentLayer implements NormalizingLayer {
  readonly outputSize: number;
  readonly params: Param[];
  readonly state: StateTensor[];
  readonly directions: Direction[];
  /** Frozen statistics in training are not offered for recurrent layers (the spec rejects freezeBatchNormAfterEpoch). */
  frozen = false;
  private readonly xT: Float32Array[];
  private readonly y: Float32Array;
  private readonly dx: Float32Array | null;
  private readonly dhAbove: Float32Array;
  private epochBatches = 0;
  private population: Array<{ sums: Float64Array; shift: Float64Array; rows: number }> | null = null;

  constructor(readonly info: RecurrentInfo, private readonly k: Kernels, maxBatch: number, needsInputGrad: boolean,
    readonly cfg: BatchNormSpec, private readonly clock: Clock,
    tensors: { params: Param[]; state: StateTensor[] } = createRecurrentTensors(info, cfg)) {
    const { steps: T, features: F, units: H } = info;
    this.outputSize = recurrentOutputSize(info);
    this.params = tensors.params;
    this.state = tensors.state;
    const reverse = (t: { name: string }) => t.name.endsWith('_reverse');
    const dirs = info.bidirectional ? [false, true] : [false];
    this.directions = dirs.map((rev) => new Direction(info, tensors.params.filter((t) => reverse(t) === rev),
      tensors.state.filter((t) => reverse(t) === rev), k, maxBatch, needsInputGrad, cfg));
    this.xT = dirs.map(() => new Float32Array(T * maxBatch * F));
    this.y = new Float32Array(maxBatch * this.outputSize);
    this.dx = needsInputGrad ? new Float32Array(maxBatch * T * F) : null;
    this.dhAbove = new Float32Array(T * maxBatch * H);
  }

  initialize(rng: RngState): void {
    for (const d of this.directions) d.initialize(rng);
  }

  /** Tensors by name: parameters, then running statistics. */
  namedTensors(): Array<{ name: string; value: Float32Array; shape: number[] }> {
    return [...this.params, ...this.state].map((t) => ({ name: t.name, value: t.value, shape: t.shape }));
  }

  forward(x: Float32Array, n: number, training: boolean): Float32Array {
    if (training && this.frozen) throw new Error('recurrent layers do not train with frozen batch-norm statistics');
    if (training) this.epochBatches++;
    return this.run(x, n, training ? 'train' : 'infer');
  }

  /** Training-mode output with batch statistics, the running statistics untouched (the "batch" side of the gap). */
  forwardBatchStatistics(x: Float32Array, n: number): Float32Array {
    return this.run(x, n, this.info.batchNorm === 'none' ? 'infer' : 'batch');
  }

  private run(x: Float32Array, n: number, mode: ForwardMode): Float32Array {
    const { steps: T, units: H } = this.info;
    const momentum = this.cfg.momentum ?? 1 - 1 / Math.max(1, this.clock.updates);
    this.directions.forEach((d, i) => d.forward(this.timeMajor(x, n, i), n, mode, momentum));
    const width = this.directions.length * H;
    const steps = this.info.returnSequences ? T : 1;
    this.directions.forEach((d, i) => {
      for (let q = 0; q < steps; q++) {
        // Output step t of direction i is its hidden block s + 1, s its own step index.
        const t = this.info.returnSequences ? q : T - 1;
        const blockIndex = this.info.returnSequences ? (i === 0 ? t + 1 : T - t) : T;
        for (let r = 0; r < n; r++) {
          const src = d.h.subarray((blockIndex * n + r) * H, (blockIndex * n + r + 1) * H);
          this.y.set(src, (r * steps + q) * width + i * H);
        }
      }
    });
    return this.y;
  }

  /** x [n, T, F] batch-major as direction i reads it: time-major [T, n, F], reversed in time for the reverse direction. */
  private timeMajor(x: Float32Array, n: number, i: number): Float32Array {
    const { steps: T, features: F } = this.info;
    const xT = this.xT[i]!;
    for (let t = 0; t < T; t++) {
      const s = i === 0 ? t : T - 1 - t;
      for (let r = 0; r < n; r++) xT.set(x.subarray((r * T + t) * F, (r * T + t + 1) * F), (s * n + r) * F);
    }
    return xT;
  }

  backward(dy: Float32Array, n: number): Float32Array | null {
    const { steps: T, features: F, units: H, returnSequences } = this.info;
    const width = this.directions.length * H;
    const dhAbove = this.dhAbove;
    this.directions.forEach((d, i) => {
      if (returnSequences) {
        for (let s = 0; s < T; s++) {
          const t = i === 0 ? s : T - 1 - s;
          for (let r = 0; r < n; r++) {
            const off = (r * T + t) * width + i * H;
            dhAbove.set(dy.subarray(off, off + H), (s * n + r) * H);
          }
        }
        d.backward((s) => dhAbove.subarray(s * n * H, (s + 1) * n * H), n);
      } else {
        for (let r = 0; r < n; r++) dhAbove.set(dy.subarray(r * width + i * H, r * width + (i + 1) * H), r * H);
        const last = dhAbove.subarray(0, n * H);
        d.backward((s) => (s === T - 1 ? last : null), n);
      }
    });
    const dx = this.dx;
    if (!dx) return null;
    const [fwd, rev] = this.directions.map((d) => d.dxT!);
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < n; r++) {
        const out = (r * T + t) * F;
        const a = (t * n + r) * F;
        const b = ((T - 1 - t) * n + r) * F;
        for (let f = 0; f < F; f++) dx[out + f] = fwd![a + f]! + (rev ? rev[b + f]! : 0);
      }
    }
    return dx;
  }

  statistics(): NormStatistics[] {
    const { index, batchNorm, units: H, type, steps: T } = this.info;
    if (batchNorm === 'none') return [];
    const G = CELL_GATES[type] * H;
    const terms: Array<[string, number, string, string]> = batchNorm === 'sequence'
      ? [['ih', G, 'gamma_ih', 'beta_ih']]
      : [['ih', G, 'gamma_ih', 'bias_ih'], ['hh', G, 'gamma_hh', 'bias_hh'], ...(type === 'lstm' ? [['c', H, 'gamma_c', 'beta_c'] as [string, number, string, string]] : [])];
    const blocks = batchNorm === 'sequence' ? 1 : T;
    return this.directions.flatMap((d, i) => terms.map(([name, width, gamma, beta]) => {
      // γ and β are shared by the steps: listed once per step, as the statistics are.
      const tile = (v: Float32Array | null) => {
        if (!v) return null;
        const out = new Float32Array(blocks * width);
        for (let b = 0; b < blocks; b++) out.set(v, b * width);
        return out;
      };
      const param = (plain: string) => this.params.find((p) => p.name === `${plain}_l0${i === 1 ? '_reverse' : ''}`)?.value ?? null;
      const sums = d.epoch.get(name)!;
      return {
        layer: index, kind: `${batchNorm}-${name}${i === 1 ? '-reverse' : ''}`, channels: blocks * width,
        runningMean: d.stats.get(`running_mean_${name}`)!, runningVar: d.stats.get(`running_var_${name}`)!,
        gamma: tile(param(gamma)), beta: tile(param(beta)), epsilon: this.cfg.epsilon,
        epochStatistics: () => (this.epochBatches === 0 ? null : {
          mean: sums.mean.map((v) => v / this.epochBatches), variance: sums.variance.map((v) => v / this.epochBatches),
        }),
      };
    }));
  }

  resetEpochStatistics(): void {
    this.epochBatches = 0;
    for (const d of this.directions) for (const e of d.epoch.values()) { e.mean.fill(0); e.variance.fill(0); }
  }

  beginPopulation(): void {
    if (this.info.batchNorm !== 'sequence') return;
    const G = CELL_GATES[this.info.type] * this.info.units;
    this.population = this.directions.map(() => ({ sums: new Float64Array(2 * G), shift: new Float64Array(G), rows: 0 }));
  }

  /** x: this layer's input for n training rows (layers before it frozen). */
  accumulatePopulation(x: Float32Array, n: number): void {
    if (!this.population) return;
    const G = CELL_GATES[this.info.type] * this.info.units;
    this.directions.forEach((d, i) => {
      const pop = this.population![i]!;
      const xw = d.inputProjection(this.timeMajor(x, n, i), n);
      const rows = xw.length / G;
      if (pop.rows === 0) for (let j = 0; j < G; j++) pop.shift[j] = xw[j]!; // sums around the first row stay well-conditioned
      this.k.channelShiftedSums(xw, rows, G, 1, pop.shift, pop.sums);
      pop.rows += rows;
    });
  }

  finishPopulation(): void {
    if (!this.population) return;
    this.directions.forEach((d, i) => {
      const { sums, shift, rows } = this.population![i]!;
      const mean = d.stats.get('running_mean_ih')!;
      const variance = d.stats.get('running_var_ih')!;
      for (let j = 0; j < mean.length; j++) {
        const m = sums[2 * j]! / rows;
        mean[j] = shift[j]! + m;
        variance[j] = rows > 1 ? Math.max(0, (sums[2 * j + 1]! - rows * m * m) / (rows - 1)) : 0;
      }
    });
    this.population = null;
  }
}

/** One direction in inference form: plain layout, batch norm frozen (and folded where exact). */
export interface RecurrentDirectionWeights {
  /** [G, F] and [G]: for `sequence`, with the frozen BN folded in; null bias: none (recurrent BN's β carries it). */
  weightIh: Float32Array;
  biasIh: Float32Array | null;
  weightHh: Float32Array;
  biasHh: Float32Array | null;
  /** Recurrent BN only: γ (null: 1), β and the per-step frozen statistics [T, width] of each normalized term. */
  norms: Partial<Record<'ih' | 'hh' | 'c', { gamma: Float32Array | null; beta: Float32Array | null; mean: Float32Array; variance: Float32Array }>>;
}

/**
 * The inference form of a layer from its tensors (get: by full name, null when absent): frozen
 * statistics; a `sequence` BN is the per-unit affine map s·(W_ih·x) + t with s = γ/√(var + ε),
 * t = β − mean·s, folded into W_ih's rows and the bias (exact in real arithmetic), so the cell
 * that runs is a plain one.
 */
export function recurrentInferenceWeights(l: RecurrentInfo, get: (name: string) => Float32Array | null,
  epsilon: number): RecurrentDirectionWeights[] {
  const G = CELL_GATES[l.type] * l.units;
  return (l.bidirectional ? ['_l0', '_l0_reverse'] : ['_l0']).map((suffix) => {
    const t = (name: string) => get(name + suffix);
    let weightIh = t('weight_ih')!;
    let biasIh = t('bias_ih');
    const norms: RecurrentDirectionWeights['norms'] = {};
    if (l.batchNorm === 'sequence') {
      const gamma = t('gamma_ih');
      const beta = t('beta_ih');
      const mean = t('running_mean_ih')!;
      const variance = t('running_var_ih')!;
      const F = l.features;
      weightIh = weightIh.slice();
      biasIh = new Float32Array(G);
      for (let o = 0; o < G; o++) {
        const s = (gamma ? gamma[o]! : 1) / Math.sqrt(variance[o]! + epsilon);
        for (let j = 0; j < F; j++) weightIh[o * F + j] = weightIh[o * F + j]! * s;
        biasIh[o] = (beta ? beta[o]! : 0) - mean[o]! * s;
      }
    } else if (l.batchNorm === 'recurrent') {
      norms.ih = { gamma: t('gamma_ih'), beta: biasIh, mean: t('running_mean_ih')!, variance: t('running_var_ih')! };
      norms.hh = { gamma: t('gamma_hh'), beta: t('bias_hh'), mean: t('running_mean_hh')!, variance: t('running_var_hh')! };
      if (l.type === 'lstm') norms.c = { gamma: t('gamma_c'), beta: t('beta_c'), mean: t('running_mean_c')!, variance: t('running_var_c')! };
      biasIh = null;
    }
    return { weightIh, biasIh, weightHh: t('weight_hh')!, biasHh: l.batchNorm === 'recurrent' ? null : t('bias_hh'), norms };
  });
}

/**
 * A recurrent layer as predict runs it. Every matrix product is denseInfer on weights packed
 * once, and everything else is elementwise per row (cells, frozen BN), so a row's output is
 * the same bytes alone or at any position of any batch. Scratch grows to the largest batch.
 */
export class RecurrentInference {
  private readonly packed: Array<{ ih: Float32Array; hh: Float32Array }>;
  private capacity = 0;
  private xT = new Float32Array(0);
  private xg = new Float32Array(0);
  private hg = new Float32Array(0);
  private gates = new Float32Array(0);
  private h = new Float32Array(0);
  private c = new Float32Array(0);
  private z = new Float32Array(0);

  constructor(readonly info: RecurrentInfo, readonly weights: RecurrentDirectionWeights[], private readonly k: Kernels) {
    const G = CELL_GATES[info.type] * info.units;
    this.packed = weights.map((w) => {
      const ih = k.alignedFloat32Array(packedDenseSize(G, info.features));
      const hh = k.alignedFloat32Array(packedDenseSize(G, info.units));
      k.packDense(w.weightIh, G, info.features, ih);
      k.packDense(w.weightHh, G, info.units, hh);
      return { ih, hh };
    });
  }

  /** y [n, outputSize] from x [n, T·F]; y must not overlap x. */
  run(x: Float32Array, y: Float32Array, n: number, epsilon: number): void {
    const { steps: T, features: F, units: H, type, returnSequences } = this.info;
    const G = CELL_GATES[type] * H;
    if (n > this.capacity) {
      this.capacity = n;
      this.xT = new Float32Array(n * F);
      this.xg = new Float32Array(n * G);
      this.hg = new Float32Array(n * G);
      this.gates = new Float32Array(n * G);
      this.h = new Float32Array(2 * n * H);
      this.c = new Float32Array(2 * n * H);
      this.z = new Float32Array(n * H);
    }
    const k = this.k;
    const width = this.weights.length * H;
    const xT = this.xT.subarray(0, n * F);
    const xg = this.xg.subarray(0, n * G);
    const hg = this.hg.subarray(0, n * G);
    const gates = this.gates.subarray(0, n * G);
    const z = this.z.subarray(0, n * H);
    const state = (a: Float32Array, s: number) => a.subarray((s & 1) * n * H, ((s & 1) + 1) * n * H);
    this.weights.forEach((w, d) => {
      const { ih, hh } = this.packed[d]!;
      this.h.fill(0);
      this.c.fill(0);
      const norm = (name: 'ih' | 'hh' | 'c', s: number, v: Float32Array, channels: number) => {
        const p = w.norms[name]!;
        const step = Math.min(s, p.mean.length / channels - 1);
        k.batchNormForwardInfer(v, v, n, channels, 1, p.gamma, p.beta, p.mean.subarray(step * channels, (step + 1) * channels),
          p.variance.subarray(step * channels, (step + 1) * channels), epsilon);
      };
      for (let s = 0; s < T; s++) {
        const t = d === 0 ? s : T - 1 - s;
        for (let r = 0; r < n; r++) xT.set(x.subarray((r * T + t) * F, (r * T + t + 1) * F), r * F);
        const hPrev = state(this.h, s);
        const h = state(this.h, s + 1);
        k.denseInfer(xT, ih, w.biasIh, xg, n, F, G);
        k.denseInfer(hPrev, hh, w.biasHh, hg, n, H, G);
        if (w.norms.ih) {
          norm('ih', s, xg, G);
          norm('hh', s, hg, G);
        }
        if (type === 'lstm') {
          const c = state(this.c, s + 1);
          k.lstmCellForward(xg, hg, state(this.c, s), gates, c, n, H);
          let zc = c;
          if (w.norms.c) {
            z.set(c);
            norm('c', s, z, H);
            zc = z;
          }
          k.lstmOutputForward(gates, zc, h, n, H);
        } else if (type === 'gru') {
          k.gruCellForward(xg, hg, hPrev, gates, h, n, H);
        } else {
          k.rnnCellForward(xg, hg, h, n, H, elmanActivation(this.info));
        }
        if (returnSequences) {
          for (let r = 0; r < n; r++) y.set(h.subarray(r * H, (r + 1) * H), (r * T + t) * width + d * H);
        } else if (s === T - 1) {
          for (let r = 0; r < n; r++) y.set(h.subarray(r * H, (r + 1) * H), r * width + d * H);
        }
      }
    });
  }
}

export const RecurrentLayerSpec = Type.Object({
  type: Type.Union([Type.Literal('lstm'), Type.Literal('gru'), Type.Literal('rnn')]),
  units: Type.Integer({ minimum: 1, maximum: 4096 }),
  returnSequences: Type.Optional(Type.Boolean({ description: 'Default false: the last step\'s output (both directions\' final states); true: every step\'s, [steps, units]' })),
  bidirectional: Type.Optional(Type.Boolean({ description: 'Default false; true: a reverse-direction copy, outputs concatenated (2·units)' })),
  batchNorm: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('sequence'), Type.Literal('recurrent')], {
    description: "Default 'none'; 'sequence': BN of W_ih·x over all N·T values (Deep Speech 2); 'recurrent': per-step BN of both terms and of c (Cooijmans et al.)",
  })),
  nonlinearity: Type.Optional(Type.Union([Type.Literal('tanh'), Type.Literal('relu')], {
    description: "Type rnn (Elman) only, default 'tanh': h_t = f(W_ih·x_t + b_ih + W_hh·h_t-1 + b_hh), PyTorch's nn.RNN nonlinearity",
  })),
}, { additionalProperties: false });

/** The recurrent layer as predict runs it (and as the weights download and ONNX export describe it). */
class RecurrentOp implements InferenceOp {
  readonly kind = 'recurrent';
  readonly readsRawInput = true;
  constructor(readonly info: RecurrentInfo, readonly weights: RecurrentDirectionWeights[]) {}

  describe(put: PutTensor): Record<string, unknown> {
    const l = this.info;
    const G = CELL_GATES[l.type] * l.units;
    this.weights.forEach((w, d) => {
      const suffix = d === 1 ? '_l0_reverse' : '_l0';
      put(`weight_ih${suffix}`, [G, l.features], w.weightIh);
      put(`weight_hh${suffix}`, [G, l.units], w.weightHh);
      if (w.biasIh) put(`bias_ih${suffix}`, [G], w.biasIh);
      if (w.biasHh) put(`bias_hh${suffix}`, [G], w.biasHh);
      for (const [name, n] of Object.entries(w.norms)) {
        const width = name === 'c' ? l.units : G;
        if (n.gamma) put(`gamma_${name}${suffix}`, [width], n.gamma);
        if (n.beta) put(`beta_${name}${suffix}`, [width], n.beta);
        put(`mean_${name}${suffix}`, [l.steps, width], n.mean);
        put(`variance_${name}${suffix}`, [l.steps, width], n.variance);
      }
    });
    return {
      kind: this.kind, cell: l.type, gates: { lstm: 'i,f,g,o', gru: 'r,z,n', rnn: l.nonlinearity ?? 'tanh' }[l.type], steps: l.steps, features: l.features,
      units: l.units, returnSequences: l.returnSequences, bidirectional: l.bidirectional,
      // A sequence-wise BN is folded into weight_ih / bias_ih; a recurrent one stays: per-step statistics of each term.
      batchNorm: l.batchNorm === 'recurrent' ? 'recurrent' : 'none',
    };
  }

  /**
   * A plain cell (no BN, or sequence-wise BN folded into W_ih) is ONNX's own LSTM / GRU / RNN op
   * (gates reordered to ONNX's i,o,f,c and z,r,h; GRU with linear_before_reset, PyTorch's form).
   * Recurrent BN (per-step statistics of each term inside the cell) has no such op: 422.
   */
  onnx(g: OnnxGraph, i: number, x: string): { x: string; rank: number } {
    const l = this.info;
    if (l.batchNorm === 'recurrent') {
      throw new OnnxUnsupportedError(`layer ${l.index} (${l.type}) has recurrent batch norm, per-step statistics inside the cell, ` +
        'which ONNX\'s LSTM/GRU/RNN ops cannot express; models with batchNorm none or sequence export');
    }
    const { steps: T, features: F, units: H } = l;
    const D = this.weights.length;
    const blocks = { lstm: [0, 3, 1, 2], gru: [1, 0, 2], rnn: [0] }[l.type]; // PyTorch gate block per ONNX block
    const G = blocks.length * H;
    const reorder = (w: Float32Array | null, per: number, out: Float32Array, at: number) => {
      blocks.forEach((src, b) => {
        if (w) out.set(w.subarray(src * H * per, (src + 1) * H * per), at + b * H * per);
      });
    };
    const W = new Float32Array(D * G * F);
    const R = new Float32Array(D * G * H);
    const B = new Float32Array(D * 2 * G);
    this.weights.forEach((w, d) => {
      reorder(w.weightIh, F, W, d * G * F);
      reorder(w.weightHh, H, R, d * G * H);
      reorder(w.biasIh, 1, B, d * 2 * G);
      reorder(w.biasHh, 1, B, d * 2 * G + G);
    });
    const seq = g.node('Reshape', [x, g.constantInt64(`op${i}.input_shape`, [3], [0, T, F])]); // [N, T, F]
    const X = g.node('Transpose', [seq], [{ name: 'perm', ints: [1, 0, 2] }]); // [T, N, F]
    const attributes: OnnxAttribute[] = [{ name: 'hidden_size', int: H }, { name: 'direction', string: D === 2 ? 'bidirectional' : 'forward' }];
    if (l.type === 'gru') attributes.push({ name: 'linear_before_reset', int: 1 });
    if (l.type === 'rnn' && l.nonlinearity === 'relu') attributes.push({ name: 'activations', strings: Array<string>(D).fill('Relu') });
    const [Y, Yh] = g.nodeOutputs({ lstm: 'LSTM', gru: 'GRU', rnn: 'RNN' }[l.type], [X, g.constant(`op${i}.W`, [D, G, F], W),
      g.constant(`op${i}.R`, [D, G, H], R), g.constant(`op${i}.B`, [D, 2 * G], B)], attributes, 2);
    if (l.returnSequences) {
      const byRow = g.node('Transpose', [Y!], [{ name: 'perm', ints: [2, 0, 1, 3] }]); // [N, T, D, H]
      return { x: g.node('Reshape', [byRow, g.constantInt64(`op${i}.output_shape`, [3], [0, T, D * H])]), rank: 3 };
    }
    const final = g.node('Transpose', [Yh!], [{ name: 'perm', ints: [1, 0, 2] }]); // [N, D, H]: PyTorch's h_n
    return { x: g.node('Flatten', [final], [{ name: 'axis', int: 1 }]), rank: 2 };
  }

  lower(k: Kernels): KernelOp {
    const run = new RecurrentInference(this.info, this.weights, k);
    return {
      run(_k: Kernels, x: Float32Array, y: Float32Array, n: number, scratch): boolean {
        run.run(x, y, n, scratch.epsilon);
        return true;
      },
    };
  }
}

/** [T, F], or a one-channel image [1, H, W] read as H steps of W features. */
function sequenceShape(shape: number[], fail: (message: string) => never): [number, number] {
  if (shape.length === 2) return shape as [number, number];
  if (shape.length === 3 && shape[0] === 1) return [shape[1]!, shape[2]!];
  if (shape.length === 3) {
    return fail(`a recurrent layer reads [steps, features] or a one-channel image [1, height, width] as height steps of width features; it receives [${shape}] with ${shape[0]} channels`);
  }
  return fail(`a recurrent layer needs sequence input [steps, features]; it receives [${shape}] (dataset.sequence.steps reads each row as [steps, features / steps])`);
}

const uniformInit = (units: number) => (value: Float32Array, rng: RngState) => {
  const bound = 1 / Math.sqrt(units); // PyTorch's U(−1/√units, 1/√units)
  for (let i = 0; i < value.length; i++) value[i] = (2 * nextFloat(rng) - 1) * bound;
};

const tensorSpecs = (l: RecurrentInfo, bn: BatchNormSpec, param: boolean): TensorSpec[] => recurrentTensors(l, bn)
  .filter((t) => t.param === param)
  .map((t) => ({ name: t.name, shape: t.shape, fill: t.fill, ...(t.name.startsWith('weight_') ? { init: uniformInit(l.units) } : {}) }));

export const recurrent: LayerModule<Static<typeof RecurrentLayerSpec>, RecurrentInfo> = {
  types: CELLS,
  expand(d, { index, shape, fail }) {
    const [steps, features] = sequenceShape(shape, fail);
    const info: RecurrentInfo = {
      index, type: d.type, steps, features, units: d.units, returnSequences: d.returnSequences ?? false,
      bidirectional: d.bidirectional ?? false, batchNorm: d.batchNorm ?? 'none',
      ...(d.type === 'rnn' ? { nonlinearity: d.nonlinearity ?? 'tanh' } : {}),
    };
    const width = (info.bidirectional ? 2 : 1) * d.units;
    return { info, shape: info.returnSequences ? [steps, width] : [width] };
  },
  outputSize: (l) => recurrentOutputSize(l),
  params: (l, bn) => tensorSpecs(l, bn, true),
  state: (l, bn) => tensorSpecs(l, bn, false),
  multiplyAdds: (l) => (l.bidirectional ? 2 : 1) * l.steps * CELL_GATES[l.type] * l.units * (l.features + l.units),
  // Per direction and step: the projections, gates and their gradients (G·units each), states, and the time-major input.
  cacheValues: (l) => (l.bidirectional ? 2 : 1) * l.steps * (6 * CELL_GATES[l.type] * l.units + 4 * l.units + 2 * l.features),
  build: (info, ctx) => new RecurrentLayer(info, ctx.kernels, ctx.maxBatch, ctx.needsInputGrad, ctx.bn, ctx.clock,
    { params: ctx.params, state: ctx.state }),
  inference(l, ctx) {
    const weights = recurrentInferenceWeights(l, (name) => ctx.tensor(name), ctx.epsilon);
    const stats: BatchNormStats[] = [];
    if (l.batchNorm !== 'none') {
      const G = CELL_GATES[l.type] * l.units;
      weights.forEach((_, d) => {
        const suffix = d === 1 ? '_l0_reverse' : '_l0';
        const terms = l.batchNorm === 'sequence' ? [['ih', 'gamma_ih', 'beta_ih', G]]
          : [['ih', 'gamma_ih', 'bias_ih', G], ['hh', 'gamma_hh', 'bias_hh', G], ...(l.type === 'lstm' ? [['c', 'gamma_c', 'beta_c', l.units]] : [])];
        for (const [name, gamma, beta, width] of terms as Array<[string, string, string, number]>) {
          const blocks = l.batchNorm === 'sequence' ? 1 : l.steps;
          const tile = (v: Float32Array | null, fill: number) => Array.from({ length: blocks * width }, (_, j) => (v ? v[j % width]! : fill));
          stats.push({
            layer: l.index, channels: blocks * width, mean: [...ctx.tensor(`running_mean_${name}${suffix}`)!],
            variance: [...ctx.tensor(`running_var_${name}${suffix}`)!], gamma: tile(ctx.tensor(gamma + suffix), 1),
            beta: tile(ctx.tensor(beta + suffix), 0), epsilon: ctx.epsilon, source: ctx.inferenceStats,
          });
        }
      });
    }
    return { ops: [new RecurrentOp(l, weights)], stats };
  },
};
