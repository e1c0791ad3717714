/**
 * `normlab` command line.
 *   normlab train SPEC.json [--data FILE.csv] [--label COLUMN] [--out DIR] [--json]
 *   normlab experiment SPEC.json [--json] [--threads N]
 *   normlab doctor
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from './config.js';
import type { TrainEvent } from './core/events.js';
import { kernelsInfo } from './core/kernels/index.js';
import { resolveSpec, SpecError } from './core/spec.js';
import { train, TrainingError } from './core/train.js';
import { experimentCommand, EXPERIMENT_USAGE } from './cli/experiment.js';
import { DatasetError, listBuiltinDatasets, loadBuiltinDataset, parseCsvDataset } from './datasets/index.js';

const USAGE = `usage:
  normlab train SPEC.json [--data FILE.csv] [--label COLUMN] [--out DIR] [--json]
      Train in-process. --data trains on a CSV file (header row; label column by
      name or index, default the last). --out writes manifest.json and
      model.safetensors. --json prints one event per line.
${EXPERIMENT_USAGE}
  normlab doctor
      Show which kernels and GEMM are in use and which datasets are installed.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'doctor') {
    console.log(JSON.stringify({ ...kernelsInfo(), datasets: listBuiltinDatasets().map(({ id, available, installHint }) => ({ id, available, installHint })) }, null, 2));
    return 0;
  }
  if (command === 'experiment') return experimentCommand(rest);
  if (command !== 'train') {
    console.error(USAGE);
    return command === undefined || command === '--help' || command === 'help' ? 0 : 2;
  }
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: { data: { type: 'string' }, label: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const json = values.json!;
  const print = json
    ? (e: TrainEvent) => process.stdout.write(`${JSON.stringify(e)}\n`)
    : humanPrinter();
  try {
    const raw = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Record<string, unknown>;
    if (values.data && raw.dataset === undefined) raw.dataset = { id: 'csv' };
    const spec = resolveSpec(raw);
    const dataset = values.data
      ? parseCsvDataset(readFileSync(values.data, 'utf8'), {
          id: path.basename(values.data), name: path.basename(values.data),
          label: values.label === undefined ? undefined : /^\d+$/.test(values.label) ? Number(values.label) : values.label,
        })
      : await loadBuiltinDataset(spec.dataset, spec.training.seed);
    const config = loadConfig();
    const result = await train(spec, dataset, { onEvent: print, statsLag: { accuracy: config.bnStatsLagAccuracy, loss: config.bnStatsLagLoss } });
    let modelId = 'unsaved';
    if (values.out) {
      mkdirSync(values.out, { recursive: true });
      writeFileSync(path.join(values.out, 'manifest.json'), `${JSON.stringify(result.artifact.manifest, null, 2)}\n`);
      writeFileSync(path.join(values.out, 'model.safetensors'), result.artifact.weights);
      modelId = path.resolve(values.out);
    }
    print({ type: 'completed', modelId, metrics: result.metrics, epochsToTarget: result.epochsToTarget });
    return 0;
  } catch (err) {
    const failed = toFailedEvent(err);
    if (json) print(failed);
    else console.error(`normlab: ${failed.message}`);
    return 1;
  }
}

function toFailedEvent(err: unknown): Extract<TrainEvent, { type: 'failed' }> {
  if (err instanceof TrainingError || err instanceof DatasetError) {
    return { type: 'failed', code: err.code, message: err.message, details: err.details };
  }
  if (err instanceof SpecError) return { type: 'failed', code: 'INVALID_SPEC', message: err.message, details: { issues: err.issues } };
  if (err instanceof SyntaxError) return { type: 'failed', code: 'INVALID_JSON', message: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return { type: 'failed', code: 'NOT_FOUND', message: e.message };
  return { type: 'failed', code: 'INTERNAL', message: e?.message ?? String(err) };
}

/** A progress bar on a terminal, one line per epoch otherwise. */
function humanPrinter(): (e: TrainEvent) => void {
  const tty = process.stderr.isTTY;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  return (e) => {
    switch (e.type) {
      case 'progress': {
        if (!tty) return;
        const width = 30;
        const filled = Math.round((width * e.step) / e.stepsPerEpoch);
        process.stderr.write(`\repoch ${e.epoch} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] loss ${e.loss.toFixed(4)}  ${e.samplesPerSec} samples/s  eta ${e.etaSeconds}s `);
        return;
      }
      case 'epoch': {
        if (tty) process.stderr.write('\r\x1b[K');
        const parts = [`epoch ${e.epoch}`, `loss ${e.train.loss.toFixed(4)}`, `acc ${pct(e.train.accuracy)}`];
        if (e.val) parts.push(`val_loss ${e.val.loss.toFixed(4)}`, `val_acc ${pct(e.val.accuracy)}`);
        if (e.test) parts.push(`test_acc ${pct(e.test.accuracy)}`);
        // The train/inference gap: accuracy with batch statistics minus accuracy with the frozen ones.
        if (e.gap) parts.push(`gap ${e.gap.accuracy >= 0 ? '+' : ''}${pct(e.gap.accuracy)} (${e.gap.split}: batch ${pct(e.gap.batch.accuracy)}, frozen ${pct(e.gap.frozen.accuracy)})`);
        parts.push(`${e.seconds.toFixed(2)}s`);
        console.log(parts.join('  '));
        return;
      }
      case 'warning':
        console.error(`warning ${e.code}: ${e.message}`);
        return;
      case 'completed': {
        const m = e.metrics;
        console.log(`done: ${m.epochs} epochs, ${m.samplesPerSec} samples/s` + (m.test ? `, test accuracy ${pct(m.test.accuracy)}` : '') +
          (m.val ? `, validation accuracy ${pct(m.val.accuracy)}` : '') + (m.inferenceStats ? `, ${m.inferenceStats} statistics` : '') +
          (e.modelId !== 'unsaved' ? `; model in ${e.modelId}` : ''));
        return;
      }
      default:
    }
  };
}

process.exitCode = await main(process.argv.slice(2));
