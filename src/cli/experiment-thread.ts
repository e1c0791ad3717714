/**
 * A worker thread of `normlab experiment`: trains the runs the main thread
 * sends it, one at a time, and posts back each epoch event and the result.
 */
import { parentPort } from 'node:worker_threads';
import type { JobSpec } from '../core/spec.js';
import { train, TrainingError } from '../core/train.js';
import { DatasetError, loadBuiltinDataset } from '../datasets/index.js';

export interface RunRequest { index: number; spec: JobSpec }
export type RunMessage =
  | { type: 'epoch'; index: number; event: unknown }
  | { type: 'done'; index: number; final: unknown; error: null }
  | { type: 'done'; index: number; final: null; error: { code: string; message: string } };

const port = parentPort!;
port.on('message', async ({ index, spec }: RunRequest) => {
  try {
    const dataset = await loadBuiltinDataset(spec.dataset, spec.training.seed);
    const result = await train(spec, dataset, {
      onEvent: (event) => { if (event.type === 'epoch') port.postMessage({ type: 'epoch', index, event } satisfies RunMessage); },
    });
    port.postMessage({ type: 'done', index, final: result.metrics, error: null } satisfies RunMessage);
  } catch (err) {
    const known = err instanceof TrainingError || err instanceof DatasetError;
    const error = { code: known ? err.code : 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
    port.postMessage({ type: 'done', index, final: null, error } satisfies RunMessage);
  }
});
