/** /v1/datasets: the built-in sets (shared) and the requesting tenant's CSV uploads. */
import type { FastifyPluginAsync } from 'fastify';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { listBuiltinDatasets, parseCsvStream, sequenceShape, type BuiltinDatasetInfo } from '../../datasets/index.js';
import type { DatasetSummary } from '../../store/datasets.js';
import { newId } from '../../store/ids.js';
import { contentEncoding, HttpError, notFound } from '../errors.js';
import { errors } from '../schemas/common.js';
import { DatasetInfo, DatasetList, DatasetParams, UploadQuery, UploadResponse } from '../schemas/datasets.js';
import type { TypeBoxTypeProvider } from '../validation.js';

const fromBuiltin = (d: BuiltinDatasetInfo) => ({
  ...d,
  features: d.inputShape.reduce((a, b) => a * b, 1),
  rows: d.trainRows,
  createdAt: null,
});

const fromUpload = (d: DatasetSummary) => ({ ...d, sequenceShape: sequenceShape(d.inputShape), available: true, testRows: null });

/** Counts the bytes passing through; past `limit`, fails with 413 PAYLOAD_TOO_LARGE naming what was counted. */
function byteLimit(limit: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit) {
        callback(new HttpError(413, 'PAYLOAD_TOO_LARGE', `the ${what} is larger than the limit of this route (${limit} bytes, DATASET_MAX_BYTES)`, {
          limit, setting: 'DATASET_MAX_BYTES',
        }));
      } else {
        callback(null, chunk);
      }
    },
  });
}

/**
 * The upload as CSV bytes: gunzipped when sent with Content-Encoding: gzip;
 * both forms at most DATASET_MAX_BYTES. Errors end the returned stream; the
 * request itself is never destroyed, so the client still reads the answer.
 */
function csvBytes(payload: Readable, encoding: string, limit: number): Readable {
  const stages: Transform[] = [byteLimit(limit, 'request body')];
  if (encoding === 'gzip') stages.push(createGunzip(), byteLimit(limit, 'decompressed CSV'));
  const last = stages[stages.length - 1]!;
  let from: Readable = payload;
  for (const stage of stages) {
    from.on('error', (err) => last.destroy(err));
    from = from.pipe(stage);
  }
  return last;
}

/** zlib's errors (Z_DATA_ERROR, …) as a 400 naming the header. */
function notGzip(err: unknown): unknown {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('Z_')
    ? new HttpError(400, 'CSV_INVALID', `the body is not valid gzip (Content-Encoding: gzip): ${(err as Error).message}`, { header: 'content-encoding' })
    : err;
}

const datasetsRoutes: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { services } = app;
  const { config } = services;

  // The body stays a stream: the handler parses it record by record (gunzipped first when it is gzip).
  app.addContentTypeParser('text/csv', (_request, payload, done) => done(null, payload));

  app.post('/datasets', {
    schema: {
      tags: ['datasets'],
      summary: 'Upload a CSV dataset',
      description: `Content-Type: text/csv, optionally Content-Encoding: gzip (a .csv.gz file). A header row; one label column (by name or index, default the last); every other column numeric. ` +
        `At most ${config.datasetMaxBytes} bytes, ${config.datasetMaxRows} rows and ${config.datasetMaxFeatures} features; ` +
        `a tenant keeps at most ${config.tenantMaxDatasetBytes} bytes of uploads as stored (413 DATASET_QUOTA_EXCEEDED).`,
      querystring: UploadQuery,
      body: { description: 'CSV text', content: { 'text/csv': { schema: { type: 'string' } } } },
      response: { 201: UploadResponse, ...errors(400, 413, 415) },
    },
    config: { bodyLimitSetting: 'DATASET_MAX_BYTES', contentEncodings: ['gzip'] },
  }, async (request, reply) => {
    const body = request.body as Readable | undefined;
    if (!body || typeof (body as Readable).pipe !== 'function') {
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the dataset as Content-Type: text/csv', { expected: 'text/csv' });
    }
    const length = Number(request.headers['content-length']);
    if (length > config.datasetMaxBytes) {
      throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `the request body is larger than the limit of this route (${config.datasetMaxBytes} bytes, DATASET_MAX_BYTES)`, {
        limit: config.datasetMaxBytes, setting: 'DATASET_MAX_BYTES',
      });
    }
    const { name, label } = request.query;
    const csv = csvBytes(body, contentEncoding(request.headers['content-encoding']), config.datasetMaxBytes);
    const ds = await parseCsvStream(csv, {
      id: newId('ds'),
      name,
      label: label !== undefined && /^\d+$/.test(label) ? Number(label) : label,
      maxRows: config.datasetMaxRows,
      maxFeatures: config.datasetMaxFeatures,
      maxClasses: config.maxClasses,
    }).catch((err: unknown) => { throw notGzip(err); }).finally(() => {
      // Whatever was not read (after an error) is read and dropped, so the connection stays usable.
      body.unpipe();
      body.resume();
    });
    const saved = await services.datasets.save(request.tenant, ds);
    return reply.code(201).header('location', `/v1/datasets/${saved.id}`).send({
      id: saved.id, name: saved.name, rows: saved.rows, features: saved.features, classes: saved.classes, classNames: saved.classNames, bytes: saved.bytes,
    });
  });

  app.get('/datasets', {
    schema: {
      tags: ['datasets'],
      summary: 'Built-in datasets (with availability) and uploads',
      response: { 200: DatasetList },
    },
  }, async (request) => ({
    items: [...listBuiltinDatasets().map(fromBuiltin), ...(await services.datasets.list(request.tenant)).map(fromUpload)],
  }));

  app.get('/datasets/:id', {
    schema: {
      tags: ['datasets'],
      summary: 'One dataset',
      params: DatasetParams,
      response: { 200: DatasetInfo, ...errors(400, 404) },
    },
  }, async (request) => {
    const { id } = request.params;
    const builtin = listBuiltinDatasets().find((d) => d.id === id);
    if (builtin) return fromBuiltin(builtin);
    const upload = await services.datasets.summary(request.tenant, id);
    if (!upload) throw notFound('dataset', id);
    return fromUpload(upload);
  });

  app.delete('/datasets/:id', {
    schema: {
      tags: ['datasets'],
      summary: 'Delete an uploaded dataset',
      description: 'Jobs already trained keep their models; queued jobs that use it fail with UNKNOWN_DATASET.',
      params: DatasetParams,
      response: { 204: { description: 'Deleted', type: 'null' }, ...errors(400, 404) },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    if (listBuiltinDatasets().some((d) => d.id === id)) {
      throw new HttpError(400, 'BUILTIN_DATASET', `${id} is a built-in dataset; only uploads can be deleted`, { id });
    }
    if (!(await services.datasets.delete(request.tenant, id))) throw notFound('dataset', id);
    return reply.code(204).send();
  });
};

export default datasetsRoutes;
