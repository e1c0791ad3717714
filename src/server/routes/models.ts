/** /v1/models: the requesting tenant's trained models, their frozen batch-norm statistics, weights, and predictions. */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { ModelManifest } from '../../core/artifact.js';
import { encodeInferenceWeights } from '../../core/inference-weights.js';
import { OnnxUnsupportedError } from '../../core/onnx-unsupported.js';
import { HttpError, notFound } from '../errors.js';
import { errors, IdParams, PageQuery } from '../schemas/common.js';
import { BatchNormResponse, ModelDetail, ModelList, NoQuery, predictBody, PredictResponse, WeightsQuery } from '../schemas/models.js';
import { checkPredictLimits, predictRows } from '../predict.js';
import { packageVersion } from '../../version.js';
import type { TypeBoxTypeProvider } from '../validation.js';

function summary(id: string, m: ModelManifest) {
  const base = `/v1/models/${id}`;
  return {
    id,
    jobId: id,
    name: m.spec.name ?? null,
    dataset: m.spec.dataset.id,
    createdAt: m.createdAt,
    parameters: m.parameters,
    inferenceStats: m.inferenceStats,
    metrics: m.metrics,
    links: { self: base, job: `/v1/jobs/${id}`, predict: `${base}/predict`, batchnorm: `${base}/batchnorm`, weights: `${base}/weights`, onnx: `${base}/onnx` },
  };
}

