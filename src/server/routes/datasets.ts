/** /v1/datasets: the built-in sets (shared) and the requesting tenant's CSV uploads. */
import type { FastifyPluginAsync } from 'fastify';
import { listBuiltinDatasets, parseCsvDataset, type BuiltinDatasetInfo } from '../../datasets/index.js';
import type { DatasetSummary } from '../../store/datasets.js';
import { newId } from '../../store/ids.js';
import { HttpError, notFound } from '../errors.js';
import { errors } from '../schemas/common.js';
import { DatasetInfo, DatasetList, DatasetParams, UploadQuery, UploadResponse } from '../schemas/datasets.js';
import type { TypeBoxTypeProvider } from '../validation.js';

const fromBuiltin = (d: BuiltinDatasetInfo) => ({
  ...d,
  features: d.inputShape.reduce((a, b) => a * b, 1),
  rows: d.trainRows,
  createdAt: null,
});

const fromUpload = (d: DatasetSummary) => ({ ...d, available: true, testRows: null });

const datasetsRoutes: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { services } = app;
  const { config } = services;

  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: config.datasetMaxBytes }, (_request, body, done) => done(null, body));

  app.post('/datasets', {
    schema: {
      tags: ['datasets'],
      summary: 'Upload a CSV dataset',
      description: `Content-Type: text/csv. A header row; one label column (by name or index, default the last); every other column numeric. ` +
        `At most ${config.datasetMaxBytes} bytes, ${config.datasetMaxRows} rows and ${config.datasetMaxFeatures} features; ` +
        `a tenant keeps at most ${config.tenantMaxDatasetBytes} bytes of uploads (413 DATASET_QUOTA_EXCEEDED).`,
      querystring: UploadQuery,
      body: { description: 'CSV text', content: { 'text/csv': { schema: { type: 'string' } } } },
      response: { 201: UploadResponse, ...errors(400, 413, 415) },
    },
    bodyLimit: config.datasetMaxBytes,
    config: { bodyLimitSetting: 'DATASET_MAX_BYTES' },
  }, async (request, reply) => {
    if (typeof request.body !== 'string') {
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the dataset as Content-Type: text/csv', { expected: 'text/csv' });
    }
    const { name, label } = request.query;
    const ds = parseCsvDataset(request.body, {
      id: newId('ds'),
      name,
      label: label !== undefined && /^\d+$/.test(label) ? Number(label) : label,
      maxRows: config.datasetMaxRows,
      maxFeatures: config.datasetMaxFeatures,
      maxClasses: config.maxClasses,
    });
    const saved = await services.datasets.save(request.tenant, ds, Buffer.byteLength(request.body));
    return reply.code(201).header('location', `/v1/datasets/${saved.id}`).send({
      id: saved.id, name: saved.name, rows: saved.rows, features: saved.features, classes: saved.classes, classNames: saved.classNames,
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
