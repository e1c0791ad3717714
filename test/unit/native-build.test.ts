// The native addon is one build for every CPU of its architecture: outside
// the kernels dispatched at run time no instruction needs more than the
// baseline (x86-64: SSE2), and the sources compile for ARM64, where only the
// baseline kernels exist.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeAddonPath } from '../../src/core/kernels/native.js';

const root = path.resolve(import.meta.dirname, '../..');
const has = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const ci = process.env.CI === 'true';

describe('native build', () => {
  const addon = nativeAddonPath();
  // objdump comes with the compiler that builds the addon (binutils); in CI this never skips on x86-64.
  it.skipIf(process.arch !== 'x64' || (!ci && (!existsSync(addon) || !has('objdump'))))(
    'x86-64: AVX (VEX/EVEX) instructions only in the AVX2/AVX-512 kernels and the AVX2 clones', () => {
      const dump = spawnSync('objdump', ['-d', '--no-show-raw-insn', '-C', addon], { encoding: 'utf8', maxBuffer: 1 << 28 });
      expect(dump.status).toBe(0);
      const withAvx = new Set<string>();
      let fn = '';
      for (const line of dump.stdout.split('\n')) {
        const head = /^[0-9a-f]+ <(.*)>:$/.exec(line);
        if (head) fn = head[1]!;
        else if (/^\s+[0-9a-f]+:\s+v[a-z0-9]+\s/.test(line)) withAvx.add(fn);
      }
      const dispatched = (name: string) => /::avx2::|::avx512::|micro_kernel_avx2|\[clone \.avx2\]/.test(name);
      expect([...withAvx].filter((name) => !dispatched(name))).toEqual([]);
      expect([...withAvx].some((name) => name.includes('avx512::dense'))).toBe(true);
      expect([...withAvx].some((name) => name.includes('[clone .avx2]'))).toBe(true);
    });

  const cross = 'aarch64-linux-gnu-g++';
  const skipArm = !ci && !has(cross);
  it.skipIf(skipArm)(`every native source compiles for ARM64${skipArm ? ' (apt-get install g++-aarch64-linux-gnu runs this)' : ''}`, () => {
    const nodeInclude = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
    const addonApi = (createRequire(import.meta.url)('node-addon-api') as { include_dir: string }).include_dir;
    const sources = readdirSync(path.join(root, 'native')).filter((f) => f.endsWith('.cc'));
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      const r = spawnSync(cross, ['-std=gnu++20', '-fsyntax-only', '-DNODE_ADDON_API_DISABLE_DEPRECATED', `-I${nodeInclude}`,
        `-I${path.resolve(root, addonApi)}`, path.join(root, 'native', src)], { encoding: 'utf8' });
      expect(r.status, `${src}: ${r.stderr}`).toBe(0);
    }
  }, 120_000);
});
