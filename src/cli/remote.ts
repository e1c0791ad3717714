/** Commands against a NormLab server (NORMLAB_URL, NORMLAB_API_KEY): submit, watch, jobs, status, cancel, predict. */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { TrainEvent } from '../core/events.js';
import { DatasetError, parseCsvRows } from '../datasets/index.js';
import { ApiClient } from './client.js';
import { CliError } from './errors.js';
import { humanPrinter } from './progress.js';

const ENV_HELP = '\nServer: NORMLAB_URL (default http://127.0.0.1:3000), API key: NORMLAB_API_KEY.';

function readInput(file: string, what: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} ${file === '-' ? 'from standard input' : file}: ${(err as Error).message}`);
  }
}

/** Follow a job, printing its events; exit code 1 unless it completes. */
async function follow(client: ApiClient, id: string, json: boolean): Promise<void> {
  const print = json ? (e: TrainEvent) => process.stdout.write(`${JSON.stringify(e)}\n`) : humanPrinter();
  const last = await client.watch(id, print, (after) => console.error(`normlab: event stream interrupted; reconnecting after event ${after || '(none)'}`));
  if (last.type !== 'completed') process.exitCode = 1;
}

interface JobView { id: string; name: string | null; status: string; createdAt: string; progress: { epoch: number; epochs: number } | null; modelId: string | null }

export function addRemoteCommands(program: Command): void {
  const client = () => ApiClient.fromEnv();

  program.command('submit')
    .description('Submit a training job to the server; print its id')
    .argument('<SPEC.json>', 'job spec (the body of POST /v1/jobs), or - for standard input')
    .option('--watch', 'follow its events until it ends (progress bar; reconnects with Last-Event-ID)', false)
    .option('--json', 'with --watch: print one event per line', false)
    .addHelpText('after', ENV_HELP)
    .action(async (file: string, options: { watch: boolean; json: boolean }) => {
      let spec: unknown;
      try {
        spec = JSON.parse(readInput(file, 'the spec'));
      } catch (err) {
        throw err instanceof CliError ? err : new CliError(`${file}: not JSON: ${(err as Error).message}`);
      }
      const c = client();
      const job = await c.request<{ id: string }>('POST', '/v1/jobs', spec);
      console.log(job.id);
      if (options.watch) await follow(c, job.id, options.json);
    });

  program.command('watch')
    .description('Follow a job\'s events until it ends')
    .argument('<ID>', 'job id')
    .option('--json', 'print one event per line', false)
    .addHelpText('after', ENV_HELP)
    .action(async (id: string, options: { json: boolean }) => follow(client(), id, options.json));

  program.command('jobs')
    .description('List your jobs, newest first')
    .addOption(new Option('--status <STATUS>', 'only jobs in this state').choices(['queued', 'running', 'succeeded', 'failed', 'cancelled']))
    .option('--limit <N>', 'at most N jobs (1-100)', '20')
    .option('--json', 'print the API\'s answer', false)
    .addHelpText('after', ENV_HELP)
    .action(async (options: { status?: string; limit: string; json: boolean }) => {
      if (!/^\d+$/.test(options.limit)) throw new CliError(`--limit ${options.limit}: expected a whole number from 1 to 100`, 2);
      const query = new URLSearchParams({ limit: options.limit, ...(options.status ? { status: options.status } : {}) });
      const page = await client().request<{ items: JobView[] }>('GET', `/v1/jobs?${query}`);
      if (options.json) return console.log(JSON.stringify(page, null, 2));
      if (page.items.length === 0) return console.log('no jobs');
      for (const j of page.items) {
        const progress = j.progress ? `epoch ${j.progress.epoch}/${j.progress.epochs}` : '';
        console.log([j.id, j.status.padEnd(9), j.createdAt, progress, j.name ?? ''].join('  ').trimEnd());
      }
    });

  program.command('status')
    .description('Show one job: status, progress, latest metrics, model, error')
    .argument('<ID>', 'job id')
    .addHelpText('after', ENV_HELP)
    .action(async (id: string) => console.log(JSON.stringify(await client().request('GET', `/v1/jobs/${encodeURIComponent(id)}`), null, 2)));

  program.command('cancel')
    .description('Cancel a queued or running job')
    .argument('<ID>', 'job id')
    .addHelpText('after', ENV_HELP)
    .action(async (id: string) => {
      const job = await client().request<{ status: string }>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
      console.log(job.status === 'cancelled' ? `${id} cancelled` : `${id} is stopping (${job.status}); \`normlab watch ${id}\` follows it`);
    });

  program.command('predict')
    .description('Predict the rows of a CSV file (numbers only; an optional header row) with a model; print label and probabilities as CSV')
    .argument('<MODEL>', 'model id')
    .argument('<FILE.csv>', 'the rows, or - for standard input')
    .option('--batch <N>', 'rows per request', '1000')
    .addHelpText('after', ENV_HELP)
    .action(async (model: string, file: string, options: { batch: string }) => {
      const batch = Number(options.batch);
      if (!Number.isInteger(batch) || batch < 1) throw new CliError(`--batch ${options.batch}: expected a positive whole number`, 2);
      let rows: ReturnType<typeof parseCsvRows>;
      try {
        rows = parseCsvRows(readInput(file, 'the rows'));
      } catch (err) {
        throw err instanceof DatasetError ? new CliError(`${file}: ${err.message}`) : err;
      }
      const c = client();
      const detail = await c.request<{ features: number; classNames: string[] }>('GET', `/v1/models/${encodeURIComponent(model)}`);
      if (rows.features !== detail.features) throw new CliError(`${file}: rows have ${rows.features} values; model ${model} takes ${detail.features} features`);
      console.log(['label', ...detail.classNames.map((n) => (/[",\n]/.test(n) ? `"${n.replaceAll('"', '""')}"` : n))].join(','));
      for (let start = 0; start < rows.n; start += batch) {
        const end = Math.min(rows.n, start + batch);
        const instances = Array.from({ length: end - start }, (_, i) => Array.from(rows.x.subarray((start + i) * rows.features, (start + i + 1) * rows.features)));
        const { predictions } = await c.request<{ predictions: Array<{ label: string; probabilities: number[] }> }>(
          'POST', `/v1/models/${encodeURIComponent(model)}/predict`, { instances });
        for (const p of predictions) console.log([p.label, ...p.probabilities].join(','));
      }
    });
}
