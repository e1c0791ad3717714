/** The committed PyTorch fixtures are exactly what make_fixtures.py makes with the installed PyTorch. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { optional } from '../helpers/optional.js';

const torch = optional('python3-torch');
const FIXTURES = fileURLToPath(new URL('../fixtures', import.meta.url));

describe.skipIf(torch.skip)(`PyTorch fixtures ${torch.tag}`, () => {
  it('regenerate byte for byte', () => {
    const out = mkdtempSync(path.join(tmpdir(), 'normlab-fixtures-'));
    onTestFinished(() => rmSync(out, { recursive: true }));
    const run = spawnSync('/usr/bin/python3', [path.join(FIXTURES, 'make_fixtures.py')], {
      env: { ...process.env, FIXTURES_OUT: out }, encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    const made = readdirSync(out);
    expect(made.length).toBeGreaterThan(5);
    for (const name of made) expect(readFileSync(path.join(out, name), 'utf8'), name).toBe(readFileSync(path.join(FIXTURES, name), 'utf8'));
  });
});
