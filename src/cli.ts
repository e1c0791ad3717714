/**
 * `normlab` command line. In-process: train, doctor, export (src/cli/local.ts),
 * experiment (src/cli/experiment.ts).
 * Against a server (NORMLAB_URL, NORMLAB_API_KEY): submit, watch, jobs,
 * status, cancel, predict (src/cli/remote.ts). `--help` on every command.
 * A user's mistake prints one line and a non-zero exit code, never a stack.
 */
import { Command, CommanderError } from 'commander';
import { CliError } from './cli/errors.js';
import { experimentCommand } from './cli/experiment.js';
import { addLocalCommands } from './cli/local.js';
import { addRemoteCommands } from './cli/remote.js';
import { packageVersion } from './version.js';

const program = new Command('normlab')
  .description('Train batch-normalized networks in-process, or drive a NormLab server')
  .version(packageVersion())
  .showHelpAfterError('(add --help for usage)')
  .addHelpText('after', '\nThe server commands use NORMLAB_URL (default http://127.0.0.1:3000) and NORMLAB_API_KEY.\n`normlab COMMAND --help` for each command.')
  .exitOverride();
addLocalCommands(program);
program.command('experiment')
  .description('Run an experiment in-process on worker threads; print the summary table and verdicts')
  .argument('<SPEC.json>', 'a POST /v1/experiments body: a grid over a job spec, or {"template": …, "overrides": …}')
  .option('--json', 'print each run\'s epoch and terminal events, then {"type":"completed","summary"}, one per line')
  .option('--threads <N>', 'worker threads (default: CPU cores)')
  .action(async (spec: string, options: { json?: boolean; threads?: string }) => {
    process.exitCode = await experimentCommand([spec, ...(options.json ? ['--json'] : []), ...(options.threads ? ['--threads', options.threads] : [])]);
  });
addRemoteCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander printed the message or the help already; a usage mistake exits 2, as before.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof CliError) {
    console.error(`normlab: ${err.message}`);
    process.exitCode = err.exitCode;
  } else {
    console.error(`normlab: unexpected error: ${(err as Error)?.message ?? String(err)}`);
    process.exitCode = 1;
  }
}
