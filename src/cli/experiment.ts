/**
 * `normlab experiment SPEC.json [--json] [--threads N]`: run an experiment
 * in-process, without the service. The request is the body of POST
 * /v1/experiments (a spec, or {template, overrides}), expanded and checked by
 * the same code; the runs train on worker threads (one run per thread at a
 * time, N threads, default the CPU cores); the summary and verdicts come from
 * the same code as GET /v1/experiments/:id. Built-in datasets only.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { loadConfig } from '../config.js';
import type { EpochEvent } from '../core/train.js';
import { resolveExperiment, type ResolvedExperiment } from '../experiments/grid.js';
import { summaryTable } from '../experiments/format.js';
import { ExperimentError, ExperimentTooLargeError } from '../experiments/spec.js';
import { summarize, type RunInput } from '../experiments/summary.js';
import type { RunMessage } from './experiment-thread.js';

export const EXPERIMENT_USAGE = `  normlab experiment SPEC.json [--json] [--threads N]
      Run an experiment in-process: SPEC.json is a POST /v1/experiments body (a grid
      over a job spec, or {"template": ..., "overrides": ...}). Runs train on N worker
      threads (default: CPU cores); prints a summary table and the verdicts at the end.
      --json prints each run's epoch and terminal events, then {"type":"completed","summary"}, one per line.`;

const THREAD_FILE = new URL('./experiment-thread.js', import.meta.url);

/** Runs the command; returns the exit code (0 done, 1 the experiment could not run, 2 usage). */
export async function experimentCommand(args: string[]): Promise<number> {
  let values: { json?: boolean; threads?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, threads: { type: 'string' } } }));
  } catch (err) {
    console.error(`normlab: ${(err as Error).message}\nusage:\n${EXPERIMENT_USAGE}`);
    return 2;
  }
  const threads = values.threads === undefined ? os.availableParallelism() : Number(values.threads);
  if (positionals.length !== 1 || !Number.isInteger(threads) || threads < 1) {
    console.error(`usage:\n${EXPERIMENT_USAGE}`);
    return 2;
  }
  let experiment: ResolvedExperiment;
  try {
    experiment = resolveExperiment(JSON.parse(readFileSync(positionals[0]!, 'utf8')), loadConfig().maxExperimentJobs);
  } catch (err) {
    if (err instanceof ExperimentError) console.error(`normlab: invalid experiment:\n${err.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
    else if (err instanceof ExperimentTooLargeError) console.error(`normlab: ${err.message} (MAX_EXPERIMENT_JOBS)`);
    else console.error(`normlab: ${(err as Error).message}`);
    return 1;
  }
  const json = values.json === true;
  const out = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
  const runs: RunInput[] = experiment.runs.map((r, i) => ({
    jobId: `run-${i}`, variant: r.variant, seed: r.seed, status: 'queued', history: [], final: null, error: null,
  }));
  const label = (i: number) => `${experiment.variants[runs[i]!.variant]!.label || 'base'} seed ${runs[i]!.seed}`;
  if (!json) console.error(`${experiment.variants.length} variants × ${experiment.seeds.length} seeds = ${runs.length} runs on ${Math.min(threads, runs.length)} threads`);

  let next = 0;
  let finished = 0;
  const pool = Array.from({ length: Math.min(threads, runs.length) }, () => new Worker(THREAD_FILE));
  const done = new Promise<void>((resolve, reject) => {
    const feed = (worker: Worker) => {
      if (next >= runs.length) return;
      const index = next++;
      runs[index]!.status = 'running';
      worker.postMessage({ index, spec: experiment.runs[index]!.spec });
    };
    for (const worker of pool) {
      worker.on('error', reject);
      worker.on('message', (msg: RunMessage) => {
        const run = runs[msg.index]!;
        const tag = { jobId: run.jobId, variant: run.variant, seed: run.seed };
        if (msg.type === 'epoch') {
          run.history.push(msg.event as EpochEvent);
          if (json) out({ ...(msg.event as object), ...tag });
          return;
        }
        run.status = msg.error ? 'failed' : 'succeeded';
        run.final = msg.final as RunInput['final'];
        run.error = msg.error;
        finished++;
        if (json) out(msg.error ? { type: 'failed', ...msg.error, ...tag } : { type: 'completed', metrics: msg.final, ...tag });
        else console.error(`[${finished}/${runs.length}] ${label(msg.index)}: ${msg.error ? `failed ${msg.error.code}: ${msg.error.message}` : `val acc ${run.final?.val?.accuracy.toFixed(4) ?? '–'}, test acc ${run.final?.test?.accuracy.toFixed(4) ?? '–'}`}`);
        if (finished === runs.length) resolve();
        else feed(worker);
      });
      feed(worker);
    }
  });
  try {
    await done;
  } catch (err) {
    console.error(`normlab: a worker thread failed: ${(err as Error).message}`);
    return 1;
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }

  const summary = summarize(experiment.variants, runs, experiment.target);
  if (json) out({ type: 'completed', summary });
  else console.log(summaryTable(summary));
  return 0;
}
