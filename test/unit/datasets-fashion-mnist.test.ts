import { describe, it, expect, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadBuiltinDataset, listBuiltinDatasets } from '../../src/datasets/index.js';
import type { DatasetSpec } from '../../src/core/spec.js';
import { useFashionMnistDir } from '../helpers/fashion-slice.js';
import { optional } from '../helpers/optional.js';

const installed = optional('dataset-fashion-mnist');

const SPEC: DatasetSpec = { id: 'fashion-mnist', validationSplit: 0.1, preprocess: 'scale', limit: null, size: 2000, noise: 0.1, sequence: null };

function counts(y: Int32Array): number[] {
  const c = new Array<number>(10).fill(0);
  for (const label of y) c[label]!++;
  return c;
}

// Real bytes on every machine: the committed slice goes through the same IDX path (gzip, header, uint8 rows).
describe('fashion-mnist slice (committed real IDX files)', () => {
  it('decodes 600 training and 100 test images, the first an ankle boot, pixels 0..255', async () => {
    useFashionMnistDir();
    const ds = await loadBuiltinDataset(SPEC, 1);
    expect(ds).toMatchObject({ id: 'fashion-mnist', inputShape: [1, 28, 28], features: 784, classes: 10, valueRange: [0, 255] });
    expect(ds.train.n).toBe(600);
    expect(ds.test!.n).toBe(100);
    // Counted (Python, gzip module) from the first 600 / 100 labels of the real files.
    expect(counts(ds.train.y)).toEqual([62, 66, 57, 58, 59, 58, 66, 61, 58, 55]);
    expect(counts(ds.test!.y)).toEqual([8, 13, 14, 9, 10, 9, 8, 11, 12, 6]);
    expect(Array.from(ds.train.y.subarray(0, 10))).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    const image = ds.train.x.subarray(0, 784);
    expect(image.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)).toBe(true);
    expect(Math.max(...image)).toBe(255);
  });

  it.skipIf(installed.skip)(`is byte for byte the first rows of the installed files ${installed.tag}`, async () => {
    const full = await loadBuiltinDataset(SPEC, 1);
    useFashionMnistDir();
    const slice = await loadBuiltinDataset(SPEC, 1);
    expect(slice.train.x).toEqual(full.train.x.subarray(0, 600 * 784));
    expect(slice.train.y).toEqual(full.train.y.subarray(0, 600));
    expect(slice.test!.x).toEqual(full.test!.x.subarray(0, 100 * 784));
    expect(slice.test!.y).toEqual(full.test!.y.subarray(0, 100));
  });
});

// Reads the real files (Debian package dataset-fashion-mnist, or FASHION_MNIST_DIR).
describe.skipIf(installed.skip)(`fashion-mnist (installed) ${installed.tag}`, () => {
  it('is decoded once per thread and then served from the cache', async () => {
    const first = await loadBuiltinDataset(SPEC, 1);
    expect(await loadBuiltinDataset(SPEC, 2)).toBe(first);
  });

  it('has the documented shapes, classes and value range', async () => {
    const ds = await loadBuiltinDataset(SPEC, 1);
    expect(ds).toMatchObject({ id: 'fashion-mnist', inputShape: [1, 28, 28], features: 784, classes: 10, valueRange: [0, 255] });
    expect(ds.classNames).toEqual([
      'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
    ]);
    expect(ds.train.n).toBe(60000);
    expect(ds.train.x).toHaveLength(60000 * 784);
    expect(ds.test!.n).toBe(10000);
    expect(ds.test!.x).toHaveLength(10000 * 784);
    expect(listBuiltinDatasets().find((d) => d.id === 'fashion-mnist')!.available).toBe(true);
  });

  it('has 6000 training and 1000 test images per class, the first an ankle boot', async () => {
    const ds = await loadBuiltinDataset(SPEC, 1);
    expect(counts(ds.train.y)).toEqual(new Array(10).fill(6000));
    expect(counts(ds.test!.y)).toEqual(new Array(10).fill(1000));
    expect(ds.train.y[0]).toBe(9);
    expect(ds.classNames[ds.train.y[0]!]).toBe('Ankle boot');
  });

  it('keeps raw integer pixel values 0..255', async () => {
    const ds = await loadBuiltinDataset(SPEC, 1);
    const image = ds.train.x.subarray(0, 784);
    expect(image.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)).toBe(true);
    expect(Math.max(...image)).toBe(255);
    expect(Math.min(...image)).toBe(0);
  });

  it('applies the limit as a view of the first training rows', async () => {
    const full = await loadBuiltinDataset(SPEC, 1);
    const limited = await loadBuiltinDataset({ ...SPEC, limit: 100 }, 1);
    expect(limited.train.n).toBe(100);
    expect(limited.train.x).toHaveLength(78400);
    expect(limited.train.x.buffer).toBe(full.train.x.buffer);
    expect(limited.test).toBe(full.test);
  });
});

