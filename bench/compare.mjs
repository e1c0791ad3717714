// NormLab against its PyTorch peer in the same session, side by side:
// training throughput (bench/train-throughput.mjs against
// bench/peers/torch_fashion.py throughput) and in-process inference
// (bench/infer.mjs against torch_fashion.py infer), and NormLab's training on
// its built-in sgemm against its OpenBLAS one (--builtin). The runs alternate
// run by run (NormLab first in odd rounds, PyTorch first in even ones) so the
// noise of a shared machine hits both alike; each figure is the median over
// all rounds' measurements, and `roundRatios` the ratio within each round
// (the two peers ran back to back). Prints one JSON line per comparison on stdout and
// a table on stderr.
//
// The peer is Debian's PyTorch 1.13 (python3-torch, OpenBLAS) run by
// /usr/bin/python3 (override with PYTHON=...), single thread like NormLab.
// Usage: npx tsc -p tsconfig.json && node bench/compare.mjs
//          [--batches 32,128,512] [--modes before] [--rounds 3] [--epochs 2] [--infer true] [--builtin true]
import { execSync, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '32,128,512' },
    modes: { type: 'string', default: 'before' },
    rounds: { type: 'string', default: '3' },
    epochs: { type: 'string', default: '2' },
    infer: { type: 'string', default: 'true' },
    train: { type: 'string', default: 'true' },
    builtin: { type: 'string', default: 'true' },
  },
});
const here = import.meta.dirname;
const python = process.env.PYTHON || '/usr/bin/python3';
const rounds = Number(values.rounds);
const epochs = values.epochs;
const batches = values.batches.split(',').map(Number);
const modes = values.modes.split(',');

/** Goals of the performance issue: NormLab/PyTorch samples/s for BN before, by batch. */
const TRAIN_GOALS = { 32: 2.0, 128: 1.2, 512: 1.0 };
/** In-process inference at batch 1: NormLab µs per call at most. */
const INFER_GOAL_US = 10;

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
  infer: () => run(process.execPath, [path.join(here, 'infer.mjs'), '--batches', '1,64', '--samples', '11', '--ms', '100']),
};
const builtin = {
  train: (batch) => run(process.execPath, [path.join(here, 'train-throughput.mjs'), '--batches', String(batch), '--modes', modes.join(','), '--epochs', epochs, '--gemm', 'builtin']),
};
const pytorch = {
  train: (batch) => run(python, [path.join(here, 'peers', 'torch_fashion.py'), 'throughput', '--batches', String(batch), '--modes', modes.join(','), '--repeats', epochs]),
  infer: () => run(python, [path.join(here, 'peers', 'torch_fashion.py'), 'infer', '--infer-batches', '1,64', '--samples', '11', '--ms', '100']),
};
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const load = () => os.loadavg().map((l) => Math.round(l * 100) / 100);

// results[key] = { normlab: [...], pytorch: [...] }: every per-epoch rate / per-run µs.
const results = new Map();
// byRound[key][peer][round - 1]: the same, per round.
const byRound = new Map();
let round = 0;
const add = (key, peer, vals) => {
  if (!results.has(key)) results.set(key, { normlab: [], pytorch: [], builtin: [] });
  results.get(key)[peer].push(...vals);
  if (!byRound.has(key)) byRound.set(key, { normlab: [], pytorch: [], builtin: [] });
  (byRound.get(key)[peer][round - 1] ??= []).push(...vals);
};
const loads = [];
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
    for (const [peer, impl] of order) {
      loads.push(load()[0]);
      for (const line of impl.infer()) add(`infer|before|${line.batch}`, peer, [line.usPerCall]);
      process.stderr.write(`round ${round}: ${peer} infer done\n`);
    }
  }
}

const cpu = os.cpus()[0]?.model ?? 'unknown';
let torchVersion = 'unknown';
try {
  torchVersion = execSync(`${python} -c "import torch; print(torch.__version__)"`, { encoding: 'utf8' }).trim();
} catch { /* reported as unknown */ }
const machine = { cpu, cores: os.cpus().length, loadavgDuringRuns: { median: median(loads), max: Math.max(...loads) } };
const rows = [];
for (const [key, r] of results) {
  const [what, mode, batch] = key.split('|');
  const n = median(r.normlab);
  const p = median(r.pytorch);
  const perRound = byRound.get(key);
  const roundRatios = perRound.normlab.map((nl, i) => {
    const pt = perRound.pytorch[i];
    if (!nl || !pt) return null;
    const q = what === 'train' ? median(nl) / median(pt) : median(pt) / median(nl);
    return Math.round(q * 100) / 100;
  });
  const line = what === 'train'
    ? {
      bench: 'compare', what: 'train-throughput', mode, batch: Number(batch), unit: 'samples/s',
      normlab: Math.round(n), pytorch: Math.round(p), ratio: Math.round((n / p) * 100) / 100,
      goal: mode === 'before' && TRAIN_GOALS[batch] ? `>= ${TRAIN_GOALS[batch]}x` : null,
      met: mode === 'before' && TRAIN_GOALS[batch] ? n / p >= TRAIN_GOALS[batch] : null,
      ...(r.builtin.length > 0 ? {
        normlabBuiltin: Math.round(median(r.builtin)), builtinOverOpenblas: Math.round((median(r.builtin) / n) * 100) / 100,
        builtinOverPytorch: Math.round((median(r.builtin) / p) * 100) / 100,
      } : {}),
    }
    : {
      bench: 'compare', what: 'infer', mode, batch: Number(batch), unit: 'us/call',
      normlab: Math.round(n * 10) / 10, pytorch: Math.round(p * 10) / 10,
      ratio: Math.round((p / n) * 100) / 100, // speed-up: PyTorch time / NormLab time
      goal: Number(batch) === 1 ? `<= ${INFER_GOAL_US} us` : null,
      met: Number(batch) === 1 ? n <= INFER_GOAL_US : null,
    };
  const rounded = (a) => a.map((v) => Math.round(v * 10) / 10);
  Object.assign(line, { roundRatios, samples: { normlab: rounded(r.normlab), pytorch: rounded(r.pytorch), ...(r.builtin.length > 0 ? { builtin: rounded(r.builtin) } : {}) }, rounds, torch: torchVersion, machine, date: new Date().toISOString() });
  rows.push(line);
  console.log(JSON.stringify(line));
}

const pad = (s, w) => String(s).padEnd(w);
process.stderr.write(`\n${cpu}, ${os.cpus().length} cores, load average during runs median ${machine.loadavgDuringRuns.median} (max ${machine.loadavgDuringRuns.max})\n`);
process.stderr.write(`${pad('what', 18)}${pad('mode', 8)}${pad('batch', 7)}${pad('PyTorch', 12)}${pad('NormLab', 12)}${pad('ratio', 8)}${pad('goal', 10)}${pad('met', 7)}builtin gemm (vs OpenBLAS)\n`);
for (const r of rows) {
  const b = r.normlabBuiltin ? `${r.normlabBuiltin} (${r.builtinOverOpenblas}x)` : '-';
  process.stderr.write(`${pad(r.what, 18)}${pad(r.mode, 8)}${pad(r.batch, 7)}${pad(`${r.pytorch}`, 12)}${pad(`${r.normlab}`, 12)}${pad(`${r.ratio}x`, 8)}${pad(r.goal ?? '-', 10)}${pad(r.met ?? '-', 7)}${b}\n`);
}
process.stderr.write('ratio: NormLab/PyTorch samples/s for training; PyTorch µs / NormLab µs for inference (higher is better for NormLab).\n');
