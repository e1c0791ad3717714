/**
 * The datasets module: the built-in registry (synthetic sets and
 * fashion-mnist), plus re-exports of the CSV loader, preprocessing and the
 * binary form used to store uploads.
 */
import type { DatasetSpec } from '../core/spec.js';
import { DatasetError } from './errors.js';
import {
  FASHION_MNIST_CLASSES, FASHION_MNIST_INSTALL_HINT, FASHION_MNIST_TEST_ROWS, FASHION_MNIST_TRAIN_ROWS,
  fashionMnistAvailable, loadFashionMnist,
} from './fashion-mnist.js';
import { SYNTHETIC, generateSynthetic, isSyntheticId, syntheticFeatures, type SyntheticId } from './synthetic.js';
import type { Dataset } from './types.js';

export { DatasetError } from './errors.js';
export { parseCsvDataset, parseCsvRows, parseCsvStream, type CsvOptions } from './csv.js';
export { fitPreprocess, applyPreprocess, type PreprocessKind } from './preprocess.js';
export { encodeDataset, decodeDataset } from './serialize.js';
export type { Dataset, Split, Preprocess } from './types.js';

export interface BuiltinDatasetInfo {
  id: string;
  name: string;
  description: string;
  kind: 'synthetic' | 'image';
  available: boolean;
  inputShape: number[];
  classes: number;
  classNames: string[];
  /** null for synthetic sets, whose size comes from the job spec. */
  trainRows: number | null;
  testRows: number | null;
  installHint?: string;
}

const FASHION_MNIST_ID = 'fashion-mnist';

export function listBuiltinDatasets(): BuiltinDatasetInfo[] {
  const synthetic = (Object.keys(SYNTHETIC) as SyntheticId[]).map((id): BuiltinDatasetInfo => ({
    id,
    name: SYNTHETIC[id].name,
    description: SYNTHETIC[id].description,
    kind: 'synthetic',
    available: true,
    inputShape: [syntheticFeatures(id)],
    classes: SYNTHETIC[id].classNames.length,
    classNames: [...SYNTHETIC[id].classNames],
    trainRows: null,
    testRows: null,
  }));
  const available = fashionMnistAvailable();
  const fashion: BuiltinDatasetInfo = {
    id: FASHION_MNIST_ID,
    name: 'Fashion-MNIST',
    description: '28×28 grayscale images of clothing (Zalando), 10 classes; pixel values 0..255',
    kind: 'image',
    available,
    inputShape: [1, 28, 28],
    classes: 10,
    classNames: [...FASHION_MNIST_CLASSES],
    trainRows: FASHION_MNIST_TRAIN_ROWS,
    testRows: FASHION_MNIST_TEST_ROWS,
    ...(available ? {} : { installHint: FASHION_MNIST_INSTALL_HINT }),
  };
  return [...synthetic, fashion];
}

const BUILTIN_IDS = [...Object.keys(SYNTHETIC), FASHION_MNIST_ID];

export function isBuiltinDataset(id: string): boolean {
  return BUILTIN_IDS.includes(id);
}

/**
 * Load a built-in dataset with `spec.limit` applied to its training rows.
 * Synthetic sets are generated from `seed`, `spec.size` and `spec.noise`.
 * Fashion-MNIST arrays are shared by every job in the thread: never write to them.
 */
export async function loadBuiltinDataset(spec: DatasetSpec, seed: number): Promise<Dataset> {
  let ds: Dataset;
  if (isSyntheticId(spec.id)) {
    ds = generateSynthetic(spec.id, spec.size, spec.noise, seed);
  } else if (spec.id === FASHION_MNIST_ID) {
    ds = await loadFashionMnist();
  } else {
    throw new DatasetError(
      'UNKNOWN_DATASET',
      `unknown dataset "${spec.id}"; built-in datasets are ${BUILTIN_IDS.join(', ')} (uploaded datasets have "ds_…" ids)`,
      { id: spec.id, available: BUILTIN_IDS },
    );
  }
  const limit = spec.limit;
  if (limit === null || limit >= ds.train.n) return ds;
  // Views, not copies: the limited rows are a prefix of the full arrays.
  const train = { x: ds.train.x.subarray(0, limit * ds.features), y: ds.train.y.subarray(0, limit), n: limit };
  return { ...ds, train };
}
