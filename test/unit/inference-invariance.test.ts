// Batch invariance of InferenceModel: a row's prediction is the same bytes
// predicted alone, at any position of any batch from 1 to 1000 rows, for an
// MLP and a CNN with batch norm (folded and not), on every kernel set; and
// the kernels under it (packDense, denseInfer against the plain definition,
// packConv, conv2dInfer against conv2dForward); and dense inference on two
// threads against one.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { buildArtifact, MANIFEST_FORMAT, type Artifact } from '../../src/core/artifact.js';
import { InferenceModel } from '../../src/core/inference.js';
import { expandLayers } from '../../src/core/layers.js';
import { Sequential } from '../../src/core/model.js';
import { createRng, nextFloat } from '../../src/core/rng.js';
import { resolveSpec } from '../../src/core/spec.js';
import { inferThreadsSetting, loadNativeKernels, nativeAddonPath, type NativeAddon } from '../../src/core/kernels/native.js';
import { activationCode, convOutputSize, NO_ACTIVATION, packedDenseSize, type Kernels } from '../../src/core/kernels/types.js';
import { expectClose } from '../helpers/gradcheck.js';
import { kernelSets, native, randn, takesWinograd } from '../helpers/kernels.js';

/** A model with random weights and batch-norm statistics moved off their start, as an artifact. */
function artifactOf(k: Kernels, model: Record<string, unknown>, inputShape: number[], classes: number): Artifact {
  const spec = resolveSpec({ dataset: { id: 'x' }, model, training: { batchSize: 16 } });
  const layers = expandLayers(spec.model, inputShape, classes);
  const features = inputShape.reduce((a, b) => a * b, 1);
  const rng = createRng(11);
  const net = new Sequential(layers, k, 16, features, spec.batchNorm, rng);
  net.initialize('glorot', rng);
  for (let i = 0; i < 3; i++) net.forward(randn(rng, 16 * features, 1.5, 0.3), 16, true);
  return buildArtifact({
    format: MANIFEST_FORMAT, spec, layers, inputShape, features, classes, classNames: Array.from({ length: classes }, (_, i) => `c${i}`),
    preprocess: { kind: 'none' }, inferenceStats: 'moving', epsilon: spec.batchNorm.epsilon, parameters: 0,
    metrics: {} as never, createdAt: new Date(0).toISOString(),
  }, net.namedTensors());
}

/** Every batch size 1..maxBatch, rows drawn at random positions from the pool: each row's output equals its alone output, bytes and all. */
function expectBatchInvariant(model: InferenceModel, pool: Float32Array, poolRows: number, maxBatch: number, seed: number) {
  const f = model.features;
  const c = model.classes;
  const alone = new Float32Array(poolRows * c);
  const one = new Float32Array(c);
  for (let r = 0; r < poolRows; r++) {
    model.predictInto(pool.subarray(r * f, (r + 1) * f), 1, one);
    alone.set(one, r * c);
  }
  const rng = createRng(seed);
  const rows = new Float32Array(maxBatch * f);
  const out = new Float32Array(maxBatch * c);
  const picks = new Int32Array(maxBatch);
  let mismatches = 0;
  let first = '';
  for (let n = 1; n <= maxBatch; n++) {
    for (let i = 0; i < n; i++) {
      picks[i] = Math.floor(nextFloat(rng) * poolRows);
      rows.set(pool.subarray(picks[i]! * f, (picks[i]! + 1) * f), i * f);
    }
    model.predictInto(rows, n, out);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < c; j++) {
        if (!Object.is(out[i * c + j], alone[picks[i]! * c + j])) {
          mismatches++;
          first ||= `batch ${n}, position ${i} (row ${picks[i]}), class ${j}: ${out[i * c + j]} vs alone ${alone[picks[i]! * c + j]}`;
        }
      }
    }
  }
  expect(mismatches, first).toBe(0);
}

