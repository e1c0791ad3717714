import { Type } from '@sinclair/typebox';
import { Nullable } from './common.js';

export const DatasetParams = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'Built-in id (spirals, moons, blobs, xor, scales, sines, fashion-mnist) or an uploaded "ds_…" id' }),
});

export const UploadQuery = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200, default: 'uploaded dataset' }),
  label: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Label column: header name or 0-based index; default: the last column' })),
}, { additionalProperties: false });

export const UploadResponse = Type.Object({
  id: Type.String(),
  name: Type.String(),
  rows: Type.Integer(),
  features: Type.Integer(),
  classes: Type.Integer(),
  classNames: Type.Array(Type.String()),
  bytes: Type.Integer({ description: 'What the upload takes in storage (the parsed dataset), counted against TENANT_MAX_DATASET_BYTES' }),
});

export const DatasetInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.Union([Type.Literal('synthetic'), Type.Literal('image'), Type.Literal('upload')]),
  description: Type.Optional(Type.String()),
  available: Type.Boolean({ description: 'Whether jobs can use it on this server' }),
  installHint: Type.Optional(Type.String()),
  inputShape: Type.Array(Type.Integer(), { description: 'One row: [features], [steps, features] (sequence sets; sines takes its steps from dataset.sequence.steps) or [channels, height, width]' }),
  sequenceShape: Nullable(Type.Array(Type.Integer(), {
    minItems: 2, maxItems: 2,
    description: '[steps, features per step] a recurrent layer reads from a row (an image: one pixel row per step); null for tabular rows, ' +
      'which a job reads as a sequence with dataset.sequence.steps (then [steps, features/steps])',
  })),
  features: Type.Integer(),
  classes: Type.Integer(),
  classNames: Type.Array(Type.String()),
  rows: Nullable(Type.Integer({ description: 'Training rows; null for synthetic sets, whose size the job spec sets' })),
  testRows: Nullable(Type.Integer()),
  createdAt: Nullable(Type.String({ format: 'date-time' })),
});

export const DatasetList = Type.Object({ items: Type.Array(DatasetInfo) });
