/**
 * The datasets module: the built-in registry (synthetic sets and
 * fashion-mnist), plus re-exports of the CSV loader, preprocessing and the
 * binary form used to store uploads.
 */
import { SpecError, type DatasetSpec } from '../core/spec.js';
import { DatasetError } from './errors.js';
import {
  FASHION_MNIST_CLASSES, FASHION_MNIST_INSTALL_HINT, FASHION_MNIST_TEST_ROWS, FASHION_MNIST_TRAIN_ROWS,
  fashionMnistAvailable, loadFashionMnist,
} from './fashion-mnist.js';
import { SYNTHETIC, generateSynthetic, isSequenceSet, isSyntheticId, syntheticInputShape, type SyntheticId } from './synthetic.js';
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
  /** [steps, features per step] a recurrent layer reads from a row without dataset.sequence; null for tabular rows. */
  sequenceShape: [number, number] | null;
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
    inputShape: syntheticInputShape(id),
    sequenceShape: sequenceShape(syntheticInputShape(id)),
    classes: SYNTHETIC[id].classNames.length,
    classNames: [...SYNTHETIC[id].classNames],
    trainRows: null,
    testRows: null,
  }));
  const available = fashionMnistAvailable();
  const fashion: BuiltinDatasetInfo = {
    id: FASHION_MNIST_ID,
    name: 'Fashion-MNIST',
    description: '28×28 grayscale images of clothing (Zalando), 10 classes; pixel values 0..255; as a sequence, 28 steps of one 28-pixel row each',
    kind: 'image',
    available,
    inputShape: [1, 28, 28],
    sequenceShape: [28, 28],
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
 * How a recurrent layer reads one row of `inputShape` as a sequence: [steps,
 * features] rows as they are, single-channel images [1, H, W] as H steps of
 * a W-pixel row; null for anything else (tabular rows need dataset.sequence).
 */
export function sequenceShape(inputShape: number[]): [number, number] | null {
  if (inputShape.length === 2) return [inputShape[0]!, inputShape[1]!];
  if (inputShape.length === 3 && inputShape[0] === 1) return [inputShape[1]!, inputShape[2]!];
  return null;
}

/**
 * The shape of a row as the job sees it: the dataset's own (`inputShape`, for
 * a built-in sequence set the length from the spec), or [steps, F/steps] under
 * dataset.sequence. SpecError naming /dataset/sequence/steps when steps does not divide F.
 */
export function jobInputShape(spec: DatasetSpec, inputShape: number[]): number[] {
  const steps = spec.sequence?.steps ?? null;
  if (isSyntheticId(spec.id) && isSequenceSet(spec.id)) return syntheticInputShape(spec.id, steps);
  if (steps === null) return inputShape;
  const features = inputShape.reduce((a, b) => a * b, 1);
  if (features % steps !== 0) {
    const divisors = Array.from({ length: features }, (_, i) => i + 1).filter((d) => features % d === 0);
    throw new SpecError([{
      path: '/dataset/sequence/steps',
      message: `${steps} does not divide the ${features} features of a row of ${spec.id} (shape [${inputShape.join(', ')}]); steps must be one of ${divisors.join(', ')}`,
      features, allowed: divisors,
    }]);
  }
  return [steps, features / steps];
}

/**
 * A loaded dataset as the job uses it: `spec.limit` applied to its training
 * rows (views, not copies: a prefix of the arrays) and its rows read in the
 * shape of jobInputShape (row-major data, so only the shape changes).
 */
export function applyDatasetSpec(ds: Dataset, spec: DatasetSpec): Dataset {
  const shape = jobInputShape(spec, ds.inputShape);
  const inputShape = shape.join() === ds.inputShape.join() ? ds.inputShape : shape;
  const limit = spec.limit;
  const train = limit === null || limit >= ds.train.n
    ? ds.train
    : { x: ds.train.x.subarray(0, limit * ds.features), y: ds.train.y.subarray(0, limit), n: limit };
  // Unchanged: the dataset itself (Fashion-MNIST's is the thread's cached one).
  return inputShape === ds.inputShape && train === ds.train ? ds : { ...ds, inputShape, train };
}

/**
 * Load a built-in dataset for a job (applyDatasetSpec applied). Synthetic
 * sets are generated from `seed`, `spec.size`, `spec.noise` and, for a
 * sequence set, `spec.sequence.steps`. Fashion-MNIST arrays are shared by
 * every job in the thread: never write to them.
 */
export async function loadBuiltinDataset(spec: DatasetSpec, seed: number): Promise<Dataset> {
  let ds: Dataset;
  if (isSyntheticId(spec.id)) {
    ds = generateSynthetic(spec.id, spec.size, spec.noise, seed, spec.sequence?.steps ?? null);
  } else if (spec.id === FASHION_MNIST_ID) {
    ds = await loadFashionMnist();
  } else {
    throw new DatasetError(
      'UNKNOWN_DATASET',
      `unknown dataset "${spec.id}"; built-in datasets are ${BUILTIN_IDS.join(', ')} (uploaded datasets have "ds_…" ids)`,
      { id: spec.id, available: BUILTIN_IDS },
    );
  }
  return applyDatasetSpec(ds, spec);
}