describe.each(kernelSets)('inference batch invariance (%s kernels)', (name, k) => {
  // 500 500 rows per model over the batch sizes: the portable kernels get smaller models
  // (their per-row loops have no tiles to vary); the native ones, layers of several panels.
  const native = name === 'native';
  const timeout = 120_000;

  it('MLP with batch norm, folded and not: every batch size 1..1000, random positions, the same bytes as alone', () => {
    const [inputs, hidden] = native ? [37, [40, 24]] : [5, [6, 4]];
    const artifact = artifactOf(k, { hidden, batchNorm: 'before' }, [inputs], 5);
    const pool = randn(createRng(2), 300 * inputs, 2);
    for (const fold of [true, false]) expectBatchInvariant(InferenceModel.fromArtifact(artifact, { kernels: k, fold }), pool, 300, 1000, 7);
  }, timeout);

  it('CNN (conv-BN-relu-maxpool, conv-BN-relu, dense): every batch size 1..1000, random positions, the same bytes', () => {
    const shape = native ? [2, 6, 6] : [1, 4, 4];
    const artifact = artifactOf(k, {
      layers: [
        { type: 'conv2d', filters: native ? 17 : 2, kernelSize: 3 }, { type: 'batchnorm' }, { type: 'relu' }, { type: 'maxpool2d', size: 2 },
        { type: 'conv2d', filters: native ? 5 : 2, kernelSize: 2, padding: 'valid' }, { type: 'batchnorm' }, { type: 'relu' },
        { type: 'flatten' }, { type: 'dense', units: 6 }, { type: 'tanh' },
      ],
    }, shape, 4);
    const f = shape[0]! * shape[1]! * shape[2]!;
    const pool = randn(createRng(3), 200 * f);
    for (const fold of [true, false]) expectBatchInvariant(InferenceModel.fromArtifact(artifact, { kernels: k, fold }), pool, 200, 1000, 8);
  }, timeout);

  it('CNN with a 3x3 conv of 8 channels in and out (native: Winograd, chunks of samples): every batch size 1..1000', () => {
    // Native chunks of 51 samples at this size (16 tiles of 20 channels, about 1 MB of transforms
    // per chunk), so batches of more than 51 rows mix whole and short chunks.
    const shape = native ? [3, 8, 7] : [1, 4, 4];
    const artifact = artifactOf(k, {
      layers: [
        { type: 'conv2d', filters: native ? 8 : 2, kernelSize: 3 }, { type: 'batchnorm' }, { type: 'relu' },
        { type: 'conv2d', filters: native ? 12 : 2, kernelSize: 3 }, { type: 'relu' }, { type: 'maxpool2d', size: 2 },
        { type: 'flatten' }, { type: 'dense', units: 6 },
      ],
    }, shape, 4);
    const f = shape[0]! * shape[1]! * shape[2]!;
    const pool = randn(createRng(6), 200 * f);
    for (const fold of [true, false]) expectBatchInvariant(InferenceModel.fromArtifact(artifact, { kernels: k, fold }), pool, 200, 1000, 10);
  }, timeout);

  it('the Fashion-MNIST MLP shape (784-256-256-10): batch sizes 1..70 and 1000 (portable 1..8 and 200), the same bytes', () => {
    const artifact = artifactOf(k, { hidden: [256, 256], batchNorm: 'before' }, [784], 10);
    const model = InferenceModel.fromArtifact(artifact, { kernels: k });
    const pool = randn(createRng(4), 64 * 784);
    // Full-size models cost more on the portable kernels: sizes up to 70 cover every tile
    // shape (row remainders 0..5 of every panel grouping), then one large batch.
    expectBatchInvariant(model, pool, 64, native ? 70 : 8, 9);
    const big = native ? 1000 : 200;
    const rows = new Float32Array(big * 784);
    for (let i = 0; i < big; i++) rows.set(pool.subarray((i % 64) * 784, (i % 64 + 1) * 784), i * 784);
    const all = model.predict(rows, big);
    for (let i = 0; i < big; i += 37) expect(all.subarray(i * 10, i * 10 + 10)).toEqual(model.predict(pool.subarray((i % 64) * 784, (i % 64 + 1) * 784), 1));
  }, timeout);
});

