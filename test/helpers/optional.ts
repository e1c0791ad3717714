/**
 * Tests that need an optional Debian package. Outside CI such a test is
 * skipped when its package is missing, and its name carries the tag
 * `[needs apt PKG]` so scripts/test.mjs can list at the end what was skipped
 * and the `apt-get install` that runs it. With CI=true nothing is skipped:
 * a missing package fails the test.
 *
 *   const fm = optional('dataset-fashion-mnist');
 *   describe.skipIf(fm.skip)(`reads the installed files ${fm.tag}`, () => { … });
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const PROBES = {
  /** The real Fashion-MNIST IDX files (or FASHION_MNIST_DIR pointing at them). */
  'dataset-fashion-mnist': () => {
    const dir = process.env.FASHION_MNIST_DIR || '/usr/share/datasets/fashion-mnist';
    return ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']
      .every((f) => existsSync(path.join(dir, `${f}.gz`)) || existsSync(path.join(dir, f)));
  },
  /** OpenBLAS as binding.gyp probes it: cblas.h compiles and -lopenblas links. */
  'libopenblas-dev': () => {
    const program = '#include <cblas.h>\nint main(void) { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.f, 0, 1, 0, 1, 0.f, 0, 1); return 0; }\n';
    const cc = process.env.CC || 'cc';
    return spawnSync(cc, ['-x', 'c', '-I/usr/include/openblas', '-o', '/dev/null', '-', '-lopenblas'], { input: program, stdio: ['pipe', 'ignore', 'ignore'] }).status === 0;
  },
  /** PyTorch for /usr/bin/python3 (the fixture scripts and the peer benches). */
  'python3-torch': () => spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0,
  /** The official Prometheus client's exposition parser, for /usr/bin/python3. */
  'python3-prometheus-client': () => spawnSync('/usr/bin/python3', ['-c', 'import prometheus_client.parser'], { stdio: 'ignore' }).status === 0,
  /** Headless Chromium for the browser tests. */
  chromium: () => existsSync('/usr/bin/chromium'),
} satisfies Record<string, () => boolean>;

export type OptionalPackage = keyof typeof PROBES;

export interface Optional {
  /** Whether the package is there. */
  available: boolean;
  /** Skip the tests: package missing and not in CI. */
  skip: boolean;
  /** Put in the test's (or describe's) name: `[needs apt PKG]`. */
  tag: string;
}

export function optional(pkg: OptionalPackage): Optional {
  const available = PROBES[pkg]();
  return { available, skip: !available && process.env.CI !== 'true', tag: `[needs apt ${pkg}]` };
}
