import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../src/core/kernels/native.js';
import { portableKernels } from '../../src/core/kernels/portable.js';
import type { Kernels } from '../../src/core/kernels/types.js';

const sets: Array<[string, Kernels]> = [['portable', portableKernels]];
const native = loadNativeKernels();
if (native) sets.push(['native', native]);

describe.each(sets)('gatherRows (%s)', (_name, k) => {
  const features = 3;
  const src = Float32Array.from({ length: 5 * features }, (_, i) => i);
  const labels = Int32Array.of(10, 11, 12, 13, 14);

  it('copies the chosen rows and their labels, starting at an offset of the index list', () => {
    const dst = new Float32Array(2 * features).fill(-1);
    const dstLabels = new Int32Array(2);
    k.gatherRows(src, labels, Int32Array.of(9, 4, 1, 9), 1, 2, features, dst, dstLabels);
    expect(Array.from(dst)).toEqual([12, 13, 14, 3, 4, 5]);
    expect(Array.from(dstLabels)).toEqual([14, 11]);
  });

  it('rejects a row outside the source', () => {
    expect(() => k.gatherRows(src, labels, Int32Array.of(5), 0, 1, features, new Float32Array(3), new Int32Array(1))).toThrow(RangeError);
    expect(() => k.gatherRows(src, labels, Int32Array.of(-1), 0, 1, features, new Float32Array(3), new Int32Array(1))).toThrow(RangeError);
  });
});