describe.each(kernelSets)('inference kernels (%s kernels)', (name, k) => {
  const rng = createRng(5);

  it('packDense lays out panels of 16 outputs, zero-padded; denseInfer = x·Wᵀ + bias, then f', () => {
    const [n, inputs, out] = [7, 13, 21];
    const w = randn(rng, out * inputs);
    const packed = new Float32Array(packedDenseSize(out, inputs)).fill(NaN);
    k.packDense(w, out, inputs, packed);
    expect(packed.length).toBe(2 * 16 * inputs);
    expect(packed[(1 * inputs + 4) * 16 + 3]).toBe(w[(16 + 3) * inputs + 4]);
    expect(packed[(1 * inputs + 4) * 16 + 5]).toBe(0); // output 21 does not exist
    const x = randn(rng, n * inputs);
    const bias = randn(rng, out);
    for (const [act, f] of [[NO_ACTIVATION, (v: number) => v], [activationCode('relu'), (v: number) => Math.max(0, v)],
      [activationCode('sigmoid'), (v: number) => 1 / (1 + Math.exp(-v))]] as const) {
      const y = new Float32Array(n * out);
      k.denseInfer(x, packed, bias, y, n, inputs, out, act, 0);
      const expected = new Float64Array(n * out);
      for (let r = 0; r < n; r++) {
        for (let o = 0; o < out; o++) {
          let s = bias[o]!;
          for (let j = 0; j < inputs; j++) s += x[r * inputs + j]! * w[o * inputs + j]!;
          expected[r * out + o] = f(s);
        }
      }
      expectClose(y, expected, { rtol: 1e-5, atol: 1e-5 }, `activation ${act}`);
    }
    // No bias (plain and relu: the epilogues without a bias), and no inputs at all: y = f(0 + bias).
    const y = new Float32Array(n * out);
    const sums = new Float64Array(n * out);
    for (let r = 0; r < n; r++) {
      for (let o = 0; o < out; o++) {
        for (let j = 0; j < inputs; j++) sums[r * out + o]! += x[r * inputs + j]! * w[o * inputs + j]!;
      }
    }
    k.denseInfer(x, packed, null, y, n, inputs, out);
    expectClose(y, sums, { rtol: 1e-5, atol: 1e-5 }, 'no bias');
    k.denseInfer(x, packed, null, y, n, inputs, out, activationCode('relu'), 0);
    expectClose(y, sums.map((v) => Math.max(0, v)), { rtol: 1e-5, atol: 1e-5 }, 'no bias, relu');
    const z = new Float32Array(n * out);
    k.denseInfer(new Float32Array(0), new Float32Array(0), bias, z, n, 0, out);
    expect(z.subarray(out, 2 * out)).toEqual(bias);
    expect(() => k.denseInfer(x, packed.subarray(1), bias, y, n, inputs, out)).toThrow(/packed/);
  });

  it('denseChain runs denseInfer layer after layer: the same bytes as the separate calls, any batch, growing scratch', () => {
    const sizes = [13, 21, 40, 5];
    const acts = [activationCode('relu'), activationCode('tanh'), NO_ACTIVATION];
    const layers = acts.map((activation, i) => {
      const [inputs, out] = [sizes[i]!, sizes[i + 1]!];
      const packed = k.alignedFloat32Array(packedDenseSize(out, inputs));
      k.packDense(randn(rng, out * inputs), out, inputs, packed);
      return { packed, bias: i === 1 ? null : randn(rng, out), in: inputs, out, activation, alpha: 0 };
    });
    const chain = k.denseChain(layers);
    for (const n of [1, 9, 3, 130]) {
      const x = randn(rng, n * sizes[0]!);
      let input = x;
      for (const l of layers) {
        const y = new Float32Array(n * l.out);
        k.denseInfer(input, l.packed, l.bias, y, n, l.in, l.out, l.activation, l.alpha);
        input = y;
      }
      const y = new Float32Array(n * 5).fill(NaN);
      chain.run(x, n, y);
      expect(Buffer.from(y.buffer).equals(Buffer.from(input.buffer)), `batch ${n}`).toBe(true);
    }
    // One layer: straight into y; sizes and operands checked.
    const one = k.denseChain([layers[0]!]);
    const y1 = new Float32Array(2 * 21);
    one.run(randn(rng, 2 * 13), 2, y1);
    expect(y1.some((v) => v !== 0)).toBe(true);
    expect(() => chain.run(new Float32Array(12), 1, new Float32Array(5))).toThrow(/x is too short/);
    expect(() => chain.run(new Float32Array(13), 1, new Float32Array(4))).toThrow(/y is too short/);
    expect(() => k.denseChain([])).toThrow(RangeError);
    // Bad layers fail when compiled (native) or at the first run (portable).
    const bad = (l: Partial<(typeof layers)[number]>) => () => k.denseChain([{ ...layers[0]!, ...l }]).run(new Float32Array(13), 1, new Float32Array(21));
    expect(bad({ activation: 9 })).toThrow(/activation/);
    expect(bad({ packed: layers[0]!.packed.subarray(16) })).toThrow(/packed/);
    expect(bad({ bias: new Float32Array(20) })).toThrow(/bias/);
  });

  it('softmaxRows: exp(z - max) / sum in double precision, rounded once; NaN rows stay NaN; in place', () => {
    const [N, C] = [40, 7];
    const z = randn(rng, N * C, 30);
    z.set([1e30, -1e30, 88, -Infinity, 0, 0, 0], 0); // overflow without the max, one exact 0
    z.set([NaN, 1, 2, 3, 4, 5, 6], C);
    z.set([Infinity, 1, 2, 3, 4, 5, 6], 2 * C); // Inf - Inf: NaN, as the definition gives
    const out = new Float32Array(N * C).fill(-1);
    k.softmaxRows(z, out, N, C);
    for (let n = 0; n < N; n++) {
      const row = Array.from(z.subarray(n * C, (n + 1) * C));
      const max = Math.max(...row);
      const e = row.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      // exp may differ from Math.exp by an ulp of a double; rounded to float, not by more than one float ulp.
      for (let c = 0; c < C; c++) {
        const want = Math.fround(e[c]! / sum);
        const got = out[n * C + c]!;
        if (Number.isNaN(want)) expect(got, `row ${n}`).toBeNaN();
        else expect(Math.abs(got - want), `row ${n}, class ${c}`).toBeLessThanOrEqual(Math.abs(want) * 2 ** -23);
      }
    }
    expect(Array.from(out.subarray(0, C))).toEqual([1, 0, 0, 0, 0, 0, 0]);
    const inPlace = Float32Array.from(z);
    k.softmaxRows(inPlace, inPlace, N, C);
    expect(Buffer.from(inPlace.buffer).equals(Buffer.from(out.buffer))).toBe(true);
    k.softmaxRows(new Float32Array(0), new Float32Array(0), 0, C);
    expect(() => k.softmaxRows(z, new Float32Array(N * C - 1), N, C)).toThrow(/out is too short/);
  });

  it('alignedFloat32Array gives n zeroed floats of its own', () => {
    const a = k.alignedFloat32Array(1000);
    const b = k.alignedFloat32Array(1000);
    expect(a.length).toBe(1000);
    expect(a.every((v) => v === 0)).toBe(true);
    a.fill(1);
    expect(b.every((v) => v === 0)).toBe(true);
    expect(() => k.alignedFloat32Array(-1)).toThrow(RangeError);
  });

  it('packConv: the Winograd transform G g Gᵀ of a 3x3 kernel at stride 1 with 8 channels in and out (native), else a copy', () => {
    const G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]];
    for (const [F, C, KH, KW, sh, sw] of [[8, 9, 3, 3, 1, 1], [8, 7, 3, 3, 1, 1], [9, 8, 3, 3, 2, 2], [8, 8, 3, 2, 1, 1]]) {
      const w = randn(rng, F * C * KH * KW);
      const packed = k.packConv(w, F, C, KH, KW, sh, sw);
      if (name !== 'native' || !takesWinograd({ KH, KW, C, F }, sh, sw)) {
        expect(Array.from(packed), `${F}x${C}x${KH}x${KW}/${sh}`).toEqual(Array.from(w));
        continue;
      }
      // U[ξ = 4i + j][f*C + c] = Σ G[i][a] g[a][b] G[j][b], in float64.
      const ref = new Float64Array(16 * F * C);
      for (let fc = 0; fc < F * C; fc++) {
        for (let i = 0; i < 4; i++) {
          for (let j = 0; j < 4; j++) {
            let u = 0;
            for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) u += G[i]![a]! * w[fc * 9 + a * 3 + b]! * G[j]![b]!;
            ref[(4 * i + j) * F * C + fc] = u;
          }
        }
      }
      expectClose(packed, ref, { rtol: 1e-6, atol: 1e-6 }, `U ${F}x${C}`);
    }
    expect(() => k.packConv(new Float32Array(10), 8, 8, 3, 3, 1, 1)).toThrow(TypeError);
    expect(() => k.packConv(new Float32Array(9), 1, 1, 3, 3, 0, 1)).toThrow(RangeError);
  });

  it('conv2dInfer on packConv = conv2dForward then the activation, for strides, padding, 1x1 kernels and Winograd', () => {
    for (const [C, H, W, F, KH, KW, sh, sw, ph, pw] of [[2, 7, 6, 5, 3, 3, 1, 1, 1, 1], [3, 8, 9, 17, 2, 3, 2, 1, 0, 1], [4, 5, 5, 3, 1, 1, 1, 1, 0, 0],
      [8, 9, 7, 12, 3, 3, 1, 1, 1, 1], [9, 6, 6, 8, 3, 3, 1, 1, 0, 0]]) {
      const N = 3;
      const OH = convOutputSize(H, KH, sh, ph), OW = convOutputSize(W, KW, sw, pw);
      const x = randn(rng, N * C * H * W);
      const w = randn(rng, F * C * KH * KW);
      const bias = randn(rng, F);
      const col = new Float32Array(C * KH * KW * OH * OW);
      const ref = new Float32Array(N * F * OH * OW);
      k.conv2dForward(x, w, bias, ref, N, C, H, W, F, KH, KW, sh, sw, ph, pw, col);
      k.activationForward(activationCode('relu'), ref, ref, ref.length, 0);
      const y = new Float32Array(ref.length);
      k.conv2dInfer(x, k.packConv(w, F, C, KH, KW, sh, sw), bias, y, N, C, H, W, F, KH, KW, sh, sw, ph, pw, col, activationCode('relu'), 0);
      expectClose(y, ref, { rtol: 1e-5, atol: 1e-5 }, `conv ${C}x${H}x${W} -> ${F}, ${KH}x${KW}/${sh},${sw} pad ${ph},${pw}`);
    }
  });
});

