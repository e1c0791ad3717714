// NormLab against its PyTorch peer in the same session, side by side:
// training throughput (bench/train-throughput.mjs against
// bench/peers/torch_fashion.py throughput) and in-process inference
// (bench/infer.mjs against torch_fashion.py infer, and against onnxruntime-node
// on the same network exported by NormLab's ONNX exporter: bench/onnx.mjs
// --peers onnxruntime-node, --onnx), CNN training
// (bench/cnn.mjs throughput against torch_fashion.py cnn, --cnn), and
// NormLab's training on its built-in sgemm against its OpenBLAS one (--builtin). The runs alternate
// run by run (NormLab first in odd rounds, PyTorch first in even ones) so the
// noise of a shared machine hits both alike; each figure is the median over
// all rounds' measurements, and `roundRatios` the ratio within each round
// (the two peers ran back to back). A goal is met only when it holds in every
// round (`minRound`), not on the median. Training lines also give the
// fraction of the single-thread sgemm peak (measured by the inference runs)
// that the MLP's multiplies reach: flops per sample × samples/s ÷ peak.
// NormLab's inference runs once per --infer-threads value (NORMLAB_INFER_THREADS,
// default 1 and 2), each its own line against the same peer runs; with 2 the
// fraction of peak is of one core's and may pass 1.
// Prints one JSON line per comparison on stdout and a table on stderr.
//
// The peer is Debian's PyTorch 1.13 (python3-torch, OpenBLAS) run by
// /usr/bin/python3 (override with PYTHON=...), single thread like NormLab.
// Usage: npx tsc -p tsconfig.json && node bench/compare.mjs
//          [--batches 32,128,512] [--modes before] [--rounds 5] [--epochs 2] [--infer true] [--cnn true]
//          [--cnn-rows 3000] [--builtin true] [--onnx true] [--infer-threads 1,2]
import { execSync, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '32,128,512' },
    modes: { type: 'string', default: 'before' },
    rounds: { type: 'string', default: '5' },
    epochs: { type: 'string', default: '2' },
    infer: { type: 'string', default: 'true' },
    train: { type: 'string', default: 'true' },
    builtin: { type: 'string', default: 'true' },
    cnn: { type: 'string', default: 'true' },
    'cnn-rows': { type: 'string', default: '3000' },
    onnx: { type: 'string', default: 'true' },
    'infer-threads': { type: 'string', default: '1,2' },
  },
});
const here = import.meta.dirname;
const python = process.env.PYTHON || '/usr/bin/python3';
const rounds = Number(values.rounds);
const epochs = values.epochs;
const batches = values.batches.split(',').map(Number);
const modes = values.modes.split(',');
// NormLab's inference runs once per NORMLAB_INFER_THREADS value; the peers, on one thread, once.
const inferThreads = values['infer-threads'].split(',').map(Number);

