/** Open Inference Protocol v2 (KServe, Triton) REST shapes, as NormLab speaks them. */
import { Type } from '@sinclair/typebox';
import { ID_PATTERN } from '../../store/ids.js';

/** The protocol's error body: one message string. */
export const V2Error = Type.Object({ error: Type.String() }, { $id: 'V2Error', description: 'Every 4xx/5xx answer of /v2' });

export const v2Errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, Type.Ref(V2Error)]));

export const ModelNameParams = Type.Object({
  model_name: Type.String({ pattern: ID_PATTERN, description: 'The model id (the id of the job that trained it)' }),
});

export const ServerMetadata = Type.Object({
  name: Type.String(),
  version: Type.String(),
  extensions: Type.Array(Type.String()),
});

const TensorMetadata = Type.Object({
  name: Type.String(),
  datatype: Type.String(),
  shape: Type.Array(Type.Integer(), { description: '-1: any size (the batch dimension)' }),
});

export const ModelMetadata = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  platform: Type.String(),
  inputs: Type.Array(TensorMetadata),
  outputs: Type.Array(TensorMetadata),
});

/** Nested arrays of numbers (or one flat array); checked against `shape` by the route. */
const TensorData = Type.Array(Type.Unknown(), { description: 'Row-major values, flat or nested as the shape' });

export function inferRequest(maxRows: number) {
  return Type.Object({
    id: Type.Optional(Type.String({ maxLength: 256, description: 'Echoed in the response' })),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    inputs: Type.Array(Type.Object({
      name: Type.String({ maxLength: 256 }),
      shape: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 2, maxItems: 5, description: `[n, …inputShape] or [n, features]; n at most ${maxRows}` }),
      datatype: Type.String({ description: 'FP32' }),
      parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
      data: TensorData,
    }), { minItems: 1, maxItems: 1, description: 'One input tensor' }),
    outputs: Type.Optional(Type.Array(Type.Object({
      name: Type.Union([Type.Literal('probabilities'), Type.Literal('label')]),
      parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }), { minItems: 1, maxItems: 2, description: 'Which outputs to return (default: both)' })),
  });
}

export const InferResponse = Type.Object({
  model_name: Type.String(),
  model_version: Type.Optional(Type.String()),
  id: Type.Optional(Type.String()),
  outputs: Type.Array(Type.Object({
    name: Type.String(),
    datatype: Type.String(),
    shape: Type.Array(Type.Integer()),
    data: Type.Array(Type.Number()),
  })),
});