// Tiny stand-in files in FASHION_MNIST_DIR; these run after the real ones so the cache above is not evicted mid-suite.
describe('fashion-mnist from FASHION_MNIST_DIR', () => {
  function withDir(files: Record<string, Buffer>): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'normlab-fmnist-'));
    for (const [name, bytes] of Object.entries(files)) writeFileSync(path.join(dir, name), bytes);
    const previous = process.env.FASHION_MNIST_DIR;
    process.env.FASHION_MNIST_DIR = dir;
    onTestFinished(() => {
      if (previous === undefined) delete process.env.FASHION_MNIST_DIR;
      else process.env.FASHION_MNIST_DIR = previous;
      rmSync(dir, { recursive: true });
    });
    return dir;
  }

  function images(n: number): Buffer {
    const header = Buffer.from([0, 0, 0x08, 3, 0, 0, 0, n, 0, 0, 0, 28, 0, 0, 0, 28]);
    return Buffer.concat([header, Buffer.alloc(n * 784, 200)]);
  }
  const labels = (values: number[]) => Buffer.from([0, 0, 0x08, 1, 0, 0, 0, values.length, ...values]);

  it('reads uncompressed files from the directory in FASHION_MNIST_DIR', async () => {
    withDir({
      'train-images-idx3-ubyte': images(3),
      'train-labels-idx1-ubyte': labels([9, 0, 4]),
      't10k-images-idx3-ubyte.gz': gzipSync(images(2)),
      't10k-labels-idx1-ubyte': labels([1, 2]),
    });
    const ds = await loadBuiltinDataset(SPEC, 1);
    expect(ds.train.n).toBe(3);
    expect(Array.from(ds.train.y)).toEqual([9, 0, 4]);
    expect(ds.train.x[0]).toBe(200);
    expect(ds.test!.n).toBe(2);
  });

  it('reports DATASET_UNAVAILABLE with install instructions when files are missing', async () => {
    const dir = withDir({ 'train-images-idx3-ubyte.gz': gzipSync(images(1)) });
    const err = loadBuiltinDataset(SPEC, 1);
    await expect(err).rejects.toMatchObject({
      code: 'DATASET_UNAVAILABLE',
      message: expect.stringMatching(/apt-get install dataset-fashion-mnist.*FASHION_MNIST_DIR/),
      details: { dir, missing: ['train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'] },
    });
    const info = listBuiltinDatasets().find((d) => d.id === 'fashion-mnist')!;
    expect(info.available).toBe(false);
    expect(info.installHint).toContain('apt-get install dataset-fashion-mnist');
  });

  it('rejects files with the wrong shape or labels out of range', async () => {
    withDir({
      'train-images-idx3-ubyte': images(2),
      'train-labels-idx1-ubyte': labels([3, 10]),
      't10k-images-idx3-ubyte': images(1),
      't10k-labels-idx1-ubyte': labels([1, 2]),
    });
    await expect(loadBuiltinDataset(SPEC, 1)).rejects.toMatchObject({
      code: 'IDX_INVALID',
      message: expect.stringContaining('label 10 at row 1'),
    });
    // A failed load is not cached: fixing the files makes the next load succeed.
    writeFileSync(path.join(process.env.FASHION_MNIST_DIR!, 'train-labels-idx1-ubyte'), labels([3, 4]));
    await expect(loadBuiltinDataset(SPEC, 1)).rejects.toMatchObject({ message: expect.stringContaining('expected 1 uint8 labels') });
    writeFileSync(path.join(process.env.FASHION_MNIST_DIR!, 't10k-labels-idx1-ubyte'), labels([5]));
    expect((await loadBuiltinDataset(SPEC, 1)).test!.y[0]).toBe(5);
  });
});
