/**
 * Fashion-MNIST from the Debian package dataset-fashion-mnist (or any
 * directory in FASHION_MNIST_DIR holding the four IDX files, gzipped or not).
 * The decoded dataset is cached per thread: it is ~220 MB of float32 and
 * every job in a worker thread shares it, so callers must never write to it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DatasetError } from './errors.js';
import { readIdxFile, type IdxArray } from './idx.js';
import type { Dataset, Split } from './types.js';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];
export const FASHION_MNIST_TRAIN_ROWS = 60000;
export const FASHION_MNIST_TEST_ROWS = 10000;
export const FASHION_MNIST_INSTALL_HINT =
  'install it with `apt-get install dataset-fashion-mnist`, or set FASHION_MNIST_DIR to a directory holding ' +
  'train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz';

const DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';
const FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

function fashionMnistDir(): string {
  return process.env.FASHION_MNIST_DIR || DEFAULT_DIR;
}

/** The path of one file, preferring the gzipped name; null when neither exists. */
function findFile(dir: string, base: string): string | null {
  for (const name of [`${base}.gz`, base]) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  return null;
}

export function fashionMnistAvailable(): boolean {
  const dir = fashionMnistDir();
  return FILES.every((f) => findFile(dir, f) !== null);
}

let cache: { dir: string; dataset: Promise<Dataset> } | null = null;

/** Load (once per thread and directory) the full dataset; DATASET_UNAVAILABLE when the files are missing. */
export function loadFashionMnist(): Promise<Dataset> {
  const dir = fashionMnistDir();
  if (cache?.dir !== dir) {
    const dataset = decode(dir);
    cache = { dir, dataset };
    // A failed load is not cached, so installing the package later works without a restart.
    dataset.catch(() => {
      if (cache?.dataset === dataset) cache = null;
    });
  }
  return cache.dataset;
}

async function decode(dir: string): Promise<Dataset> {
  const files = FILES.map((f) => findFile(dir, f));
  const missing = FILES.filter((_, i) => files[i] === null);
  if (missing.length > 0) {
    throw new DatasetError(
      'DATASET_UNAVAILABLE',
      `fashion-mnist is not installed (${missing.join(', ')} not found in ${dir}); ${FASHION_MNIST_INSTALL_HINT}`,
      { id: 'fashion-mnist', dir, missing },
    );
  }
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(files.map((f) => readIdxFile(f!)));
  return {
    id: 'fashion-mnist',
    name: 'Fashion-MNIST',
    inputShape: [1, 28, 28],
    features: 784,
    classes: 10,
    classNames: [...FASHION_MNIST_CLASSES],
    valueRange: [0, 255],
    train: toSplit(trainImages!, trainLabels!, files[0]!, files[1]!),
    test: toSplit(testImages!, testLabels!, files[2]!, files[3]!),
  };
}

function toSplit(images: IdxArray, labels: IdxArray, imageFile: string, labelFile: string): Split {
  const y = checkedLabels(images, labels, imageFile, labelFile);
  const x = new Float32Array(images.data.length);
  x.set(images.data); // typed-array set converts uint8 → float32 natively, far faster than a JS loop
  return { x, y, n: y.length };
}

function checkedLabels(images: IdxArray, labels: IdxArray, imageFile: string, labelFile: string): Int32Array {
  const n = images.shape[0]!;
  if (images.dtype !== 'uint8' || images.shape.length !== 3 || images.shape[1] !== 28 || images.shape[2] !== 28) {
    throw new DatasetError('IDX_INVALID', `${imageFile}: expected uint8 images of shape [n, 28, 28], got ${images.dtype} [${images.shape.join(', ')}]`);
  }
  if (labels.dtype !== 'uint8' || labels.shape.length !== 1 || labels.shape[0] !== n) {
    throw new DatasetError('IDX_INVALID', `${labelFile}: expected ${n} uint8 labels, got ${labels.dtype} [${labels.shape.join(', ')}]`);
  }
  const y = Int32Array.from(labels.data);
  const bad = y.findIndex((c) => c >= 10);
  if (bad >= 0) throw new DatasetError('IDX_INVALID', `${labelFile}: label ${y[bad]} at row ${bad} is not a class 0..9`);
  return y;
}

export interface RawImages { images: Uint8Array; labels: Uint8Array; n: number }

let testCache: { dir: string; split: Promise<RawImages> } | null = null;

/**
 * The test split alone, as the raw uint8 bytes of the IDX files (7.8 MB), cached per
 * process: enough to show a few images without decoding the 188 MB float32 training split.
 */
export function loadFashionMnistTestImages(): Promise<RawImages> {
  const dir = fashionMnistDir();
  if (testCache?.dir !== dir) {
    const files = FILES.slice(2).map((f) => findFile(dir, f));
    const split = files.some((f) => f === null)
      ? Promise.reject(new DatasetError('DATASET_UNAVAILABLE', `fashion-mnist is not installed in ${dir}; ${FASHION_MNIST_INSTALL_HINT}`, { id: 'fashion-mnist', dir }))
      : Promise.all(files.map((f) => readIdxFile(f!))).then(([images, labels]) => {
        checkedLabels(images!, labels!, files[0]!, files[1]!); // the same checks as for training
        return { images: images!.data as Uint8Array, labels: labels!.data as Uint8Array, n: images!.shape[0]! };
      });
    testCache = { dir, split };
    split.catch(() => {
      if (testCache?.split === split) testCache = null;
    });
  }
  return testCache.split;
}
