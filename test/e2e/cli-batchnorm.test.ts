/** The CLI's human output carries the train/inference gap on every epoch line and prints the batch-norm warnings. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';

// Runs the compiled CLI (npm test builds first).
const run = promisify(execFile);
const cli = path.resolve(import.meta.dirname, '../../bin/normlab.js');
const dir = mkdtempSync(path.join(tmpdir(), 'normlab-cli-bn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('prints the gap per epoch and the warnings with their codes', async () => {
  const spec = path.join(dir, 'spec.json');
  writeFileSync(spec, JSON.stringify({
    dataset: { id: 'spirals', size: 2000 },
    model: { hidden: [64, 64], batchNorm: 'before', dropout: 0.1 },
    training: { epochs: 5 },
  }));
  const { stdout, stderr } = await run(process.execPath, [cli, 'train', spec], { cwd: dir });
  const epochLines = stdout.split('\n').filter((l) => l.startsWith('epoch '));
  expect(epochLines).toHaveLength(5);
  for (const line of epochLines) expect(line).toMatch(/gap [+-]\d+\.\d\d% \(val: batch \d+\.\d\d%, frozen \d+\.\d\d%\)/);
  expect(stderr).toMatch(/^warning BN_WITH_DROPOUT: dropout \(layers 3, 7\)/m);
  expect(stderr).toMatch(/^warning BN_STATS_LAG: the moving averages of BN layer/m);
  expect(stdout).toMatch(/done: 5 epochs, .*population statistics/);
});
