// Builds the native kernels (node-gyp). A failed build is not fatal: NormLab
// then runs on its portable TypeScript kernels and says so once at start.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, '..');

// npm ships node-gyp: under `npm install` npm says where; when this script is
// run by hand, use a local copy or the one inside the npm next to this node.
function findGyp() {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const prefix = path.resolve(path.dirname(process.execPath), '..');
    const bundled = path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    return existsSync(bundled) ? bundled : null;
  }
}

// Distribution packages of node (Debian's, for one) install the matching
// headers under <prefix>/include/node; using them avoids a download.
function localHeaders() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  try {
    const h = readFileSync(path.join(prefix, 'include', 'node', 'node_version.h'), 'utf8');
    const v = ['MAJOR', 'MINOR', 'PATCH'].map((k) => h.match(new RegExp(`#define NODE_${k}_VERSION (\\d+)`))?.[1]);
    return `v${v.join('.')}` === process.version ? prefix : null;
  } catch {
    return null;
  }
}

const gyp = findGyp();
const headers = localHeaders();
const args = gyp ? [gyp, 'rebuild', ...(headers ? [`--nodedir=${headers}`] : [])] : null;
const result = args ? spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root }) : { status: 1 };
if (result.status !== 0) {
  console.warn('normlab: the native kernels did not build; the portable TypeScript kernels will be used (slower).');
}