/** Goals, each in every round: NormLab/PyTorch samples/s for BN before, by batch. */
const TRAIN_GOALS = { 32: 2.0, 128: 1.3, 512: 1.0 };
/** PyTorch µs / NormLab µs of in-process inference, by batch. */
const INFER_GOALS = { 1: 15, 64: 2 };
/** onnxruntime-node µs / NormLab µs of in-process inference, by batch. */
const ONNX_GOALS = { 1: 3, 64: 2 };
/** NormLab/PyTorch samples/s of the CNN with batch norm. */
const CNN_GOAL = 1.5;
/** Flops of one MLP 784-256-256-10 training sample's multiplies: forward, dW, dx (none for the input). */
const TRAIN_FLOPS_PER_SAMPLE = 2 * 2 * (784 * 256 + 256 * 256 + 256 * 10) + 2 * (256 * 256 + 256 * 10);

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  // A native addon being rebuilt at load time silently gives the portable kernels: not comparable.
  if (lines.some((l) => l.kernels && l.kernels !== 'native') && process.env.NORMLAB_KERNELS !== 'portable') {
    throw new Error(`${args[0]}: the native kernels did not load (${lines[0].reason})`);
  }
  return lines;
}
const normlab = {
  train: (batch) => run(process.execPath, [path.join(here, 'train-throughput.mjs'), '--batches', String(batch), '--modes', modes.join(','), '--epochs', epochs]),
  infer: (threads) => run(process.execPath, [path.join(here, 'infer.mjs'), '--batches', '1,64', '--samples', '11', '--ms', '100'],
    { NORMLAB_INFER_THREADS: String(threads) }),
  cnn: () => run(process.execPath, [path.join(here, 'cnn.mjs'), 'throughput', '--rows', values['cnn-rows'], '--epochs', '2']),
};
const builtin = {
  train: (batch) => run(process.execPath, [path.join(here, 'train-throughput.mjs'), '--batches', String(batch), '--modes', modes.join(','), '--epochs', epochs, '--gemm', 'builtin']),
};
const onnxruntime = {
  infer: () => run(process.execPath, [path.join(here, 'onnx.mjs'), '--models', 'mlp', '--peers', 'onnxruntime-node', '--batches', '1,64', '--samples', '11', '--ms', '100']),
};
const pytorch = {
  train: (batch) => run(python, [path.join(here, 'peers', 'torch_fashion.py'), 'throughput', '--batches', String(batch), '--modes', modes.join(','), '--repeats', epochs]),
  infer: () => run(python, [path.join(here, 'peers', 'torch_fashion.py'), 'infer', '--infer-batches', '1,64', '--samples', '11', '--ms', '100']),
  cnn: () => run(python, [path.join(here, 'peers', 'torch_fashion.py'), 'cnn', '--rows', values['cnn-rows'], '--repeats', '2']),
};
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const load = () => os.loadavg().map((l) => Math.round(l * 100) / 100);

// results[key] = { normlab: [...], pytorch: [...] }: every per-epoch rate / per-run µs.
const results = new Map();
// byRound[key][peer][round - 1]: the same, per round.
const byRound = new Map();
let round = 0;
const add = (key, peer, vals) => {
  if (!results.has(key)) results.set(key, { normlab: [], pytorch: [], builtin: [], onnx: [] });
  results.get(key)[peer].push(...vals);
  if (!byRound.has(key)) byRound.set(key, { normlab: [], pytorch: [], builtin: [], onnx: [] });
  (byRound.get(key)[peer][round - 1] ??= []).push(...vals);
};
const loads = [];
/** Single-thread sgemm peaks (GFLOPS) the inference runs measured. */
const peaks = [];
for (round = 1; round <= rounds; round++) {
  const order = round % 2 === 1 ? [['normlab', normlab], ['pytorch', pytorch]] : [['pytorch', pytorch], ['normlab', normlab]];
  const trainOrder = values.builtin === 'true' ? (round % 2 === 1 ? [...order, ['builtin', builtin]] : [['builtin', builtin], ...order]) : order;
  if (values.train === 'true') {
    for (const batch of batches) {
      for (const [peer, impl] of trainOrder) {
        loads.push(load()[0]);
        for (const line of impl.train(batch)) add(`train|${line.mode}|${line.batch}`, peer, line.runs);
        process.stderr.write(`round ${round}: ${peer} train batch ${batch} done\n`);
      }
    }
  }
  if (values.infer === 'true') {
    const inferOrder = values.onnx === 'true' ? (round % 2 === 1 ? [...order, ['onnx', onnxruntime]] : [['onnx', onnxruntime], ...order]) : order;
    for (const [peer, impl] of inferOrder) {
      for (const threads of peer === 'normlab' ? inferThreads : [1]) {
        loads.push(load()[0]);
        for (const line of impl.infer(threads)) {
          // Each NormLab thread count is its own line; a peer's figure goes to every one of them.
          for (const t of peer === 'normlab' ? [threads] : inferThreads) add(`infer|before|${line.batch}|${t}`, peer, [line.usPerCall]);
          if (line.sgemmPeakGflops) peaks.push(Math.max(...Object.values(line.sgemmPeakGflops)));
        }
      }
      process.stderr.write(`round ${round}: ${peer} infer done\n`);
    }
  }
  if (values.cnn === 'true') {
    for (const [peer, impl] of order) {
      loads.push(load()[0]);
      for (const line of impl.cnn()) add(`cnn|${line.batchNorm ? 'bn' : 'no-bn'}|128`, peer, line.runs);
      process.stderr.write(`round ${round}: ${peer} cnn done\n`);
    }
  }
}
const peakGflops = peaks.length > 0 ? median(peaks) : null;