const modelsRoutes: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { services } = app;

  const loaded = async (tenant: string, id: string) => {
    const model = await services.modelCache.get(tenant, id);
    if (!model) throw notFound('model', id);
    return model;
  };

  app.get('/models', {
    schema: {
      tags: ['models'],
      summary: 'List models, newest first',
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: { 200: ModelList, ...errors(400) },
    },
  }, async (request) => {
    const { items, nextCursor } = await services.models.list(request.tenant, request.query.limit, request.query.cursor);
    return { items: items.map(({ id, manifest }) => summary(id, manifest)), nextCursor };
  });

  app.get('/models/:id', {
    schema: {
      tags: ['models'],
      summary: 'A model: spec, layers, input shape, classes, metrics, which frozen statistics it uses, its fitted preprocessing',
      params: IdParams,
      querystring: NoQuery,
      response: { 200: ModelDetail, ...errors(400, 404) },
    },
  }, async (request) => {
    const { id } = request.params;
    const m = await services.models.manifest(request.tenant, id);
    if (!m) throw notFound('model', id);
    return {
      ...summary(id, m),
      spec: m.spec, layers: m.layers, inputShape: m.inputShape, features: m.features, classes: m.classes,
      classNames: m.classNames, preprocess: m.preprocess.kind, epsilon: m.epsilon,
      preprocessing: m.preprocess.kind === 'none'
        ? { kind: 'none' as const, offset: null, factor: null }
        : { kind: m.preprocess.kind, offset: m.preprocess.offset, factor: m.preprocess.factor },
    };
  });

  app.delete('/models/:id', {
    schema: {
      tags: ['models'],
      summary: 'Delete a model',
      description: 'Its weights and manifest are gone from Redis at once; the job that trained it stays. ' +
        'Other API processes may answer predictions from their cache (MODEL_CACHE_SIZE) until it evicts the model.',
      params: IdParams,
      querystring: NoQuery,
      response: { 204: { description: 'Deleted', type: 'null' }, ...errors(400, 404) },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    if (!(await services.models.delete(request.tenant, id))) throw notFound('model', id);
    services.modelCache.evict(id);
    return reply.code(204).send();
  });

  app.get('/models/:id/batchnorm', {
    schema: {
      tags: ['models'],
      summary: 'The frozen inference statistics of every batch-norm layer',
      params: IdParams,
      querystring: NoQuery,
      response: { 200: BatchNormResponse, ...errors(400, 404) },
    },
  }, async (request) => {
    const { id } = request.params;
    return { modelId: id, layers: (await loaded(request.tenant, id)).batchNormStats() };
  });

  app.get('/models/:id/weights', {
    schema: {
      tags: ['models'],
      summary: 'The weights as a safetensors file: as trained, or the inference form predict computes with',
      description: 'form=trained (default): layers.{i}.* tensors as trained, with the frozen statistics. form=inference: the folded ' +
        'tensors predict uses, ops.{i}.*, the metadata `ops` describing each op and `input` whether the fitted preprocessing ' +
        '(GET /v1/models/:id, preprocessing) still applies first (affine) or is folded in (raw).',
      params: IdParams,
      querystring: WeightsQuery,
      response: {
        200: { description: 'safetensors', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
        ...errors(400, 404),
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const inference = request.query.form === 'inference';
    const weights = inference ? encodeInferenceWeights(await loaded(request.tenant, id)) : await services.models.weights(request.tenant, id);
    if (!weights) throw notFound('model', id);
    const name = inference ? `${id}.inference.safetensors` : `${id}.safetensors`;
    return reply.type('application/octet-stream').header('content-disposition', `attachment; filename="${name}"`).send(weights);
  });

  app.get('/models/:id/onnx', {
    schema: {
      tags: ['models'],
      summary: 'The model as ONNX (opset 13): raw features in, probabilities and label out',
      description: 'Input `input` FP32 [N, …inputShape] in the raw feature space; the fitted preprocessing is the graph\'s first ops, ' +
        'frozen batch norm is folded where exact and a BatchNormalization op elsewhere. Outputs `probabilities` (softmax) [N, classes] ' +
        'and `label` INT64 [N]. Within 1e-5 of predict in onnxruntime. A model the export cannot express (recurrent batch norm): 422 ONNX_UNSUPPORTED.',
      params: IdParams,
      querystring: NoQuery,
      response: {
        200: { description: 'ONNX ModelProto', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
        ...errors(400, 404, 422),
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const [manifest, weights] = await Promise.all([services.models.manifest(request.tenant, id), services.models.weights(request.tenant, id)]);
    if (!manifest || !weights) throw notFound('model', id);
    // Loaded on first use: the ONNX protobuf code takes a few hundred ms to load, which start-up need not pay.
    const { exportOnnx } = await import('../../core/onnx.js');
    let onnx: Uint8Array;
    try {
      onnx = exportOnnx({ manifest, weights }, { name: id, producerVersion: packageVersion() });
    } catch (err) {
      if (err instanceof OnnxUnsupportedError) throw new HttpError(422, 'ONNX_UNSUPPORTED', err.message, { model: id });
      throw err;
    }
    return reply.type('application/octet-stream').header('content-disposition', `attachment; filename="${id}.onnx"`).send(Buffer.from(onnx));
  });

  app.post('/models/:id/predict', {
    schema: {
      tags: ['models'],
      summary: 'Predict with the frozen statistics',
      description: 'Each row is predicted independently of the others: the same row gives the same answer alone or in any batch. ' +
        `At most ${services.config.predictMaxRows} rows, ${services.config.predictMaxWork} multiply-adds (PREDICT_MAX_WORK) and ` +
        `${services.config.predictMaxOutputValues} probabilities (PREDICT_MAX_OUTPUT_VALUES) per request (400 LIMIT_EXCEEDED); ` +
        'rows whose values overflow the model: 422 PREDICTION_NOT_FINITE.',
      params: IdParams,
      querystring: NoQuery,
      body: predictBody(services.config.predictMaxRows),
      response: { 200: PredictResponse, ...errors(400, 404, 413, 422) },
    },
  }, async (request) => {
    const { id } = request.params;
    const model = await loaded(request.tenant, id);
    const { instances } = request.body;
    checkPredictLimits(model, instances.length, services.config);
    const f = model.features;
    const rows = new Float32Array(instances.length * f);
    instances.forEach((row, i) => {
      if (row.length !== f) {
        throw new HttpError(400, 'WRONG_FEATURE_COUNT', `/instances/${i}: has ${row.length} values; model ${id} takes ${f} features per row`, {
          path: `/instances/${i}`, expected: f, actual: row.length,
        });
      }
      rows.set(row, i * f);
    });
    const start = process.hrtime.bigint();
    const predictions = await predictRows(model, id, rows, instances.length);
    services.metrics.observePredict('v1', instances.length, Number(process.hrtime.bigint() - start) / 1e9);
    return { predictions };
  });
};

export default modelsRoutes;
