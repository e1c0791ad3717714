import { Type } from '@sinclair/typebox';
import { Nullable } from './common.js';

export const DatasetParams = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'Built-in id (spirals, moons, blobs, xor, scales, fashion-mnist) or an uploaded "ds_…" id' }),
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
  inputShape: Type.Array(Type.Integer()),
  features: Type.Integer(),
  classes: Type.Integer(),
  classNames: Type.Array(Type.String()),
  rows: Nullable(Type.Integer({ description: 'Training rows; null for synthetic sets, whose size the job spec sets' })),
  testRows: Nullable(Type.Integer()),
  createdAt: Nullable(Type.String({ format: 'date-time' })),
});

export const DatasetList = Type.Object({ items: Type.Array(DatasetInfo) });