const cpu = os.cpus()[0]?.model ?? 'unknown';
let torchVersion = 'unknown';
try {
  torchVersion = execSync(`${python} -c "import torch; print(torch.__version__)"`, { encoding: 'utf8' }).trim();
} catch { /* reported as unknown */ }
const machine = { cpu, cores: os.cpus().length, loadavgDuringRuns: { median: median(loads), max: Math.max(...loads) } };
/** The onnxruntime-node side of an inference line: its µs, and its time over NormLab's per round against ONNX_GOALS. */
function onnxFields(r, perRound, n, batch) {
  const o = median(r.onnx);
  const ratios = perRound.normlab.map((nl, i) => (nl && perRound.onnx[i] ? Math.round((median(perRound.onnx[i]) / median(nl)) * 100) / 100 : null));
  const valid = ratios.filter((q) => q !== null);
  const minRound = valid.length > 0 ? Math.min(...valid) : null;
  const goal = ONNX_GOALS[batch];
  return {
    onnxruntime: Math.round(o * 10) / 10, ratioOnnx: Math.round((o / n) * 100) / 100, roundRatiosOnnx: ratios,
    minRoundOnnx: minRound, medianRoundOnnx: valid.length > 0 ? median(valid) : null,
    ...(goal ? { goalOnnx: `>= ${goal}x in every round`, metOnnx: minRound !== null && valid.length === rounds && minRound >= goal } : {}),
  };
}

const rows = [];
for (const [key, r] of results) {
  const [what, mode, batch, threads] = key.split('|');
  const n = median(r.normlab);
  const p = median(r.pytorch);
  const perRound = byRound.get(key);
  const roundRatios = perRound.normlab.map((nl, i) => {
    const pt = perRound.pytorch[i];
    if (!nl || !pt) return null;
    const q = what === 'infer' ? median(pt) / median(nl) : median(nl) / median(pt);
    return Math.round(q * 100) / 100;
  });
  const valid = roundRatios.filter((q) => q !== null);
  const minRound = valid.length > 0 ? Math.min(...valid) : null;
  const medianRound = valid.length > 0 ? median(valid) : null;
  const goalValue = what === 'train' ? (mode === 'before' ? TRAIN_GOALS[batch] : undefined)
    : what === 'infer' ? INFER_GOALS[batch] : mode === 'bn' ? CNN_GOAL : undefined;
  const goal = goalValue ? { goal: `>= ${goalValue}x in every round`, met: minRound !== null && valid.length === rounds && minRound >= goalValue } : { goal: null, met: null };
  const line = what !== 'infer'
    ? {
      bench: 'compare', what: what === 'train' ? 'train-throughput' : 'cnn-train-throughput', mode, batch: Number(batch), unit: 'samples/s',
      normlab: Math.round(n), pytorch: Math.round(p), ratio: Math.round((n / p) * 100) / 100, minRound, medianRound, ...goal,
      ...(what === 'train' && peakGflops ? { fractionOfSgemmPeak: Math.round((TRAIN_FLOPS_PER_SAMPLE * n) / 1e9 / peakGflops * 100) / 100, sgemmPeakGflops: peakGflops } : {}),
      ...(r.builtin.length > 0 ? {
        normlabBuiltin: Math.round(median(r.builtin)), builtinOverOpenblas: Math.round((median(r.builtin) / n) * 100) / 100,
        builtinOverPytorch: Math.round((median(r.builtin) / p) * 100) / 100,
      } : {}),
    }
    : {
      bench: 'compare', what: 'infer', mode, batch: Number(batch), inferThreads: Number(threads), unit: 'us/call',
      normlab: Math.round(n * 10) / 10, pytorch: Math.round(p * 10) / 10,
      ratio: Math.round((p / n) * 100) / 100, // speed-up: PyTorch time / NormLab time
      minRound, medianRound, ...goal,
      ...(r.onnx.length > 0 ? onnxFields(r, perRound, n, Number(batch)) : {}),
      ...(peakGflops ? {
        fractionOfSgemmPeak: Math.round((2 * (784 * 256 + 256 * 256 + 256 * 10) * Number(batch)) / n / 1e3 / peakGflops * 100) / 100,
        sgemmPeakGflops: peakGflops,
      } : {}),
    };
  const rounded = (a) => a.map((v) => Math.round(v * 10) / 10);
  Object.assign(line, { roundRatios, samples: { normlab: rounded(r.normlab), pytorch: rounded(r.pytorch), ...(r.builtin.length > 0 ? { builtin: rounded(r.builtin) } : {}), ...(r.onnx.length > 0 ? { onnxruntime: rounded(r.onnx) } : {}) }, rounds, torch: torchVersion, machine, date: new Date().toISOString() });
  rows.push(line);
  console.log(JSON.stringify(line));
}

