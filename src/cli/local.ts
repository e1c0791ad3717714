/** Commands that run in-process, without a server: train, doctor, export. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import type { Artifact } from '../core/artifact.js';
import type { TrainEvent } from '../core/events.js';
import { kernelsInfo } from '../core/kernels/index.js';
import { resolveSpec, SpecError } from '../core/spec.js';
import { train, TrainingError } from '../core/train.js';
import { applyDatasetSpec, DatasetError, listBuiltinDatasets, loadBuiltinDataset, parseCsvDataset } from '../datasets/index.js';
import { CliError } from './errors.js';
import { humanPrinter } from './progress.js';

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

/** A model directory written by `normlab train --out DIR`. */
export function readModelDir(dir: string): Artifact {
  try {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Artifact['manifest'];
    return { manifest, weights: readFileSync(path.join(dir, 'model.safetensors')) };
  } catch (err) {
    throw new CliError(`${dir} is not a model directory (manifest.json and model.safetensors, as \`normlab train --out DIR\` writes): ${(err as Error).message}`);
  }
}

export function addLocalCommands(program: Command): void {
  program.command('train')
    .description('Train in-process, without a server')
    .argument('<SPEC.json>', 'job spec (the body of POST /v1/jobs)')
    .option('--data <FILE.csv>', 'train on a CSV file (header row; label column by --label, default the last)')
    .option('--label <COLUMN>', 'label column of --data, by name or index')
    .option('--out <DIR>', 'write manifest.json and model.safetensors to DIR')
    .option('--json', 'print one event per line', false)
    .action(async (specFile: string, options: { data?: string; label?: string; out?: string; json: boolean }) => {
      const print = options.json ? (e: TrainEvent) => process.stdout.write(`${JSON.stringify(e)}\n`) : humanPrinter();
      try {
        const raw = JSON.parse(readFileSync(specFile, 'utf8')) as Record<string, unknown>;
        if (options.data && raw.dataset === undefined) raw.dataset = { id: 'csv' };
        const spec = resolveSpec(raw);
        const label = options.label;
        const dataset = options.data
          ? applyDatasetSpec(parseCsvDataset(readFileSync(options.data, 'utf8'), {
              id: path.basename(options.data), name: path.basename(options.data),
              label: label === undefined ? undefined : /^\d+$/.test(label) ? Number(label) : label,
            }), spec.dataset)
          : await loadBuiltinDataset(spec.dataset, spec.training.seed);
        const config = loadConfig();
        const result = await train(spec, dataset, { onEvent: print, statsLag: { accuracy: config.bnStatsLagAccuracy, loss: config.bnStatsLagLoss } });
        let modelId = 'unsaved';
        if (options.out) {
          mkdirSync(options.out, { recursive: true });
          writeFileSync(path.join(options.out, 'manifest.json'), `${JSON.stringify(result.artifact.manifest, null, 2)}\n`);
          writeFileSync(path.join(options.out, 'model.safetensors'), result.artifact.weights);
          modelId = path.resolve(options.out);
        }
        print({ type: 'completed', modelId, metrics: result.metrics, epochsToTarget: result.epochsToTarget });
      } catch (err) {
        const failed = toFailedEvent(err);
        if (options.json) print(failed);
        else console.error(`normlab: ${failed.message}`);
        process.exitCode = 1;
      }
    });

  program.command('doctor')
    .description('Show which kernels and GEMM are in use and which datasets are installed')
    .action(() => {
      console.log(JSON.stringify({ ...kernelsInfo(), datasets: listBuiltinDatasets().map(({ id, available, installHint }) => ({ id, available, installHint })) }, null, 2));
    });

  program.command('export')
    .description('Export a model directory (from `normlab train --out DIR`) to ONNX')
    .argument('<MODEL_DIR>', 'directory with manifest.json and model.safetensors')
    .requiredOption('--onnx <FILE>', 'write the ONNX model (opset 13) to FILE')
    .action(async (dir: string, options: { onnx: string }) => {
      const artifact = readModelDir(dir);
      const { exportOnnx } = await import('../core/onnx.js'); // only this command needs the ONNX protobuf code
      let bytes: Uint8Array;
      try {
        bytes = exportOnnx(artifact, { name: path.basename(path.resolve(dir)) });
      } catch (err) {
        throw new CliError(`cannot export ${dir}: ${(err as Error).message}`);
      }
      writeFileSync(options.onnx, bytes);
      console.log(`wrote ${options.onnx} (${bytes.length} bytes)`);
    });
}
