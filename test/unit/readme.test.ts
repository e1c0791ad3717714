import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { settingsTable } from '../../src/config.js';

it('the README lists every setting as src/config.ts defines it (node scripts/settings-table.mjs rewrites it)', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const table = /<!-- settings:start -->\n([\s\S]*?)\n<!-- settings:end -->/.exec(readme)?.[1];
  expect(table).toBe(settingsTable());
});
