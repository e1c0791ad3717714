import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { InferenceModel } from '../../src/core/inference.js';

// Runs the compiled CLI (npm test builds first).
const run = promisify(execFile);
const cli = path.resolve(import.meta.dirname, '../../bin/normlab.js');
const dir = mkdtempSync(path.join(tmpdir(), 'normlab-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function normlab(args: string[]) {
  try {
    const { stdout } = await run(process.execPath, [cli, ...args], { cwd: dir });
    return { code: 0, stdout };
  } catch (e) {
    const err = e as { code: number; stdout: string };
    return { code: err.code, stdout: err.stdout };
  }
}

describe('normlab train', () => {
  it('--json prints the events one per line, ending with completed, and writes a loadable artifact', async () => {
    const spec = path.join(dir, 'spec.json');
    writeFileSync(spec, JSON.stringify({
      dataset: { id: 'moons', size: 400, preprocess: 'standardize' },
      model: { hidden: [16], batchNorm: 'before' },
      training: { epochs: 3, batchSize: 32 },
    }));
    const out = path.join(dir, 'model');
    const { code, stdout } = await normlab(['train', spec, '--json', '--out', out]);
    expect(code).toBe(0);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'epoch').map((e) => e.epoch)).toEqual([1, 2, 3]);
    const last = events[events.length - 1];
    expect(last).toMatchObject({ type: 'completed', modelId: out, metrics: { epochs: 3 } });
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    const model = InferenceModel.fromArtifact({ manifest, weights: readFileSync(path.join(out, 'model.safetensors')) });
    expect(model.predict(new Float32Array([0.5, 0.25]), 1)).toHaveLength(2);
  });

  it('trains on a CSV file given with --data', async () => {
    const spec = path.join(dir, 'csv-spec.json');
    writeFileSync(spec, JSON.stringify({ dataset: { id: 'csv', validationSplit: 0 }, model: { hidden: [8] }, training: { epochs: 2, batchSize: 4 } }));
    const csv = path.join(dir, 'data.csv');
    const rows = Array.from({ length: 40 }, (_, i) => `${i % 7},${(i * 3) % 5},${i % 2 ? 'yes' : 'no'}`);
    writeFileSync(csv, ['a,b,answer', ...rows].join('\n'));
    const { code, stdout } = await normlab(['train', spec, '--data', csv, '--label', 'answer', '--json']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toMatchObject({ type: 'completed' });
  });

  it('reports a bad spec as a failed event naming the field, with exit code 1', async () => {
    const spec = path.join(dir, 'bad.json');
    writeFileSync(spec, JSON.stringify({ dataset: { id: 'moons' }, training: { epochs: -1 } }));
    const { code, stdout } = await normlab(['train', spec, '--json']);
    expect(code).toBe(1);
    const failed = JSON.parse(stdout.trim());
    expect(failed).toMatchObject({ type: 'failed', code: 'INVALID_SPEC' });
    expect(failed.message).toContain('/training/epochs');
  });
});
