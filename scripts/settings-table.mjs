// Rewrites the README's settings table from src/config.ts (npm run build first);
// test/unit/readme.test.ts fails when the committed table is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { settingsTable } from '../dist/src/config.js';

const readme = path.resolve(import.meta.dirname, '../README.md');
const text = readFileSync(readme, 'utf8');
writeFileSync(readme, text.replace(/(<!-- settings:start -->\n)[\s\S]*?(<!-- settings:end -->)/, `$1${settingsTable()}\n$2`));