// NORMLAB_INFER_THREADS=2 (native/infer_pool.h): a chain's rows (from 8 rows) or each dense
// layer's output panels (below) are split between the caller and a helper thread. A lane's chain
// is the same on either thread, so the bytes must be those of one thread, for every batch,
// whether the helper is awake or asleep.
describe.skipIf(native === null)('inference on two threads (native kernels)', () => {
  const one = loadNativeKernels({ inferThreads: 1 })!;
  const two = loadNativeKernels({ inferThreads: 2 })!;
  const timeout = 120_000;
  const addon = createRequire(import.meta.url)(nativeAddonPath()) as NativeAddon;
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

  it('reports its threads; NORMLAB_INFER_THREADS takes 1, 2 or unset, and denseChain checks threads', () => {
    expect(one.inferThreads).toBe(1);
    expect(two.inferThreads).toBe(2);
    expect(inferThreadsSetting('')).toBe(1); // unset (an explicit undefined would read the environment)
    expect(inferThreadsSetting('1')).toBe(1);
    expect(inferThreadsSetting('2')).toBe(2);
    expect(() => inferThreadsSetting('3')).toThrow(/NORMLAB_INFER_THREADS must be 1, 2 or unset, got "3"/);
    const packed = one.alignedFloat32Array(packedDenseSize(20, 3));
    expect(() => addon.denseChain([packed], [null], Int32Array.of(3, 20), Int32Array.of(NO_ACTIVATION), new Float32Array(1), 3 as 2))
      .toThrow(/threads must be 1 or 2/);
  });

  it('MLP over layers of 3, 2 and 1 panels: every batch size 1..1000 (odd row splits included), random positions, the bytes of one thread', () => {
    // 40 outputs are 3 panels (2 on the caller, 1 on the helper), 24 are 2, the 5 classes 1 (caller only).
    const artifact = artifactOf(one, { hidden: [40, 24], batchNorm: 'before' }, [37], 5);
    const pool = randn(createRng(12), 300 * 37, 2);
    for (const fold of [true, false]) {
      const model = InferenceModel.fromArtifact(artifact, { kernels: two, fold });
      expectBatchInvariant(model, pool, 300, 1000, 13);
      expect(bytes(model.predict(pool, 300)).equals(bytes(InferenceModel.fromArtifact(artifact, { kernels: one, fold }).predict(pool, 300)))).toBe(true);
    }
  }, timeout);

  it('the Fashion-MNIST MLP shape: batch sizes 1..70 and 1000, and with the helper asleep between calls, the bytes of one thread', () => {
    const artifact = artifactOf(one, { hidden: [256, 256], batchNorm: 'before' }, [784], 10);
    const single = InferenceModel.fromArtifact(artifact, { kernels: one });
    const model = InferenceModel.fromArtifact(artifact, { kernels: two });
    const pool = randn(createRng(14), 1000 * 784);
    for (const n of [...Array.from({ length: 70 }, (_, i) => i + 1), 1000]) {
      const rows = pool.subarray(0, n * 784);
      expect(bytes(model.predict(rows, n)).equals(bytes(single.predict(rows, n))), `batch ${n}`).toBe(true);
    }
    // Back to back: at batch 1 each call splits the two 256-output layers' panels (the 10-output
    // layer is one panel), at batch 64 its rows once. How many parts the helper runs depends on
    // what else has the second core (tests run side by side), so the calls go on until it has run
    // some (at least 200 calls, at most 5 s).
    for (const [n, partsPerCall] of [[1, 2], [64, 1]] as const) {
      const rows = pool.subarray(0, n * 784);
      const want = bytes(single.predict(rows, n));
      const start = addon.inferPoolParts();
      const until = Date.now() + 5000;
      let calls = 0;
      while (calls < 200 || (addon.inferPoolParts().helper === start.helper && Date.now() < until)) {
        expect(bytes(model.predict(rows, n)).equals(want), `batch ${n}, call ${calls} back to back`).toBe(true);
        calls++;
      }
      const end = addon.inferPoolParts();
      expect(end.posted - start.posted, `parts posted at batch ${n}`).toBe(calls * partsPerCall);
      expect(end.helper - start.helper, `parts the helper ran at batch ${n}`).toBeGreaterThan(0);
    }
    // 2 ms apart the helper has gone to sleep (it spins 100 µs): the caller wakes it, or runs
    // the helper's half itself when it has not woken by then.
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 20; i++) {
      Atomics.wait(pause, 0, 0, 2);
      const rows = pool.subarray(i * 784, (i + 3) * 784);
      expect(bytes(model.predict(rows, 3)).equals(bytes(single.predict(rows, 3))), `call ${i} after a pause`).toBe(true);
    }
  }, timeout);

  it('a worker thread that predicted on two threads exits promptly (its helper thread is stopped and joined)', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      const packed = addon.alignedFloat32Array(64 * 8);
      addon.packDense(new Float32Array(64 * 8).fill(0.5), 64, 8, packed);
      const chain = addon.denseChain([packed], [null], Int32Array.of(8, 64), Int32Array.of(-1), new Float32Array(1), 2);
      const y = new Float32Array(64);
      addon.denseChainRun(chain, new Float32Array(8).fill(1), 1, y);
      parentPort.postMessage(Array.from(y.subarray(0, 2)).concat(y[63]));
    `;
    const started = Date.now();
    const worker = new Worker(code, { eval: true, workerData: { path: nativeAddonPath() } });
    const message = new Promise((resolve) => worker.once('message', resolve));
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    expect(await message).toEqual([4, 4, 4]);
    expect(await exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