const pad = (s, w) => String(s).padEnd(w);
const label = (r) => (r.inferThreads > 1 ? `${r.what} ${r.inferThreads} threads` : r.what);
process.stderr.write(`\n${cpu}, ${os.cpus().length} cores, load average during runs median ${machine.loadavgDuringRuns.median} (max ${machine.loadavgDuringRuns.max})\n`);
process.stderr.write(`${pad('what', 22)}${pad('mode', 8)}${pad('batch', 7)}${pad('PyTorch', 10)}${pad('NormLab', 10)}${pad('ratio', 8)}${pad('rounds', 34)}${pad('goal', 8)}${pad('met', 7)}${pad('of peak', 9)}builtin gemm (vs OpenBLAS)\n`);
for (const r of rows) {
  const b = r.normlabBuiltin ? `${r.normlabBuiltin} (${r.builtinOverOpenblas}x)` : '-';
  process.stderr.write(`${pad(label(r), 22)}${pad(r.mode, 8)}${pad(r.batch, 7)}${pad(`${r.pytorch}`, 10)}${pad(`${r.normlab}`, 10)}${pad(`${r.ratio}x`, 8)}` +
    `${pad(r.roundRatios.join(' '), 34)}${pad(r.goal ? r.goal.split(' ')[1] : '-', 8)}${pad(r.met ?? '-', 7)}${pad(r.fractionOfSgemmPeak ?? '-', 9)}${b}\n`);
}
for (const r of rows.filter((row) => row.onnxruntime !== undefined)) {
  process.stderr.write(`${pad(`${label(r)} vs ORT`, 22)}${pad(r.mode, 8)}${pad(r.batch, 7)}${pad(`${r.onnxruntime}`, 10)}${pad(`${r.normlab}`, 10)}` +
    `${pad(`${r.ratioOnnx}x`, 8)}${pad(r.roundRatiosOnnx.join(' '), 34)}${pad(r.goalOnnx ? r.goalOnnx.split(' ')[1] : '-', 8)}${pad(r.metOnnx ?? '-', 7)}\n`);
}
if (peakGflops) process.stderr.write(`single-thread sgemm peak (1024³, median over the inference runs): ${peakGflops} GFLOPS\n`);
process.stderr.write('ratio: NormLab/PyTorch samples/s for training; PyTorch µs / NormLab µs for inference (higher is better for NormLab); met: in every round.\n');
