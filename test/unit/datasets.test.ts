import { describe, it, expect } from 'vitest';
import {
  DatasetError, decodeDataset, encodeDataset, isBuiltinDataset, listBuiltinDatasets, loadBuiltinDataset,
  parseCsvDataset, type Dataset,
} from '../../src/datasets/index.js';
import { generateSynthetic, type SyntheticId } from '../../src/datasets/synthetic.js';
import type { DatasetSpec } from '../../src/core/spec.js';

const SYNTHETIC_IDS: SyntheticId[] = ['spirals', 'moons', 'blobs', 'xor'];
const CLASSES: Record<string, number> = { spirals: 3, moons: 2, blobs: 4, xor: 2 };

function spec(id: string, extra: Partial<DatasetSpec> = {}): DatasetSpec {
  return { id, validationSplit: 0.1, preprocess: 'scale', limit: null, size: 2000, noise: 0.1, sequence: null, ...extra };
}

function classCounts(y: Int32Array, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const c of y) counts[c]!++;
  return counts;
}

/** Catch the DatasetError thrown by fn (fails the test if there is none). */
async function datasetError(fn: () => unknown): Promise<DatasetError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    return err as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

describe('synthetic datasets', () => {
  it('scales: six features whose spreads differ by orders of magnitude, seeded, balanced, each informative', () => {
    const ds = generateSynthetic('scales', 3000, 0.5, 3);
    expect(ds).toMatchObject({ inputShape: [6], features: 6, classes: 3 });
    expect(generateSynthetic('scales', 3000, 0.5, 3).train.x).toEqual(ds.train.x);
    const f = 6;
    const sd = Array.from({ length: f }, (_, j) => {
      let s = 0; let s2 = 0;
      for (let i = 0; i < ds.train.n; i++) { const v = ds.train.x[i * f + j]!; s += v; s2 += v * v; }
      const m = s / ds.train.n;
      return { mean: m, sd: Math.sqrt(s2 / ds.train.n - m * m) };
    });
    // Latent spread sqrt(2/3 + 0.25) ≈ 0.96 times the feature's scale 1e-3 … 1e2; mean 5 of its units.
    sd.forEach(({ mean, sd: s }, j) => {
      const scale = 10 ** (j - 3);
      expect(s / scale).toBeGreaterThan(0.9);
      expect(s / scale).toBeLessThan(1.02);
      expect(mean / scale).toBeCloseTo(5, 1);
    });
    expect(sd[5]!.sd / sd[0]!.sd).toBeGreaterThan(1e4);
    expect(classCounts(ds.train.y, 3)).toEqual([1000, 1000, 1000]);
  });

  it.each(SYNTHETIC_IDS)('%s: the same seed gives identical data, a different seed different data', (id) => {
    const a = generateSynthetic(id, 500, 0.1, 7);
    const b = generateSynthetic(id, 500, 0.1, 7);
    const c = generateSynthetic(id, 500, 0.1, 8);
    expect(b.train.x).toEqual(a.train.x);
    expect(b.test!.x).toEqual(a.test!.x);
    expect(c.train.x).not.toEqual(a.train.x);
    expect(c.test!.x).not.toEqual(a.test!.x);
  });

  it.each(SYNTHETIC_IDS)('%s: shapes, finite values and balanced classes in train and test', (id) => {
    const ds = generateSynthetic(id, 1001, 0.2, 1);
    const classes = CLASSES[id];
    expect(ds).toMatchObject({ id, inputShape: [2], features: 2, classes, valueRange: null });
    expect(ds.classNames).toHaveLength(classes);
    expect(ds.train.n).toBe(1001);
    expect(ds.train.x).toHaveLength(2002);
    expect(ds.test!.n).toBe(200); // max(200, 1001/5)
    expect(generateSynthetic(id, 5000, 0.2, 1).test!.n).toBe(1000);
    expect(ds.train.x.every(Number.isFinite)).toBe(true);
    for (const split of [ds.train, ds.test!]) {
      const counts = classCounts(split.y, classes);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
    // A 10-row prefix (what `limit` keeps) is balanced too.
    const prefix = classCounts(ds.train.y.subarray(0, 10), classes);
    expect(Math.max(...prefix) - Math.min(...prefix)).toBeLessThanOrEqual(1);
  });

  it('the test split is not a copy of the training rows', () => {
    const ds = generateSynthetic('moons', 200, 0.1, 3);
    expect(ds.test!.x).not.toEqual(ds.train.x);
  });

  it('noise moves the points', () => {
    expect(generateSynthetic('spirals', 100, 0.5, 3).train.x).not.toEqual(generateSynthetic('spirals', 100, 0, 3).train.x);
  });

  it('noise-free shapes have the intended geometry', () => {
    const rows = (ds: Dataset) => Array.from({ length: ds.train.n }, (_, i) => [ds.train.x[2 * i]!, ds.train.x[2 * i + 1]!, ds.train.y[i]!]);
    for (const [x, y, c] of rows(generateSynthetic('xor', 400, 0, 5))) {
      expect(Math.sign(x) * Math.sign(y) < 0 ? 1 : 0).toBe(c);
    }
    for (const [x, y, c] of rows(generateSynthetic('moons', 400, 0, 5))) {
      const [cx, cy] = c === 0 ? [0, 0] : [1, 0.5];
      expect(Math.hypot(x - cx, y - cy)).toBeCloseTo(1, 5);
      expect(c === 0 ? y >= 0 : y <= 0.5).toBe(true);
    }
    for (const [x, y] of rows(generateSynthetic('spirals', 400, 0, 5))) expect(Math.hypot(x, y)).toBeLessThan(1);
    // Blobs have unit spread around (±2, ±2): most points sit in their class's quadrant.
    const blobs = rows(generateSynthetic('blobs', 4000, 0, 5));
    const inQuadrant = blobs.filter(([x, y, c]) => (x > 0) === ((c! & 1) === 1) && (y > 0) === ((c! & 2) === 2));
    expect(inQuadrant.length / blobs.length).toBeGreaterThan(0.9);
  });
});

describe('built-in registry', () => {
  it('lists the built-in datasets with their shapes', () => {
    const list = listBuiltinDatasets();
    expect(list.map((d) => d.id)).toEqual(['spirals', 'moons', 'blobs', 'xor', 'scales', 'sines', 'fashion-mnist']);
    expect(list.find((d) => d.id === 'blobs')).toMatchObject({
      kind: 'synthetic', available: true, inputShape: [2], classes: 4, trainRows: null, testRows: null,
    });
    const fashion = list.find((d) => d.id === 'fashion-mnist')!;
    expect(fashion).toMatchObject({ kind: 'image', inputShape: [1, 28, 28], classes: 10, trainRows: 60000, testRows: 10000 });
    expect(fashion.classNames[9]).toBe('Ankle boot');
    expect(fashion.available === !('installHint' in fashion)).toBe(true);
  });

  it('isBuiltinDataset knows the built-in ids only', () => {
    expect(isBuiltinDataset('spirals')).toBe(true);
    expect(isBuiltinDataset('fashion-mnist')).toBe(true);
    expect(isBuiltinDataset('ds_abc')).toBe(false);
    expect(isBuiltinDataset('toString')).toBe(false);
  });

  it('loads a synthetic set from the spec and applies the limit', async () => {
    const full = await loadBuiltinDataset(spec('spirals', { size: 300, noise: 0.2 }), 9);
    expect(full.train.n).toBe(300);
    expect(full.train.x).toEqual(generateSynthetic('spirals', 300, 0.2, 9).train.x);
    const limited = await loadBuiltinDataset(spec('spirals', { size: 300, noise: 0.2, limit: 30 }), 9);
    expect(limited.train.n).toBe(30);
    expect(limited.train.x).toEqual(full.train.x.subarray(0, 60));
    expect(limited.train.y).toEqual(full.train.y.subarray(0, 30));
    expect(limited.test!.n).toBe(full.test!.n);
  });

  it('rejects an unknown id with UNKNOWN_DATASET listing the built-in ids', async () => {
    const err = await datasetError(() => loadBuiltinDataset(spec('nope'), 1));
    expect(err.code).toBe('UNKNOWN_DATASET');
    expect(err.message).toContain('"nope"');
    expect(err.message).toContain('spirals, moons, blobs, xor, scales, sines, fashion-mnist');
    expect(err.details).toMatchObject({ id: 'nope', available: ['spirals', 'moons', 'blobs', 'xor', 'scales', 'sines', 'fashion-mnist'] });
  });
});

describe('encodeDataset / decodeDataset', () => {
  const bits = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

  function expectSame(a: Dataset, b: Dataset): void {
    const { train: at, test: aTest, ...aMeta } = a;
    const { train: bt, test: bTest, ...bMeta } = b;
    expect(bMeta).toEqual(aMeta);
    expect(bits(bt.x).equals(bits(at.x))).toBe(true);
    expect(bits(bt.y).equals(bits(at.y))).toBe(true);
    expect(bt.n).toBe(at.n);
    expect(bTest === null).toBe(aTest === null);
    if (aTest && bTest) {
      expect(bits(bTest.x).equals(bits(aTest.x))).toBe(true);
      expect(bits(bTest.y).equals(bits(aTest.y))).toBe(true);
    }
  }

  it('round-trips a dataset with a test split bit for bit', () => {
    const ds = generateSynthetic('blobs', 300, 0.3, 11);
    expectSame(decodeDataset(encodeDataset(ds)), ds);
  });

  it('round-trips a CSV dataset without a test split, names and all', () => {
    const ds = parseCsvDataset('a,b,label\n1.5,-2,"x, y"\n3,4e-3,z\n', { id: 'ds_1', name: 'upload ✓' });
    const back = decodeDataset(encodeDataset(ds));
    expectSame(back, ds);
    expect(back.classNames).toEqual(['x, y', 'z']);
    expect(back.test).toBeNull();
  });

  it('encodes only the rows of a limited (sub-array) split and decodes from an unaligned buffer', async () => {
    const ds = await loadBuiltinDataset(spec('moons', { size: 100, limit: 10 }), 2);
    const encoded = encodeDataset(ds);
    const unaligned = Buffer.alloc(encoded.length + 1);
    encoded.copy(unaligned, 1);
    const back = decodeDataset(unaligned.subarray(1));
    expect(back.train.n).toBe(10);
    expectSame(back, ds);
  });

  it('rejects corrupt buffers with DATASET_CORRUPT', async () => {
    const good = encodeDataset(generateSynthetic('xor', 50, 0.1, 1));
    const flipped = Buffer.from(good);
    flipped[flipped.length - 300]! ^= 0x10;
    const badHeader = Buffer.from(good);
    badHeader.write('#', 8, 'latin1');
    const json = Buffer.from(JSON.stringify({ version: 1, id: 'x' }));
    const prefix = Buffer.from('NLDS\0\0\0\0', 'latin1');
    prefix.writeUInt32LE(json.length, 4);
    const hugeHeaderLength = Buffer.from(good);
    hugeHeaderLength.writeUInt32LE(0xffffffff, 4);
    const cases: Record<string, [Buffer, string]> = {
      empty: [Buffer.alloc(0), 'magic'],
      'wrong magic': [Buffer.concat([Buffer.from('XXXX'), good.subarray(4)]), 'magic'],
      truncated: [good.subarray(0, good.length - 4), 'expected'],
      'trailing bytes': [Buffer.concat([good, Buffer.alloc(4)]), 'expected'],
      'flipped data bit': [flipped, 'checksum'],
      'header not JSON': [badHeader, 'not JSON'],
      'header length past the end': [hugeHeaderLength, 'truncated header'],
      'header fields missing': [Buffer.concat([prefix, json]), 'malformed'],
    };
    for (const [name, [buf, message]] of Object.entries(cases)) {
      const err = await datasetError(() => decodeDataset(buf));
      expect(err.code, name).toBe('DATASET_CORRUPT');
      expect(err.message, name).toContain(message);
    }
  });
});
