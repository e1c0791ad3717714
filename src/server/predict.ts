/**
 * Predictions as the API runs them: the request's cost is bounded before any
 * work (rows × the model's multiply-adds per row, and the size of the
 * answer), and the rows are predicted in slices of about a millisecond with
 * the event loop free in between, so one large request never holds up the
 * others. A non-finite probability (the model overflows on these inputs) is
 * a 422, never a 500.
 */
import type { Config } from '../config.js';
import type { InferenceModel } from '../core/inference.js';
import { multiplyAddsPerRow } from '../core/layers/index.js';
import { HttpError } from './errors.js';

/** Multiply-adds per slice between two turns of the event loop (about 1 ms of one core). */
const SLICE_WORK = 2_000_000;

export interface Prediction { label: string; probabilities: number[] }

/** 400 LIMIT_EXCEEDED when n rows cost more than PREDICT_MAX_WORK or answer with more than PREDICT_MAX_OUTPUT_VALUES probabilities. */
export function checkPredictLimits(model: InferenceModel, n: number, config: Config): void {
  const perRow = multiplyAddsPerRow(model.manifest.layers);
  const limits = [
    { value: n * perRow, limit: config.predictMaxWork, setting: 'PREDICT_MAX_WORK', what: `multiply-adds (${perRow} per row)`, maxRows: Math.floor(config.predictMaxWork / perRow) },
    { value: n * model.classes, limit: config.predictMaxOutputValues, setting: 'PREDICT_MAX_OUTPUT_VALUES', what: `probabilities (${model.classes} per row)`, maxRows: Math.floor(config.predictMaxOutputValues / model.classes) },
  ];
  for (const { value, limit, setting, what, maxRows } of limits) {
    if (value > limit) {
      throw new HttpError(400, 'LIMIT_EXCEEDED', `/instances: ${n} rows need ${value} ${what}, over the limit of ${limit} (${setting}); send at most ${Math.max(1, maxRows)} rows per request`, {
        path: '/instances', value, limit, setting, maxRows: Math.max(1, maxRows),
      });
    }
  }
}

/** Predict n rows [n, features] in slices, yielding to the event loop between them. */
export async function predictRows(model: InferenceModel, modelId: string, rows: Float32Array, n: number): Promise<Prediction[]> {
  const f = model.features;
  const c = model.classes;
  const sliceRows = Math.max(1, Math.floor(SLICE_WORK / multiplyAddsPerRow(model.manifest.layers)));
  const out = new Float32Array(sliceRows * c);
  const predictions: Prediction[] = [];
  for (let start = 0; start < n; start += sliceRows) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    const m = Math.min(sliceRows, n - start);
    model.predictInto(rows.subarray(start * f, (start + m) * f), m, out);
    for (let i = 0; i < m; i++) {
      const p = Array.from(out.subarray(i * c, (i + 1) * c));
      let best = 0;
      for (let j = 0; j < c; j++) {
        if (!Number.isFinite(p[j]!)) {
          throw new HttpError(422, 'PREDICTION_NOT_FINITE',
            `/instances/${start + i}: model ${modelId} gives non-finite probabilities for this row (its values overflow the model); send values in the range the model was trained on`,
            { path: `/instances/${start + i}` });
        }
        if (p[j]! > p[best]!) best = j;
      }
      predictions.push({ label: model.classNames[best]!, probabilities: p });
    }
  }
  return predictions;
}
