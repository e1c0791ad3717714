// `normlab experiment` through the compiled CLI (npm test builds first).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';

const cli = path.resolve(import.meta.dirname, '../../bin/normlab.js');
const dir = mkdtempSync(path.join(tmpdir(), 'normlab-cli-exp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function normlab(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], { cwd: dir });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

it('prints a line per run and the summary table with the verdicts', async () => {
  writeFileSync(path.join(dir, 'grid.json'), JSON.stringify({
    base: { dataset: { id: 'blobs', size: 300 }, model: { hidden: [8] }, training: { epochs: 2 } },
    grid: { 'model.batchNorm': ['none', 'before'] }, seeds: [1, 2],
  }));
  const { code, stdout, stderr } = await normlab(['experiment', 'grid.json', '--threads', '2']);
  expect(code).toBe(0);
  expect(stderr).toMatch(/^2 variants × 2 seeds = 4 runs on 2 threads$/m);
  expect(stderr.match(/^\[\d\/4\] model\.batchNorm=(none|before) seed [12]: val acc /gm)).toHaveLength(4);
  const lines = stdout.trim().split('\n');
  expect(lines[0]).toBe('| variant | runs ok / failed (diverged) | best val acc | final val acc (95% CI) | final test acc | gap (batch − frozen acc) | training s |');
  expect(lines[2]).toMatch(/^\| model\.batchNorm=none \| 2 \/ 0 \(0\) \| /);
  expect(lines.at(-1)).toMatch(/^- model\.batchNorm=before vs none: final val\.accuracy /);
}, 60_000);

it('names the offending field of a bad experiment and exits 1', async () => {
  writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ base: { dataset: { id: 'moons' } }, grid: { 'model.batchNrom': ['none'] } }));
  const { code, stderr } = await normlab(['experiment', 'bad.json']);
  expect(code).toBe(1);
  expect(stderr).toContain('/grid/model.batchNrom: model.batchNrom is not a field of the job spec');
  const usage = await normlab(['experiment']);
  expect(usage.code).toBe(2);
});
