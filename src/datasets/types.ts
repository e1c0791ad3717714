/** In-memory dataset: raw (unpreprocessed) features as float32 rows plus integer labels. */
export interface Split {
  /** Row-major [n, features] raw feature values. */
  x: Float32Array;
  /** Class index per row, 0 ≤ y < classes. */
  y: Int32Array;
  n: number;
}

export interface Dataset {
  /** Built-in id or "ds_…" for uploads. */
  id: string;
  name: string;
  /** Shape of one row: [features] for tabular data, [C, H, W] for images. */
  inputShape: number[];
  /** Number of features per row (product of inputShape). */
  features: number;
  classes: number;
  classNames: string[];
  /** Fixed range of raw values when the data has one (images: [0, 255]); `scale` uses it instead of fitting min/max. */
  valueRange: [number, number] | null;
  train: Split;
  /** A held-out test split when the dataset ships one (fashion-mnist) or generates one (synthetic). */
  test: Split | null;
}

/** Preprocessing fitted on the training split, stored in the model artifact and applied at inference. */
export type Preprocess =
  | { kind: 'none' }
  /** x' = (x - offset[j]) * factor[j] */
  | { kind: 'scale'; offset: number[]; factor: number[] }
  | { kind: 'standardize'; offset: number[]; factor: number[] };
