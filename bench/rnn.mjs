// Recurrent training throughput against PyTorch on sequential Fashion-MNIST (each image 28
// steps of a 28-pixel row): one recurrent layer of 128 (LSTM unless --cells says otherwise),
// its last step into a dense layer of 10, Adam lr 0.001, batch 128, one thread.
//
//   node bench/rnn.mjs [compare] [--rounds 5] [--rows 6000] [--epochs 2] [--cells lstm] [--modes none,sequence,recurrent]
//       NormLab (every --modes batch norm) and bench/peers/torch_rnn.py throughput (nn.LSTM/GRU/RNN,
//       no batch norm) in separate processes, alternating which goes first round by round so the
//       noise of a shared machine hits both alike. Prints one JSON line per run as it finishes
//       (with /proc/loadavg before it), then per cell and mode the samples/s of every round, min,
//       median, the NormLab/PyTorch ratio per round, and the goals: batchNorm none ≥ 1.0× PyTorch,
//       recurrent within 2× of none (recurrent/none ≥ 0.5), each in every round.
//   node bench/rnn.mjs throughput [--rows 6000] [--epochs 2] [--cells lstm] [--modes none]
//       NormLab only (what compare runs): samples/s of --epochs training epochs over the first
//       --rows training images after a warm-up epoch, no validation or test split.
//
// The peer is Debian's PyTorch 1.13 (python3-torch, OpenBLAS) run by /usr/bin/python3
// (override with PYTHON=...). Usage: npm run build && node bench/rnn.mjs
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '5' },
    rows: { type: 'string', default: '6000' },
    epochs: { type: 'string', default: '2' },
    cells: { type: 'string', default: 'lstm' },
    modes: { type: 'string', default: 'none,sequence,recurrent' },
  },
});
const what = positionals[0] ?? 'compare';
const here = import.meta.dirname;
const cells = values.cells.split(',');
const modes = values.modes.split(',');

if (what === 'throughput') {
  const { kernelsInfo } = await import('../dist/src/core/kernels/index.js');
  const { resolveSpec } = await import('../dist/src/core/spec.js');
  const { train } = await import('../dist/src/core/train.js');
  const { loadBuiltinDataset } = await import('../dist/src/datasets/index.js');
  const rows = Number(values.rows);
  for (const cell of cells) {
    for (const mode of modes) {
      const spec = resolveSpec({
        dataset: { id: 'fashion-mnist', validationSplit: 0, limit: rows },
        model: { architecture: 'rnn', cell, hidden: [128], batchNorm: mode },
        training: { epochs: 1 + Number(values.epochs), batchSize: 128, seed: 42, optimizer: { type: 'adam', learningRate: 0.001 } },
      });
      const ds = await loadBuiltinDataset(spec.dataset, 42);
      const rates = [];
      await train(spec, { ...ds, test: null }, { onEvent: (e) => { if (e.type === 'epoch' && e.epoch > 1) rates.push(ds.train.n / e.seconds); } });
      rates.sort((a, b) => a - b);
      console.log(JSON.stringify({
        bench: 'rnn-throughput', peer: 'normlab', cell, mode, hidden: 128, batch: 128, rows: ds.train.n,
        samplesPerSec: Math.round(rates[Math.floor(rates.length / 2)]), runs: rates.map(Math.round), ...kernelsInfo(),
      }));
    }
  }
} else if (what === 'compare') {
  const python = process.env.PYTHON || '/usr/bin/python3';
  const rounds = Number(values.rounds);
  const common = ['--rows', values.rows, '--cells', cells.join(',')];
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    // A native addon that failed to load silently gives the portable kernels: not comparable.
    if (lines.some((l) => l.kernels && l.kernels !== 'native') && process.env.NORMLAB_KERNELS !== 'portable') {
      throw new Error(`the native kernels did not load (${lines[0].reason})`);
    }
    return lines;
  };
  const peers = {
    normlab: () => run(process.execPath, [path.join(here, 'rnn.mjs'), 'throughput', ...common, '--modes', modes.join(','), '--epochs', values.epochs]),
    pytorch: () => run(python, [path.join(here, 'peers', 'torch_rnn.py'), 'throughput', ...common, '--repeats', values.epochs]),
  };
  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim();
  // rates[`${cell}|${mode}`][round - 1]: median samples/s of that run (pytorch: mode "pytorch").
  const rates = new Map();
  const loads = [];
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? ['normlab', 'pytorch'] : ['pytorch', 'normlab'];
    for (const peer of order) {
      const before = loadavg();
      loads.push(Number(before.split(' ')[0]));
      for (const line of peers[peer]()) {
        const key = `${line.cell}|${peer === 'pytorch' ? 'pytorch' : line.mode}`;
        if (!rates.has(key)) rates.set(key, []);
        rates.get(key)[round - 1] = line.samplesPerSec;
        console.log(JSON.stringify({ ...line, round, loadavg: before }));
      }
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const r2 = (x) => Math.round(x * 100) / 100;
  const summary = (a) => ({ rounds: a, min: Math.min(...a), median: median(a) });
  const allRounds = (a) => a.length === rounds && a.every((v) => v !== undefined);
  for (const cell of cells) {
    const torch = rates.get(`${cell}|pytorch`) ?? [];
    const none = rates.get(`${cell}|none`);
    for (const mode of modes) {
      const nl = rates.get(`${cell}|${mode}`) ?? [];
      const ratios = nl.map((v, i) => r2(v / torch[i]));
      const line = {
        bench: 'rnn-compare', cell, mode, unit: 'samples/s', normlab: summary(nl), pytorch: summary(torch),
        ratioOverPytorch: { rounds: ratios, min: Math.min(...ratios), median: median(ratios) },
      };
      if (mode === 'none') {
        line.goal = '>= 1.0x PyTorch in every round';
        line.met = allRounds(ratios) && Math.min(...ratios) >= 1.0;
      }
      if (mode === 'recurrent' && none) {
        const overNone = nl.map((v, i) => r2(v / none[i]));
        Object.assign(line, {
          ratioOverNone: { rounds: overNone, min: Math.min(...overNone), median: median(overNone) },
          goal: 'within 2x of none (>= 0.5x) in every round', met: allRounds(overNone) && Math.min(...overNone) >= 0.5,
        });
      }
      console.log(JSON.stringify({ ...line, loadavgBeforeRuns: { min: Math.min(...loads), median: median(loads), max: Math.max(...loads) }, loadavgAtEnd: loadavg() }));
    }
  }
} else {
  throw new Error(`unknown command ${what}: compare | throughput`);
}
