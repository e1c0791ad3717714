// Builds the native kernels (node-gyp). A failed build is not fatal: NormLab
// then runs on its portable TypeScript kernels and says so once at start.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
let gyp;
try {
  // npm ships node-gyp; prefer the copy next to the running npm.
  gyp = process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gyp = null;
}
const args = gyp ? [gyp, 'rebuild'] : null;
const result = args
  ? spawnSync(process.execPath, args, { stdio: 'inherit', cwd: path.resolve(import.meta.dirname, '..') })
  : { status: 1 };
if (result.status !== 0) {
  console.warn('normlab: the native kernels did not build; the portable TypeScript kernels will be used (slower).');
}
